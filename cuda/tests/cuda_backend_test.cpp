// cuda_backend_test.cpp - the CUDA backend against the CPU backend.
//
// CudaHost*: host-side logic, run for real on every machine: device strings,
//   the errors of an unavailable device (C++ and C API), the planning
//   functions, the kernels' argument checks (which return before touching a
//   device).
// CudaOps*: every Backend op on random, never-zero inputs of awkward shapes,
//   CUDA vs CPU. Tolerances (relative L2 error of the whole output):
//     exact widening (embed)                                 0
//     f32 arithmetic in another order (rmsnorm, rope, GEMV,
//       attention, swiglu, add)                              1e-5
//     cuBLASLt path (activations rounded to bf16)            1e-2
//     flash prefill attention (Q, P and an f32 cache's K/V
//       rounded to bf16 for the tensor cores)                1e-2
//     fused RoPE + KV write vs the composed GPU ops          0 (memcmp)
//   FP8 weights (CudaOps.Fp8*, CudaFp8Model*): see the tests' comments.
// CudaGraphs*: decode steps recorded as CUDA graphs vs the same steps op by
//   op (bit for bit with the same attention splits) and vs the CPU; the
//   graphs must actually be recorded and replayed (graph_stats).
// CudaModel*: whole models of ../shared/models through the C API, CUDA vs
//   CPU: last-position logits within 2e-2 relative L2 (bf16 activations in
//   the prefill GEMMs, f32 weights rounded to bf16 for llama2.c/GGUF F32) and
//   the greedy continuation; a prompt long enough to take the cuBLASLt path;
//   a fork (KV blocks copied on the device).
// Without a device every CudaOps/CudaModel test skips with a reason starting
// "no CUDA device".
#include <gtest/gtest.h>

#include <cuda_runtime_api.h>  // cudaErrorInvalidValue

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <deque>
#include <cstdio>
#include <filesystem>
#include <functional>
#include <fstream>
#include <limits>
#include <nlohmann/json.hpp>
#include <random>
#include <string>
#include <vector>

#include "backend/backend.h"
#include "cuda_backend.h"
#include "device.h"
#include "format/block_quant.h"
#include "kernels/kernels.h"
#include "kernels/topk.h"
#include "model/llama_model.h"
#include "model/quantize.h"
#include "model/test_model.h"
#include "paca/paca.h"
#include "paca/paca_experimental.h"
#include "runtime/kv_cache.h"
#include "runtime/load.h"
#include "runtime/session.h"
#include "tests/device_skip.h"
#include "util/error.h"
#include "util/fp8.h"
#include "util/half.h"

namespace {

using paca::Act;
using paca::Backend;
using paca::DType;
using paca::TensorView;

using paca::cuda::test::graphs_wanted;
using paca::cuda::test::have_device;
using paca::cuda::test::models_dir;
using paca::cuda::test::no_device_reason;

std::vector<float> random_nonzero(std::mt19937& rng, size_t n, float lo = 0.05f, float hi = 1.0f) {
  std::uniform_real_distribution<float> mag(lo, hi);
  std::bernoulli_distribution neg(0.5);
  std::vector<float> v(n);
  for (float& e : v) e = neg(rng) ? -mag(rng) : mag(rng);
  return v;
}

double rel_l2(const std::vector<float>& got, const std::vector<float>& ref) {
  double num = 0, den = 0;
  for (size_t i = 0; i < ref.size(); ++i) {
    const double d = static_cast<double>(got[i]) - ref[i];
    if (std::isnan(got[i])) return INFINITY;
    num += d * d;
    den += static_cast<double>(ref[i]) * ref[i];
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

// The largest rel_l2 of any row of `cols` elements: a fault confined to a few
// rows (a tail tile, one row block) that the whole tensor's error averages away.
double worst_row_rel_l2(const std::vector<float>& got, const std::vector<float>& ref, size_t cols) {
  double worst = 0;
  for (size_t r = 0; r + cols <= ref.size(); r += cols)
    worst = std::max(worst, rel_l2(std::vector<float>(got.begin() + r, got.begin() + r + cols),
                                   std::vector<float>(ref.begin() + r, ref.begin() + r + cols)));
  return worst;
}

// ---- host-side tests ---------------------------------------------------------

TEST(CudaHost, ParseDevice) {
  EXPECT_EQ(paca::parse_cuda_device("cuda"), 0);
  EXPECT_EQ(paca::parse_cuda_device("cuda:0"), 0);
  EXPECT_EQ(paca::parse_cuda_device("cuda:7"), 7);
  EXPECT_EQ(paca::parse_cuda_device("cuda:123"), 123);
  for (const char* bad : {"cpu", "cuda:", "cuda:x", "cuda:-1", "cuda:1x", "cuda0", "CUDA", "cuda:99999", ""})
    EXPECT_EQ(paca::parse_cuda_device(bad), -1) << bad;
}

TEST(CudaHost, MakeBackendErrors) {
  try {
    (void)paca::make_backend("tpu:0", 1);
    ADD_FAILURE() << "tpu:0 accepted";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::invalid_argument);
  }
  try {
    (void)paca::make_backend("cuda:99", 1);
    ADD_FAILURE() << "cuda:99 accepted";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::device);
    EXPECT_NE(std::string(e.what()).find("cuda:99"), std::string::npos) << e.what();
  }
  if (have_device()) {
    auto be = paca::make_backend("cuda", 1);
    EXPECT_EQ(be->name().rfind("cuda:0", 0), 0u) << be->name();
    EXPECT_FALSE(be->weights_on_host());
  } else {
    try {
      (void)paca::make_backend("cuda", 1);
      ADD_FAILURE() << "cuda accepted without a device";
    } catch (const paca::Error& e) {
      EXPECT_EQ(e.status(), paca::Status::device);
      EXPECT_NE(std::string(e.what()).find("no CUDA device"), std::string::npos) << e.what();
    }
  }
}

// paca_model_load with device "cuda": without a device a clear PACA_ERR_DEVICE
// (and nothing crashes); a malformed device string is an invalid argument.
TEST(CudaHost, CapiLoad) {
  const std::string dir = models_dir() + "/tiny-llama2";  // one of the models gpu_pack.sh carries
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared models absent: " << dir;
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  paca_model* m = nullptr;
  p.device = "cuda:zero";
  EXPECT_EQ(paca_model_load(dir.c_str(), &p, &m), PACA_ERR_INVALID_ARGUMENT);
  EXPECT_EQ(m, nullptr);
  p.device = "cuda";
  const paca_status s = paca_model_load(dir.c_str(), &p, &m);
  if (have_device()) {
    EXPECT_EQ(s, PACA_OK) << paca_last_error();
    // the default KV dtype (PACA_KV_AUTO) is bf16 on a GPU: half the CPU's f32 bytes
    paca_model_params cp;
    paca_model_params_init(&cp, sizeof cp);
    paca_model* mc = nullptr;
    ASSERT_EQ(paca_model_load(dir.c_str(), &cp, &mc), PACA_OK) << paca_last_error();
    paca_model_info ig{}, ic{};
    ig.struct_size = ic.struct_size = sizeof(paca_model_info);
    ASSERT_EQ(paca_model_get_info(m, &ig), PACA_OK);
    ASSERT_EQ(paca_model_get_info(mc, &ic), PACA_OK);
    EXPECT_EQ(2 * ig.kv_bytes_per_token, ic.kv_bytes_per_token);
    paca_model_free(mc);
  } else {
    EXPECT_EQ(s, PACA_ERR_DEVICE);
    EXPECT_EQ(m, nullptr);
    const std::string msg = paca_last_error();
    EXPECT_NE(msg.find("cuda:0"), std::string::npos) << msg;
    EXPECT_NE(msg.find("no CUDA device"), std::string::npos) << msg;
  }
  paca_model_free(m);
  // the synthetic path too
  paca_test_model_params shape;
  paca_test_model_params_init(&shape, sizeof shape);
  m = nullptr;
  const paca_status s2 = paca_model_load_synthetic(&shape, &p, &m);
  EXPECT_EQ(s2, have_device() ? PACA_OK : PACA_ERR_DEVICE) << paca_last_error();
  paca_model_free(m);
}

TEST(CudaHost, Planning) {
  using paca::cuda::attention_splits_for;
  using paca::cuda::matmul_path;
  using paca::cuda::MatmulPath;
  // enough (token, head) rows or a short context: no split
  EXPECT_EQ(attention_splits_for(512, 32, 512, 132), 1);
  EXPECT_EQ(attention_splits_for(1, 32, 200, 132), 1);
  // decode at long context: splits of >= 128 positions, up to 2 blocks per SM
  EXPECT_EQ(attention_splits_for(1, 32, 4096, 132), 9);   // ceil(264 / 32)
  EXPECT_EQ(attention_splits_for(1, 32, 1000, 132), 7);   // 1000 / 128
  EXPECT_EQ(attention_splits_for(1, 4, 100000, 132), 32);  // capped
  EXPECT_EQ(attention_splits_for(1, 1, 300, 1), 2);
  EXPECT_EQ(matmul_path(1, 8, true), MatmulPath::gemv);
  EXPECT_EQ(matmul_path(8, 8, true), MatmulPath::gemv);
  EXPECT_EQ(matmul_path(9, 8, true), MatmulPath::cublaslt);
  EXPECT_EQ(matmul_path(512, 8, false), MatmulPath::gemv);
  TensorView w;
  w.rows = 10;
  w.cols = 6;
  w.dtype = DType::f32;
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 120u);  // a matrix: bf16
  w.rows = 1;
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 24u);  // a vector: f32
  // block-quantized matrices stay as stored; their vectors widen to f32
  w.dtype = DType::q4_k;
  w.rows = 4;
  w.cols = 512;
  EXPECT_TRUE(paca::cuda::keeps_blocks(w));
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 4u * 2u * 144u);
  w.dtype = DType::q8_0;
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 4u * 16u * 34u);
  w.rows = 1;
  EXPECT_FALSE(paca::cuda::keeps_blocks(w));
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 512u * 4u);
}

// FP8 weights: the path of each matmul, the policy knobs, the bytes on the
// device, and the refusals of weights the device cannot run as the CPU does.
TEST(CudaHost, Fp8Planning) {
  using paca::ActQuant;
  using paca::cuda::Fp8Path;
  using paca::cuda::Fp8Policy;
  using paca::cuda::plan_fp8_matmul;
  const Fp8Policy def;
  auto path = [](paca::cuda::Fp8Plan p) { return p.path; };
  // decode: the GEMV, quantizing first for w8a8
  EXPECT_EQ(path(plan_fp8_matmul(1, 4096, 4096, ActQuant::none, def, true)), Fp8Path::gemv);
  EXPECT_EQ(path(plan_fp8_matmul(8, 4096, 4096, ActQuant::dynamic_row, def, true)), Fp8Path::quant_gemv);
  EXPECT_EQ(path(plan_fp8_matmul(3, 4096, 4096, ActQuant::static_tensor, def, true)), Fp8Path::quant_gemv);
  // prefill: the FP8 GEMM for w8a8 when rows and cols are multiples of 16, else the GEMV
  EXPECT_EQ(path(plan_fp8_matmul(9, 14336, 4096, ActQuant::dynamic_row, def, true)), Fp8Path::quant_lt);
  EXPECT_EQ(path(plan_fp8_matmul(2048, 4096, 14336, ActQuant::static_tensor, def, true)), Fp8Path::quant_lt);
  EXPECT_EQ(path(plan_fp8_matmul(64, 4104, 4096, ActQuant::dynamic_row, def, true)), Fp8Path::quant_gemv);
  EXPECT_EQ(path(plan_fp8_matmul(64, 4096, 4100, ActQuant::dynamic_row, def, true)), Fp8Path::quant_gemv);
  EXPECT_EQ(path(plan_fp8_matmul(64, 333, 172, ActQuant::none, def, true)), Fp8Path::bf16_lt);
  // no cuBLASLt: the GEMV at every size
  EXPECT_EQ(path(plan_fp8_matmul(512, 4096, 4096, ActQuant::none, def, false)), Fp8Path::gemv);
  EXPECT_EQ(path(plan_fp8_matmul(512, 4096, 4096, ActQuant::dynamic_row, def, false)), Fp8Path::quant_gemv);
  // the activation treatment applied
  EXPECT_EQ(plan_fp8_matmul(1, 64, 64, ActQuant::dynamic_row, def, true).act, ActQuant::dynamic_row);
  Fp8Policy ab;
  ab.decode_w8a16 = true;
  ab.prefill_w8a8 = true;
  auto p = plan_fp8_matmul(1, 4096, 4096, ActQuant::dynamic_row, ab, true);
  EXPECT_EQ(p.path, Fp8Path::gemv);
  EXPECT_EQ(p.act, ActQuant::none);
  p = plan_fp8_matmul(8, 4096, 4096, ActQuant::static_tensor, ab, true);
  EXPECT_EQ(p.path, Fp8Path::gemv);
  p = plan_fp8_matmul(9, 4096, 4096, ActQuant::none, ab, true);
  EXPECT_EQ(p.path, Fp8Path::quant_lt);
  EXPECT_EQ(p.act, ActQuant::dynamic_row);
  p = plan_fp8_matmul(9, 4096, 4096, ActQuant::static_tensor, ab, true);  // w8a8 stays as it is
  EXPECT_EQ(p.act, ActQuant::static_tensor);
  // no cuBLASLt: the decode knob is for decode only
  p = plan_fp8_matmul(100, 4096, 4096, ActQuant::dynamic_row, ab, false);
  EXPECT_EQ(p.path, Fp8Path::quant_gemv);
  // tiles of the weight-only prefill: multiples of 16 rows, <= 32 MiB of bf16, never more than the weight
  EXPECT_EQ(paca::cuda::fp8_tile_rows(14336, 4096), 4096);
  EXPECT_EQ(paca::cuda::fp8_tile_rows(4096, 14336), 1168);
  EXPECT_EQ(paca::cuda::fp8_tile_rows(100, 64), 100);
  EXPECT_EQ(paca::cuda::fp8_tile_rows(100000, 1 << 30), 16);
  // two rows per warp while every SM still gets a block of 8 warps
  EXPECT_EQ(paca::cuda::fp8_gemv_rows_per_warp(4096, 132), 2);
  EXPECT_EQ(paca::cuda::fp8_gemv_rows_per_warp(2112, 132), 2);
  EXPECT_EQ(paca::cuda::fp8_gemv_rows_per_warp(2111, 132), 1);
  EXPECT_EQ(paca::cuda::fp8_gemv_rows_per_warp(1024, 132), 1);
  EXPECT_EQ(paca::cuda::fp8_gemv_rows_per_warp(16, 0), 2);
  // bytes on the device: codes padded to 256 bytes, then a scale per row
  TensorView w;
  w.dtype = DType::f8e4m3;
  w.rows = 10;
  w.cols = 6;
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 256u + 40u);
  w.rows = 14336;
  w.cols = 4096;
  EXPECT_EQ(paca::cuda::device_weight_bytes(w), 14336u * 4096u + 14336u * 4u);
}

// The activation quantization each FP8 matmul applies (what a fused norm must
// reproduce), when a norm's quantized output may be reused, the switch of
// the fusion, and the fused kernel's argument checks (no device needed).
TEST(CudaHost, NormQuantPlanningAndMemo) {
  using paca::ActQuant;
  using paca::cuda::Fp8ActQuant;
  using paca::cuda::fp8_act_quant;
  const paca::cuda::Fp8Policy def;
  // decode: values for the GEMV (no code rows), the tensor's bound or static scale
  auto q = fp8_act_quant(1, 4096, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, def, true);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->dynamic, 1);
  EXPECT_EQ(q->ub, 1200.0f);
  EXPECT_EQ(q->code_rows, 0);
  q = fp8_act_quant(8, 4096, 4096, ActQuant::static_tensor, 0.0f, 0.25f, def, true);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->dynamic, 0);
  EXPECT_EQ(q->scale, 0.25f);
  EXPECT_FALSE(fp8_act_quant(1, 4096, 4096, ActQuant::none, 0.0f, 0.0f, def, true).has_value());
  // prefill: codes for the whole 16s of tokens (the FP8 GEMM), values for the rest
  EXPECT_EQ(fp8_act_quant(37, 4096, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, def, true)->code_rows, 32);
  EXPECT_EQ(fp8_act_quant(300, 4096, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, def, true)->code_rows, 288);
  EXPECT_EQ(fp8_act_quant(9, 4096, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, def, true)->code_rows, 0);
  EXPECT_EQ(fp8_act_quant(300, 4104, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, def, true)->code_rows, 0);
  EXPECT_EQ(fp8_act_quant(300, 4096, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, def, false)->code_rows, 0);
  // the policy: weight-only at decode; unbounded per-token scales at prefill
  paca::cuda::Fp8Policy ab;
  ab.decode_w8a16 = ab.prefill_w8a8 = true;
  EXPECT_FALSE(fp8_act_quant(1, 4096, 4096, ActQuant::dynamic_row, 1200.0f, 0.0f, ab, true).has_value());
  q = fp8_act_quant(64, 4096, 4096, ActQuant::none, 0.0f, 0.0f, ab, true);
  ASSERT_TRUE(q.has_value());
  EXPECT_EQ(q->dynamic, 1);
  EXPECT_EQ(q->ub, INFINITY);
  EXPECT_EQ(q->code_rows, 64);
  // equality: every field, floats bit for bit
  Fp8ActQuant a, b;
  a.ub = b.ub = 1200.0f;
  EXPECT_TRUE(a == b);
  b.ub = 1199.9999f;
  EXPECT_FALSE(a == b);
  b = a;
  b.code_rows = 16;
  EXPECT_FALSE(a == b);
  b = a;
  b.dynamic = 0;
  EXPECT_FALSE(a == b);
  a.dynamic = b.dynamic = 0;
  a.scale = 0.0f;
  b.scale = -0.0f;
  EXPECT_FALSE(a == b);
  // the memo: the exact buffer, shape and quantization, forgotten on an overlapping write
  paca::cuda::NormQuantMemo m;
  std::vector<float> buf(3 * 64 + 64);
  const float* p = buf.data() + 32;
  Fp8ActQuant k;
  k.ub = 1200.0f;
  EXPECT_FALSE(m.usable(p, 3, 64, k));  // nothing made yet
  m.made(p, 3, 64, k);
  EXPECT_TRUE(m.usable(p, 3, 64, k));
  EXPECT_FALSE(m.usable(p + 1, 3, 64, k));
  EXPECT_FALSE(m.usable(p, 2, 64, k));  // fewer rows: another activation
  EXPECT_FALSE(m.usable(p, 3, 63, k));
  Fp8ActQuant other = k;
  other.ub = 3.0f;
  EXPECT_FALSE(m.usable(p, 3, 64, other));
  m.wrote(p - 32, 32 * sizeof(float));  // ends where the buffer starts
  m.wrote(p + 3 * 64, 32 * sizeof(float));  // starts where it ends
  m.wrote(p, 0);
  EXPECT_TRUE(m.usable(p, 3, 64, k));
  m.wrote(p + 3 * 64 - 1, sizeof(float));  // its last element
  EXPECT_FALSE(m.usable(p, 3, 64, k));
  EXPECT_FALSE(m.valid());
  m.made(p, 3, 64, k);
  m.wrote(p - 1, 2 * sizeof(float));  // its first element
  EXPECT_FALSE(m.valid());
  m.made(p, 3, 64, k);
  m.forget();
  EXPECT_FALSE(m.usable(p, 3, 64, k));
  EXPECT_TRUE(paca::cuda::CudaBackendOptions{}.fp8_fused_norm);
  // the fused kernel refuses bad arguments before any CUDA call
  using paca::cuda::E4m3Quant;
  using paca::cuda::launch_rmsnorm_quant;
  float f[4] = {};
  uint8_t c8[4] = {};
  E4m3Quant ok;
  ok.act_ub = INFINITY;
  ok.qf = f;
  ok.ldqf = 4;
  ok.scales = f;
  EXPECT_EQ(launch_rmsnorm_quant(f, nullptr, f, 0, 1e-5f, 0, 4, f, ok, nullptr), cudaSuccess);  // no rows
  auto bad = [&](E4m3Quant e, const float* r = nullptr, float* y = nullptr, int cols = 4) {
    return launch_rmsnorm_quant(f, r, f, 0, 1e-5f, 1, cols, y != nullptr ? y : f + 1, e, nullptr);
  };
  E4m3Quant e = ok;
  e.scales = nullptr;
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e = ok;
  e.act_ub = 0.0f;
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e.act_ub = NAN;
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e = ok;
  e.dynamic = 0;  // static without a scale
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e = ok;
  e.ldqf = 3;  // ld below cols
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e = ok;
  e.qf = nullptr;  // values wanted, nowhere to put them
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e = ok;
  e.code_rows = 1;  // codes wanted, no q8
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e.q8 = c8;
  e.ldq8 = 2;
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e.code_rows = 2;  // more code rows than rows
  e.ldq8 = 4;
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  e = ok;
  e.code_rows = -1;
  EXPECT_EQ(bad(e), cudaErrorInvalidValue);
  EXPECT_EQ(bad(ok, f, f), cudaErrorInvalidValue);  // with the add: y aliases x
  EXPECT_EQ(bad(ok, f + 1, f + 1), cudaErrorInvalidValue);  // y aliases r
  EXPECT_EQ(bad(ok, nullptr, nullptr, 0), cudaErrorInvalidValue);  // cols 0
  EXPECT_EQ(launch_rmsnorm_quant(nullptr, nullptr, f, 0, 1e-5f, 1, 4, f, ok, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_rmsnorm_quant(f, nullptr, nullptr, 0, 1e-5f, 1, 4, f, ok, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_rmsnorm_quant(f, nullptr, f, 0, 1e-5f, 1, 4, nullptr, ok, nullptr), cudaErrorInvalidValue);
}

TEST(CudaHost, Fp8WeightChecks) {
  using paca::cuda::has_e4m3_nan;
  // every code at every position of a 13-byte buffer (the 8-byte and the tail loop)
  std::vector<uint8_t> buf(13, 0x42);
  for (size_t at = 0; at < buf.size(); ++at)
    for (int c = 0; c < 256; ++c) {
      buf[at] = static_cast<uint8_t>(c);
      ASSERT_EQ(has_e4m3_nan(buf.data(), buf.size()), (c & 0x7f) == 0x7f) << "code " << c << " at " << at;
      buf[at] = 0x42;
    }
  EXPECT_FALSE(has_e4m3_nan(buf.data(), 0));
  std::vector<uint8_t> codes(4 * 20, 0x3e);
  std::vector<float> scales(4, 0.5f);
  TensorView w;
  w.name = "layers.1.w1";
  w.dtype = DType::f8e4m3;
  w.rows = 4;
  w.cols = 20;
  w.data = codes.data();
  w.scales = scales.data();
  w.act = paca::ActQuant::dynamic_row;
  w.act_ub = INFINITY;
  paca::cuda::check_fp8_weight(w);  // fine
  auto refused = [](const TensorView& t, const char* what) {
    try {
      paca::cuda::check_fp8_weight(t);
      ADD_FAILURE() << "accepted: " << what;
    } catch (const paca::Error& e) {
      EXPECT_EQ(e.status(), paca::Status::format);
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_NE(std::string(e.what()).find("layers.1.w1"), std::string::npos) << e.what();
    }
  };
  TensorView t = w;
  t.scales = nullptr;
  refused(t, "has no scales");
  t = w;
  t.act_ub = 0;
  refused(t, "positive bound");
  t.act_ub = NAN;
  refused(t, "positive bound");
  t = w;
  t.act = paca::ActQuant::static_tensor;
  t.act_scale = 0;
  refused(t, "static activation scale");
  t.act_scale = INFINITY;
  refused(t, "static activation scale");
  t.act_scale = 0.25f;
  paca::cuda::check_fp8_weight(t);
  codes[2 * 20 + 17] = 0xff;
  refused(w, "NaN code (0x7f or 0xff) in row 2");
}

TEST(CudaHost, FlashPrefillPlanning) {
  using paca::cuda::use_flash_prefill;
  EXPECT_TRUE(use_flash_prefill(16, 16, 128));
  EXPECT_TRUE(use_flash_prefill(16, 2048, 64));
  EXPECT_FALSE(use_flash_prefill(16, 15, 128));  // decode-sized: the split-K kernel
  EXPECT_FALSE(use_flash_prefill(16, 2048, 96));  // head_dim the kernel lacks
  EXPECT_FALSE(use_flash_prefill(16, 2048, 32));
  EXPECT_FALSE(use_flash_prefill(0, 2048, 128));  // switched off
  EXPECT_TRUE(use_flash_prefill(1, 1, 64));       // forced, as the device tests do
  EXPECT_EQ(paca::cuda::CudaBackendOptions{}.flash_min_rows, 16);
}

TEST(CudaHost, GraphPlanning) {
  using paca::cuda::context_bucket;
  using paca::cuda::plan_decode_graph;
  EXPECT_EQ(context_bucket(0), 256);
  EXPECT_EQ(context_bucket(1), 256);
  EXPECT_EQ(context_bucket(256), 256);
  EXPECT_EQ(context_bucket(257), 512);
  EXPECT_EQ(context_bucket(5000), 8192);
  EXPECT_EQ(context_bucket(131072), 131072);
  // the split plan is the same for every length within a bucket
  EXPECT_EQ(paca::cuda::attention_splits_for(1, 32, context_bucket(300), 132),
            paca::cuda::attention_splits_for(1, 32, context_bucket(511), 132));
  const std::vector<int> one = {1}, three = {1, 1, 1}, prefill = {1, 4};
  const std::vector<size_t> b1 = {3}, b3 = {3, 5, 1}, b2 = {1, 1}, big = {17};
  auto p = plan_decode_graph(true, three, b3, 70, 0);
  EXPECT_TRUE(p.graph);
  EXPECT_EQ(p.ctx_bucket, 256);
  EXPECT_EQ(p.table_blocks, 16);
  EXPECT_FALSE(plan_decode_graph(false, three, b3, 70, 0).graph);  // graphs off
  EXPECT_FALSE(plan_decode_graph(true, prefill, b2, 70, 0).graph);  // a sequence with 4 tokens
  EXPECT_FALSE(plan_decode_graph(true, {}, {}, 0, 0).graph);
  EXPECT_FALSE(plan_decode_graph(true, three, b2, 70, 0).graph);  // inconsistent
  const std::vector<int> nine(9, 1);
  const std::vector<size_t> nine_b(9, 1);
  EXPECT_FALSE(plan_decode_graph(true, nine, nine_b, 10, 0).graph);  // more than kMaxGraphSeqs
  p = plan_decode_graph(true, one, big, 270, 16);  // the table grows to the next power of two
  EXPECT_TRUE(p.graph);
  EXPECT_EQ(p.table_blocks, 32);
  EXPECT_EQ(p.ctx_bucket, 512);
  p = plan_decode_graph(true, one, b1, 40, 64);  // and never shrinks
  EXPECT_EQ(p.table_blocks, 64);
}

TEST(CudaHost, GraphCacheEvictsTheLeastRecentlyUsed) {
  std::vector<int> destroyed;
  int g[4] = {0, 1, 2, 3};
  {
    paca::cuda::GraphCache cache(2, [&](void* p) { destroyed.push_back(*static_cast<int*>(p)); });
    cache.insert({1, 2, 3}, &g[0]);
    cache.insert({1, 2, 4}, &g[1]);
    EXPECT_EQ(cache.find({1, 2, 3}), &g[0]);  // now the most recent
    EXPECT_EQ(cache.find({1, 2}), nullptr);   // a prefix is another key
    cache.insert({7}, &g[2]);                 // evicts {1, 2, 4}
    EXPECT_EQ(destroyed, std::vector<int>{1});
    EXPECT_EQ(cache.find({1, 2, 4}), nullptr);
    EXPECT_EQ(cache.find({1, 2, 3}), &g[0]);
    EXPECT_EQ(cache.find({7}), &g[2]);
    EXPECT_EQ(cache.size(), 2u);
    cache.insert({8}, &g[3]);  // evicts {1, 2, 3}
    EXPECT_EQ(destroyed, (std::vector<int>{1, 0}));
  }
  EXPECT_EQ(destroyed.size(), 4u);  // the rest went with the cache
}

TEST(CudaHost, TooLittleMemoryAndStatsOfOtherBackends) {
  try {
    paca::cuda::check_fits("cuda:1", "the weights", 2000, 1000, 4000);
    ADD_FAILURE() << "2000 bytes fit in 1000";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::out_of_memory);
    EXPECT_NE(std::string(e.what()).find("too little memory on cuda:1 for the weights: need 2000 bytes, have 1000 free of 4000"),
              std::string::npos)
        << e.what();
  }
  paca::cuda::check_fits("cuda:1", "the weights", 1000, 1000, 4000);
  auto cpu = paca::make_cpu_backend(1);
  const paca::cuda::GraphStats st = paca::cuda::graph_stats(*cpu);
  EXPECT_EQ(st.recorded + st.replayed + st.eager + st.fallbacks, 0u);
  EXPECT_GT(cpu->memory().total, 0u);
}

// Bad arguments come back as cudaErrorInvalidValue before any CUDA call, and
// empty problems as cudaSuccess: both hold without a device.
TEST(CudaHost, KernelArgumentChecks) {
  using namespace paca::cuda;
  float f = 0;
  uint16_t h = 0;
  int32_t i = 0;
  EXPECT_EQ(launch_gemv_bf16(nullptr, 4, 8, &f, 8, 1, &f, 4, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_gemv_bf16(&h, 4, 8, &f, 7, 1, &f, 4, nullptr), cudaErrorInvalidValue);  // ldx < cols
  EXPECT_EQ(launch_gemv_bf16(&h, 0, 8, &f, 8, 1, &f, 4, nullptr), cudaSuccess);
  EXPECT_EQ(launch_gemv_bf16(&h, 4, 8, &f, 8, 0, &f, 4, nullptr), cudaSuccess);
  EXPECT_EQ(launch_embed_bf16(&h, 0, 8, &i, 1, &f, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_embed_bf16(&h, 4, 8, &i, 0, &f, nullptr), cudaSuccess);
  EXPECT_EQ(launch_rope(&f, 1, 8, 1, 7, &i, &f, 0, nullptr), cudaErrorInvalidValue);  // odd head_dim
  EXPECT_EQ(launch_rope(&f, 1, 8, 2, 8, &i, &f, 0, nullptr), cudaErrorInvalidValue);  // ld < heads * dim
  EXPECT_EQ(launch_swiglu(nullptr, &f, 1, &f, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_add(&f, &f, 0, nullptr), cudaSuccess);
  float g2 = 0, y2 = 0;
  EXPECT_EQ(launch_add_rmsnorm(&f, &g2, &f, 0, 1e-5f, 1, 1, &f, nullptr), cudaErrorInvalidValue);   // y aliases x
  EXPECT_EQ(launch_add_rmsnorm(&f, &g2, &f, 0, 1e-5f, 1, 1, &g2, nullptr), cudaErrorInvalidValue);  // y aliases r
  EXPECT_EQ(launch_add_rmsnorm(&f, nullptr, &f, 0, 1e-5f, 1, 1, &y2, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_add_rmsnorm(&f, &g2, &f, 0, 1e-5f, 1, 0, &y2, nullptr), cudaErrorInvalidValue);  // cols 0
  EXPECT_EQ(launch_add_rmsnorm(&f, &g2, &f, 0, 1e-5f, 0, 4, &y2, nullptr), cudaSuccess);           // no rows
  uint8_t* blocks[1] = {nullptr};
  PagedKv kv;
  kv.blocks = blocks;
  kv.block_tokens = 16;
  kv.kv_dim = 64;
  kv.elem_bytes = 2;
  EXPECT_EQ(launch_attention(kv, &f, 256, &i, 1, 4, 3, 64, 1.0f, 1, nullptr, &f, 256, nullptr),
            cudaErrorInvalidValue);  // 4 heads over 3 kv heads
  EXPECT_EQ(launch_attention(kv, &f, 1024, &i, 1, 4, 1, 512, 1.0f, 1, nullptr, &f, 1024, nullptr),
            cudaErrorInvalidValue);  // head_dim > 256
  EXPECT_EQ(launch_attention(kv, &f, 256, &i, 1, 4, 1, 64, 1.0f, 2, nullptr, &f, 256, nullptr),
            cudaErrorInvalidValue);  // splits without scratch
  EXPECT_EQ(launch_attention(kv, &f, 256, &i, 0, 4, 1, 64, 1.0f, 1, nullptr, &f, 256, nullptr), cudaSuccess);
  // flash prefill: head_dim 64/128 only, GQA multiple, even strides
  alignas(8) float q2[256] = {};
  EXPECT_EQ(launch_flash_prefill(kv, q2, 256, &i, 1, 4, 1, 96, 1.0f, q2, 256, nullptr),
            cudaErrorInvalidValue);  // head_dim 96
  EXPECT_EQ(launch_flash_prefill(kv, q2, 256, &i, 1, 4, 3, 64, 1.0f, q2, 256, nullptr),
            cudaErrorInvalidValue);  // 4 heads over 3 kv heads
  EXPECT_EQ(launch_flash_prefill(kv, q2, 257, &i, 1, 4, 1, 64, 1.0f, q2, 256, nullptr),
            cudaErrorInvalidValue);  // odd ldq
  EXPECT_EQ(launch_flash_prefill(kv, q2 + 1, 256, &i, 1, 4, 1, 64, 1.0f, q2, 256, nullptr),
            cudaErrorInvalidValue);  // q not 8-byte aligned
  EXPECT_EQ(launch_flash_prefill(kv, q2, 128, &i, 1, 4, 1, 64, 1.0f, q2, 256, nullptr),
            cudaErrorInvalidValue);  // ldq < heads * dim
  EXPECT_EQ(launch_flash_prefill(kv, q2, 256, &i, 0, 4, 1, 64, 1.0f, q2, 256, nullptr), cudaSuccess);
  EXPECT_TRUE(flash_prefill_supports(kv, 4, 1, 64));
  EXPECT_FALSE(flash_prefill_supports(kv, 4, 2, 64));  // 2 x 64 > kv_dim 64
  // fused RoPE + KV write: the kv heads must fill the cache row exactly
  EXPECT_EQ(launch_rope_kv_write(kv, q2, 256, q2, 64, q2, 64, &i, 1, 4, 2, 64, &f, 0, nullptr),
            cudaErrorInvalidValue);  // 2 x 64 != kv_dim
  EXPECT_EQ(launch_rope_kv_write(kv, q2, 256, q2, 64, q2, 64, &i, 1, 4, 1, 63, &f, 0, nullptr),
            cudaErrorInvalidValue);  // odd head_dim
  EXPECT_EQ(launch_rope_kv_write(kv, q2, 256, q2, 64, q2, 64, &i, 1, 4, 1, 64, nullptr, 0, nullptr),
            cudaErrorInvalidValue);  // no frequencies
  EXPECT_EQ(launch_rope_kv_write(kv, q2, 256, q2, 64, q2, 64, &i, 0, 4, 1, 64, &f, 0, nullptr), cudaSuccess);
  kv.elem_bytes = 3;
  EXPECT_FALSE(flash_prefill_supports(kv, 4, 1, 64));
  EXPECT_EQ(launch_kv_write(kv, &f, 64, &f, 64, &i, 1, nullptr), cudaErrorInvalidValue);
  uint8_t b = 0;
  // block GEMV / dequant / embed: GGUF type ids, cols a multiple of the block
  EXPECT_EQ(launch_gemv_blocks(99, &b, 4, 256, &f, 256, 1, &f, 4, nullptr), cudaErrorInvalidValue);  // no such type
  EXPECT_EQ(launch_gemv_blocks(12, &b, 4, 32, &f, 32, 1, &f, 4, nullptr), cudaErrorInvalidValue);   // Q4_K: 256s
  EXPECT_EQ(launch_gemv_blocks(2, &b, 4, 32, &f, 31, 1, &f, 4, nullptr), cudaErrorInvalidValue);    // ldx < cols
  EXPECT_EQ(launch_gemv_blocks(2, &b, 4, 32, &f, 32, 1, &f, 3, nullptr), cudaErrorInvalidValue);    // ldy < rows
  EXPECT_EQ(launch_gemv_blocks(2, nullptr, 4, 32, &f, 32, 1, &f, 4, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_gemv_blocks(14, &b, 0, 256, &f, 256, 1, &f, 4, nullptr), cudaSuccess);
  EXPECT_EQ(launch_gemv_blocks(14, &b, 4, 256, &f, 256, 0, &f, 4, nullptr), cudaSuccess);
  EXPECT_EQ(launch_dequant_blocks_bf16(8, &b, 4, 48, &h, nullptr), cudaErrorInvalidValue);  // Q8_0: 32s
  EXPECT_EQ(launch_dequant_blocks_bf16(8, &b, 0, 64, &h, nullptr), cudaSuccess);
  EXPECT_EQ(launch_embed_blocks(13, &b, 4, 256, nullptr, 1, &f, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_embed_blocks(13, &b, 4, 256, &i, 0, &f, nullptr), cudaSuccess);
  EXPECT_EQ(blocks_row_bytes(12, 512), 288u);
  EXPECT_EQ(blocks_row_bytes(14, 256), 210u);
  EXPECT_EQ(blocks_row_bytes(2, 64), 36u);
  EXPECT_EQ(blocks_row_bytes(3, 33), 0u);
  EXPECT_EQ(launch_gemv_f8(&b, nullptr, 4, 16, &f, 16, nullptr, 1, &f, 4, 1, nullptr),
            cudaErrorInvalidValue);  // no scales
  EXPECT_EQ(launch_gemv_f8(&b, &f, 4, 16, &f, 16, nullptr, 1, &f, 4, 3, nullptr),
            cudaErrorInvalidValue);  // 3 rows per warp
  EXPECT_EQ(launch_gemv_f8(&b, &f, 4, 16, &f, 15, nullptr, 1, &f, 4, 2, nullptr), cudaErrorInvalidValue);  // ldx < cols
  EXPECT_EQ(launch_gemv_f8(&b, &f, 0, 16, &f, 16, nullptr, 1, &f, 4, 2, nullptr), cudaSuccess);
  EXPECT_EQ(launch_quantize_e4m3(&f, 8, 1, 8, 1, 1, 0.0f, 0.0f, &b, 8, nullptr, 0, &f, nullptr),
            cudaErrorInvalidValue);  // dynamic without a positive bound
  EXPECT_EQ(launch_quantize_e4m3(&f, 8, 1, 8, 1, 0, 0.0f, 0.0f, &b, 8, nullptr, 0, &f, nullptr),
            cudaErrorInvalidValue);  // static without a scale
  EXPECT_EQ(launch_quantize_e4m3(&f, 8, 1, 8, 2, 1, INFINITY, 0.0f, nullptr, 0, &f, 8, &f, nullptr),
            cudaErrorInvalidValue);  // padding rows for f32 values
  EXPECT_EQ(launch_quantize_e4m3(&f, 8, 1, 8, 1, 1, INFINITY, 0.0f, nullptr, 0, nullptr, 0, &f, nullptr),
            cudaErrorInvalidValue);  // no output
  EXPECT_EQ(launch_quantize_e4m3(&f, 8, 0, 8, 0, 1, INFINITY, 0.0f, &b, 8, nullptr, 0, &f, nullptr), cudaSuccess);
  EXPECT_EQ(launch_e4m3_to_bf16(nullptr, 4, &h, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_e4m3_to_bf16(&b, 0, &h, nullptr), cudaSuccess);
  EXPECT_EQ(launch_scale_rows_tokens(&f, 3, 4, 1, &f, nullptr, &f, 4, nullptr), cudaErrorInvalidValue);  // lds < rows
  EXPECT_EQ(launch_scale_rows_tokens(&f, 4, 4, 0, &f, nullptr, &f, 4, nullptr), cudaSuccess);
  EXPECT_EQ(attention_scratch_floats(2, 4, 64, 1), 0u);
  EXPECT_EQ(attention_scratch_floats(2, 4, 64, 3), 2u * 4 * 3 * 66);
}

// Logits with everything the candidate order must handle: ties, -0 and +0,
// -inf, NaN, +inf, subnormals, +-FLT_MAX.
std::vector<float> awkward_logits(std::mt19937& rng, size_t n) {
  const float inf = std::numeric_limits<float>::infinity();
  const float special[] = {0.0f,  -0.0f, -inf, std::numeric_limits<float>::quiet_NaN(), inf, 1e-45f, -1e-45f,
                           3.4028235e38f, -3.4028235e38f, 1.0f};
  std::uniform_real_distribution<float> u(-8.0f, 8.0f);
  std::uniform_int_distribution<int> pick(0, 99);
  std::vector<float> l(n);
  for (float& x : l) {
    const int r = pick(rng);
    x = r < 10 ? special[r] : r < 30 ? std::round(u(rng)) : u(rng);
  }
  return l;
}

// The device top-k's keys (kernels/topk.h): their unsigned order is
// select_top_k's candidate order, -inf and NaN get 0, and a key gives back
// its index and logit.
TEST(CudaHost, TopKKeys) {
  using namespace paca::cuda;
  std::mt19937 rng(99);
  const std::vector<float> l = awkward_logits(rng, 4000);
  std::vector<paca::Candidate> cands;
  for (size_t i = 0; i < l.size(); ++i) {
    const uint64_t key = topk_key(l[i], static_cast<uint32_t>(i));
    if (!(l[i] > -std::numeric_limits<float>::infinity())) {
      EXPECT_EQ(key, 0u) << l[i];
      continue;
    }
    ASSERT_NE(key, 0u) << l[i];
    EXPECT_EQ(topk_key_id(key), i);
    EXPECT_EQ(topk_key_logit(key), l[i]);  // -0 comes back +0, which compares equal
    cands.push_back({static_cast<int32_t>(i), l[i]});
  }
  std::uniform_int_distribution<size_t> any(0, cands.size() - 1);
  for (int trial = 0; trial < 200000; ++trial) {
    const paca::Candidate& a = cands[any(rng)];
    const paca::Candidate& b = cands[any(rng)];
    const uint64_t ka = topk_key(a.logit, static_cast<uint32_t>(a.id)), kb = topk_key(b.logit, static_cast<uint32_t>(b.id));
    ASSERT_EQ(paca::candidate_before(a, b), ka > kb) << a.id << ":" << a.logit << " vs " << b.id << ":" << b.logit;
  }
  EXPECT_GT(topk_key(-3.4028235e38f, 0xFFFFFFFEu), 0u);  // the smallest real key is still a key
  EXPECT_EQ(topk_scratch_keys(2048, 256), 0u);
  EXPECT_EQ(topk_scratch_keys(2049, 256), 2u * 2 * 256);
  EXPECT_EQ(topk_scratch_keys(128256, 40), 2u * 63 * 40);
  float f = 0;
  uint64_t k = 0;
  EXPECT_EQ(launch_top_k(&f, 1, 0, nullptr, &k, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_top_k(&f, 1, kTopKMaxK + 1, nullptr, &k, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_top_k(nullptr, 1, 1, nullptr, &k, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_top_k(&f, 5000, 2, nullptr, &k, nullptr), cudaErrorInvalidValue);  // rounds without scratch
}

// The device's mass term (kernels/topk.h, written out with explicit
// roundings) compiled for the host gives the sampler's token_mass bit for
// bit: awkward logits against several maxima, and every 97th float pattern
// of the differences that matter ([-88, 0]).
TEST(CudaHost, MassTermIsTheSamplers) {
  using namespace paca::cuda;
  std::mt19937 rng(7);
  const std::vector<float> l = awkward_logits(rng, 20000);
  for (size_t n : {size_t{1}, size_t{700}, size_t{128256}}) {
    const double scale = paca::mass_scale(n);
    for (float m : {0.0f, 8.0f, -3.25f, 3.4028235e38f, 1e-45f}) {
      for (float x : l) {
        if (x > m) continue;  // the maximum is the largest logit
        ASSERT_EQ(logit_mass_term(x, m, scale), paca::token_mass(x, m, 1.0f, scale)) << x << " " << m << " " << n;
      }
    }
    uint64_t checked = 0;
    for (uint32_t b = 0x80000000u; b <= 0xC2B00000u; b += 97) {  // -0 .. -88
      float d;
      std::memcpy(&d, &b, sizeof d);
      ASSERT_EQ(logit_mass_term(d, 0.0f, scale), paca::token_mass(d, 0.0f, 1.0f, scale)) << d;
      ++checked;
    }
    EXPECT_GT(checked, 10000000u);
  }
  EXPECT_EQ(logit_mass_term(0.0f, 0.0f, 0x1p45), uint64_t{1} << 45);  // the maximum weighs 2^s
  float f = 0;
  uint64_t k = 0, out = 0;
  EXPECT_EQ(launch_logit_mass(nullptr, 1, &k, 2.0, &out, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_logit_mass(&f, 1, nullptr, 2.0, &out, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_logit_mass(&f, 1, &k, 2.0, nullptr, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_logit_mass(&f, -1, &k, 2.0, &out, nullptr), cudaErrorInvalidValue);
  EXPECT_EQ(launch_logit_mass(&f, 1, &k, 0x1p53, &out, nullptr), cudaErrorInvalidValue);
}

// ---- ops: CUDA vs CPU -------------------------------------------------------

// A host weight and the bytes behind it.
struct HostWeight {
  std::vector<uint8_t> bytes;
  std::vector<float> scales;  // FP8 only
  TensorView view;
};

// A block-quantized weight (GGUF's Q8_0 or a block type) of random rows, as
// paca quantize writes one.
HostWeight make_block_weight(std::mt19937& rng, const std::string& name, DType dt, int64_t rows, int64_t cols) {
  HostWeight w;
  const size_t rb = paca::row_bytes(dt, static_cast<size_t>(cols));
  w.bytes.resize(static_cast<size_t>(rows) * rb);
  for (int64_t r = 0; r < rows; ++r) {
    const std::vector<float> v = random_nonzero(rng, static_cast<size_t>(cols), 0.001f, 1.0f);
    paca::quantize_blocks(dt, v.data(), w.bytes.data() + static_cast<size_t>(r) * rb, static_cast<size_t>(cols));
  }
  w.view.name = name;
  w.view.dtype = dt;
  w.view.rows = rows;
  w.view.cols = cols;
  w.view.data = w.bytes.data();
  return w;
}

// An FP8 weight as the loader quantizes one (core/model/quantize.cpp): per
// row s = max|w| / 448, codes e4m3(w / s); rows of random magnitude.
HostWeight make_fp8_weight(std::mt19937& rng, const std::string& name, int64_t rows, int64_t cols, paca::ActQuant act,
                           float act_ub, float act_scale) {
  HostWeight w;
  w.bytes.resize(static_cast<size_t>(rows * cols));
  w.scales.resize(static_cast<size_t>(rows));
  std::uniform_real_distribution<float> row_mag(0.01f, 3.0f);
  for (int64_t r = 0; r < rows; ++r) {
    std::vector<float> v = random_nonzero(rng, static_cast<size_t>(cols), 0.001f, 1.0f);
    const float m = row_mag(rng);
    float mx = 0;
    for (float& e : v) mx = std::max(mx, std::fabs(e *= m));
    const float sc = mx / paca::kE4M3Max;
    w.scales[r] = sc;
    for (int64_t c = 0; c < cols; ++c) w.bytes[r * cols + c] = paca::f32_to_e4m3(v[c] / sc);
  }
  w.view.name = name;
  w.view.dtype = DType::f8e4m3;
  w.view.rows = rows;
  w.view.cols = cols;
  w.view.data = w.bytes.data();
  w.view.scales = w.scales.data();
  w.view.act = act;
  w.view.act_ub = act_ub;
  w.view.act_scale = act_scale;
  return w;
}

HostWeight make_weight(std::mt19937& rng, const std::string& name, DType dt, int64_t rows, int64_t cols) {
  HostWeight w;
  const std::vector<float> v = random_nonzero(rng, static_cast<size_t>(rows * cols));
  w.bytes.resize(paca::row_bytes(dt, static_cast<size_t>(cols)) * static_cast<size_t>(rows));
  for (size_t i = 0; i < v.size(); ++i) {
    if (dt == DType::f32) {
      std::memcpy(w.bytes.data() + 4 * i, &v[i], 4);
    } else {
      const uint16_t b = paca::f32_to_bf16(v[i]);
      std::memcpy(w.bytes.data() + 2 * i, &b, 2);
    }
  }
  w.view.name = name;
  w.view.dtype = dt;
  w.view.rows = rows;
  w.view.cols = cols;
  w.view.data = w.bytes.data();
  return w;
}

// The two backends side by side, with helpers to move activations.
class CudaOps : public ::testing::Test {
 protected:
  void SetUp() override {
    SKIP_WITHOUT_DEVICE();
    cpu_ = paca::make_cpu_backend(2);
    paca::cuda::CudaBackendOptions o;
    gpu_ = paca::cuda::make_cuda_backend(o);
  }
  void TearDown() override {
    for (auto& [be, p] : owned_) be->release(p);
  }
  void upload(std::initializer_list<const TensorView*> ws, Backend* be = nullptr) {
    std::vector<const TensorView*> v(ws);
    (be != nullptr ? be : gpu_.get())->upload_weights(v, nullptr);
  }
  // An activation holding `data` on backend be.
  Act act(Backend& be, int rows, int cols, const std::vector<float>& data) {
    void* p = be.alloc(static_cast<size_t>(rows) * cols * sizeof(float));
    owned_.push_back({&be, p});
    if (!data.empty()) be.copy(p, data.data(), data.size() * sizeof(float));
    return Act{static_cast<float*>(p), rows, cols};
  }
  std::vector<float> host(Backend& be, Act a) {
    std::vector<float> v(static_cast<size_t>(a.rows) * a.cols);
    be.to_host(a.data, v.data(), v.size());
    return v;
  }

  // A weight that lives as long as the test (backends find their copies by
  // the host address, so it must not be reused by a later weight).
  const TensorView& weight(DType dt, int64_t rows, int64_t cols) {
    weights_.push_back(make_weight(rng_, "w" + std::to_string(weights_.size()), dt, rows, cols));
    return weights_.back().view;
  }
  // Relative L2 error of x (tokens, w.cols) times w on gpu against the CPU
  // backend; the GPU's output is poisoned first, so every element must be written.
  double matmul_vs_cpu(Backend& gpu, const TensorView& w, const std::vector<float>& x, int tokens) {
    const int rows = static_cast<int>(w.rows), cols = static_cast<int>(w.cols);
    Act cx = act(*cpu_, tokens, cols, x), co = act(*cpu_, tokens, rows, {});
    Act gx = act(gpu, tokens, cols, x), go = act(gpu, tokens, rows, {});
    const std::vector<float> nan(static_cast<size_t>(tokens) * rows, std::nanf(""));
    gpu.copy(go.data, nan.data(), nan.size() * sizeof(float));
    cpu_->matmul(cx, w, co);
    gpu.matmul(gx, w, go);
    return rel_l2(host(gpu, go), host(*cpu_, co));
  }
  const TensorView& fp8_weight(int64_t rows, int64_t cols, paca::ActQuant act, float ub, float scale) {
    weights_.push_back(make_fp8_weight(rng_, "f" + std::to_string(weights_.size()), rows, cols, act, ub, scale));
    return weights_.back().view;
  }
  // Another CUDA backend with these options, alive until the fixture ends.
  Backend& extra(const paca::cuda::CudaBackendOptions& o) {
    extra_.push_back(paca::cuda::make_cuda_backend(o));
    return *extra_.back();
  }

  std::mt19937 rng_{1234};
  std::vector<std::unique_ptr<Backend>> extra_;  // destroyed after TearDown released owned_
  std::unique_ptr<Backend> cpu_, gpu_;
  std::vector<std::pair<Backend*, void*>> owned_;
  std::deque<HostWeight> weights_;
};

// The device's k best against select_top_k over the same logits: the same
// indices in the same order, the same values (awkward values included); and
// the vocabulary's mass against logit_mass, bit for bit (integers), with and
// without +inf (whose mass means nothing) and with no finite logit at all.
TEST_F(CudaOps, TopK) {
  for (int n : {1, 7, 2048, 2049, 5000, 32000, 128256}) {
    for (int variant = 0; variant < 3; ++variant) {
      std::vector<float> l = awkward_logits(rng_, static_cast<size_t>(n));
      const float inf = std::numeric_limits<float>::infinity();
      if (variant == 1) std::replace(l.begin(), l.end(), inf, 7.5f);
      if (variant == 2) std::fill(l.begin(), l.end(), -inf);
      const Act dev = act(*gpu_, 1, n, l);
      for (size_t k : {size_t{1}, size_t{2}, size_t{40}, size_t{256}, size_t{300}}) {
        std::vector<paca::Candidate> got, want;
        uint64_t mass = 12345;
        gpu_->top_k(dev.data, static_cast<size_t>(n), k, got, &mass);
        paca::select_top_k(l, k, want);
        ASSERT_EQ(got.size(), want.size()) << "n " << n << " k " << k;
        for (size_t i = 0; i < want.size(); ++i) {
          ASSERT_EQ(got[i].id, want[i].id) << "n " << n << " k " << k << " rank " << i;
          ASSERT_EQ(got[i].logit, want[i].logit) << "n " << n << " k " << k << " rank " << i;
        }
        if (want.empty()) {
          EXPECT_EQ(mass, 0u);
        } else if (std::isfinite(want[0].logit)) {
          ASSERT_EQ(mass, paca::logit_mass(l, want[0].logit)) << "n " << n << " k " << k;
        }
      }
    }
  }
}


TEST_F(CudaOps, Embed) {
  const TensorView& t = weight(DType::bf16, 301, 200);
  upload({&t});
  const std::vector<int32_t> ids = {5, 300, 0, 17, 5};
  Act c = act(*cpu_, 5, 200, {}), g = act(*gpu_, 5, 200, {});
  cpu_->embed(t, ids, c);
  gpu_->embed(t, ids, g);
  EXPECT_EQ(host(*gpu_, g), host(*cpu_, c));
}

TEST_F(CudaOps, RmsNorm) {
  for (int cols : {64, 172, 4096, 5000}) {
    const TensorView& w = weight(DType::f32, 1, cols);
    upload({&w});
    const std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(3) * cols, 0.1f, 4.0f);
    Act cx = act(*cpu_, 3, cols, x), co = act(*cpu_, 3, cols, {});
    Act gx = act(*gpu_, 3, cols, x), go = act(*gpu_, 3, cols, {});
    cpu_->rmsnorm(cx, w, 1e-5f, co);
    gpu_->rmsnorm(gx, w, 1e-5f, go);
    EXPECT_LT(rel_l2(host(*gpu_, go), host(*cpu_, co)), 1e-5) << cols;
  }
}

// The fused residual add + RMSNorm: the same bits as the GPU's add then
// rmsnorm, and the CPU's (the composed default) within f32 rounding; f32 and
// bf16 norm weights, rows of awkward lengths, the output poisoned first.
TEST_F(CudaOps, AddRmsNorm) {
  for (DType wdt : {DType::f32, DType::bf16}) {
    for (int cols : {64, 172, 1000, 4096, 5003}) {
      const int rows = 3;
      const TensorView& w = wdt == DType::f32 ? weight(DType::f32, 1, cols) : weight(DType::bf16, 1, cols);
      upload({&w});
      const size_t n = static_cast<size_t>(rows) * cols;
      const std::vector<float> x = random_nonzero(rng_, n, 0.1f, 4.0f), y = random_nonzero(rng_, n, 0.1f, 4.0f);
      const std::vector<float> nan(n, std::nanf(""));
      Act cx = act(*cpu_, rows, cols, x), cy = act(*cpu_, rows, cols, y), co = act(*cpu_, rows, cols, {});
      Act fx = act(*gpu_, rows, cols, x), fy = act(*gpu_, rows, cols, y), fo = act(*gpu_, rows, cols, nan);
      Act gx = act(*gpu_, rows, cols, x), gy = act(*gpu_, rows, cols, y), go = act(*gpu_, rows, cols, nan);
      cpu_->add_rmsnorm(cx, cy, w, 1e-5f, co);
      gpu_->add_rmsnorm(fx, fy, w, 1e-5f, fo);  // fused
      gpu_->add(gx, gy);                        // composed on the GPU
      gpu_->rmsnorm(gx, w, 1e-5f, go);
      const std::vector<float> fused_x = host(*gpu_, fx), fused_o = host(*gpu_, fo);
      EXPECT_EQ(0, std::memcmp(fused_x.data(), host(*gpu_, gx).data(), n * sizeof(float))) << cols;
      EXPECT_EQ(0, std::memcmp(fused_o.data(), host(*gpu_, go).data(), n * sizeof(float))) << cols;
      EXPECT_LT(rel_l2(fused_x, host(*cpu_, cx)), 1e-6) << cols;
      EXPECT_LT(rel_l2(fused_o, host(*cpu_, co)), 1e-5) << cols << " weights " << paca::dtype_name(wdt);
    }
  }
}

TEST_F(CudaOps, Matmul) {
  paca::cuda::CudaBackendOptions no_lt;
  no_lt.use_cublaslt = false;
  Backend* gemv_only = &extra(no_lt);
  struct Case {
    int rows, cols, tokens;
  };
  for (const Case& c : std::vector<Case>{{257, 200, 1}, {96, 172, 3}, {1000, 512, 1}, {1000, 512, 5},
                                         {1000, 512, 8}, {1000, 512, 37}, {333, 1024, 64}, {4099, 768, 2}}) {
    // the GEMV-only backend (f32 activations) at every size; the default one:
    // GEMV up to 8 tokens, cuBLASLt (activations rounded to bf16) above
    for (Backend* gpu : {gemv_only, gpu_.get()}) {
      const double tol = gpu == gemv_only || c.tokens <= 8 ? 1e-5 : 1e-2;
      const TensorView& w = weight(DType::bf16, c.rows, c.cols);
      upload({&w}, gpu);
      const std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(c.tokens) * c.cols);
      EXPECT_LT(matmul_vs_cpu(*gpu, w, x, c.tokens), tol)
          << c.rows << "x" << c.cols << " tokens " << c.tokens << " on " << gpu->name();
    }
  }
  EXPECT_EQ(gpu_->name().find("no cuBLASLt"), std::string::npos) << gpu_->name();
}

// Block-quantized weights kept as stored: the block GEMV (up to 8 tokens) and
// the dequantize + cuBLASLt path (more) against an f64 product with the
// host's dequantize_blocks values, every GGUF block type, rows not a
// multiple of the 8 rows of a thread block; the embedding lookup from such a
// table must give the host's values bit for bit (the device decodes the
// weights with the host's roundings).
TEST_F(CudaOps, BlockMatmulAndEmbed) {
  for (DType dt : {DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1, DType::q8_0, DType::q4_k, DType::q5_k,
                   DType::q6_k}) {
    for (const auto& [rows, cols] : std::vector<std::pair<int, int>>{{257, 512}, {1000, 768}}) {
      weights_.push_back(make_block_weight(rng_, "b" + std::to_string(weights_.size()), dt, rows, cols));
      const TensorView& w = weights_.back().view;
      upload({&w});
      std::vector<float> deq(static_cast<size_t>(rows) * cols);
      for (int r = 0; r < rows; ++r) paca::dequantize_blocks(dt, w.row(r), deq.data() + static_cast<size_t>(r) * cols, cols);
      for (int tokens : {1, 3, 8, 37}) {
        const std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(tokens) * cols);
        std::vector<float> ref(static_cast<size_t>(tokens) * rows);
        for (int t = 0; t < tokens; ++t)
          for (int r = 0; r < rows; ++r) {
            double s = 0;
            for (int c = 0; c < cols; ++c)
              s += static_cast<double>(deq[static_cast<size_t>(r) * cols + c]) * x[static_cast<size_t>(t) * cols + c];
            ref[static_cast<size_t>(t) * rows + r] = static_cast<float>(s);
          }
        Act gx = act(*gpu_, tokens, cols, x), go = act(*gpu_, tokens, rows, {});
        const std::vector<float> nan(ref.size(), std::nanf(""));
        gpu_->copy(go.data, nan.data(), nan.size() * sizeof(float));
        gpu_->matmul(gx, w, go);
        EXPECT_LT(rel_l2(host(*gpu_, go), ref), tokens <= 8 ? 1e-5 : 1e-2)
            << paca::dtype_name(dt) << " " << rows << "x" << cols << " tokens " << tokens;
      }
      const std::vector<int32_t> ids = {0, rows - 1, 5, 5, rows / 2};
      Act eo = act(*gpu_, static_cast<int>(ids.size()), cols, {});
      gpu_->embed(w, ids, eo);
      const std::vector<float> got = host(*gpu_, eo);
      for (size_t t = 0; t < ids.size(); ++t)
        EXPECT_EQ(std::memcmp(got.data() + t * cols, deq.data() + static_cast<size_t>(ids[t]) * cols, cols * sizeof(float)),
                  0)
            << paca::dtype_name(dt) << " embed row " << ids[t];
    }
  }
}

// The per-token quantizer against the CPU's formula (core/util/fp8.h),
// code for code and scale for scale: rows spanning 2^-14 .. 2^12 (E4M3
// subnormals, ties, saturation through a bound below the row maximum), odd
// row lengths, padding rows, outputs poisoned first.
TEST_F(CudaOps, Fp8QuantizeIsTheCpusBitForBit) {
  const int rows = 7, pad = 16;
  for (int cols : {1, 33, 1000, 4096}) {
    for (int mode : {0, 1, 2}) {  // dynamic unbounded, dynamic bounded, static
      std::vector<float> x(static_cast<size_t>(rows) * cols);
      std::uniform_real_distribution<float> e(-14.0f, 12.0f);
      std::bernoulli_distribution neg(0.5);
      for (float& v : x) v = (neg(rng_) ? -1.0f : 1.0f) * std::exp2(std::round(e(rng_) * 4) / 4);
      const float ub = mode == 1 ? 64.0f : INFINITY, sscale = 0.37f;
      std::vector<uint8_t> want(static_cast<size_t>(pad) * cols, 0);
      std::vector<float> want_s(pad, 1.0f), want_v(static_cast<size_t>(rows) * cols);
      for (int t = 0; t < rows; ++t) {
        float mx = 0;
        for (int c = 0; c < cols; ++c) mx = std::max(mx, std::fabs(x[t * cols + c]));
        const float s = mode == 2 ? sscale : std::max(std::min(mx, ub), 1e-12f) / paca::kE4M3Max;
        want_s[t] = s;
        for (int c = 0; c < cols; ++c) {
          want[t * cols + c] = paca::f32_to_e4m3(x[t * cols + c] / s);
          want_v[t * cols + c] = paca::e4m3_to_f32(want[t * cols + c]);
        }
      }
      float *dx = nullptr, *ds = nullptr, *dv = nullptr;
      uint8_t* dq = nullptr;
      ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dx), x.size() * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&ds), pad * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dv), want_v.size() * 4), cudaSuccess);
      ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dq), want.size()), cudaSuccess);
      cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
      cudaMemset(dq, 0x7f, want.size());
      cudaMemset(ds, 0xff, pad * 4);
      cudaMemset(dv, 0xff, want_v.size() * 4);
      const int dyn = mode == 2 ? 0 : 1;
      ASSERT_EQ(paca::cuda::launch_quantize_e4m3(dx, cols, rows, cols, pad, dyn, ub, sscale, dq, cols, nullptr, 0, ds,
                                                 nullptr),
                cudaSuccess);
      std::vector<uint8_t> got(want.size());
      std::vector<float> got_s(pad), got_v(want_v.size());
      ASSERT_EQ(cudaMemcpy(got.data(), dq, got.size(), cudaMemcpyDeviceToHost), cudaSuccess);
      cudaMemcpy(got_s.data(), ds, pad * 4, cudaMemcpyDeviceToHost);
      ASSERT_EQ(paca::cuda::launch_quantize_e4m3(dx, cols, rows, cols, rows, dyn, ub, sscale, nullptr, 0, dv, cols, ds,
                                                 nullptr),
                cudaSuccess);
      ASSERT_EQ(cudaMemcpy(got_v.data(), dv, got_v.size() * 4, cudaMemcpyDeviceToHost), cudaSuccess);
      cudaFree(dx);
      cudaFree(ds);
      cudaFree(dv);
      cudaFree(dq);
      size_t bad = 0;
      for (size_t i = 0; i < want.size(); ++i) bad += got[i] != want[i];
      EXPECT_EQ(bad, 0u) << "codes differ, cols " << cols << " mode " << mode;
      EXPECT_EQ(0, std::memcmp(got_s.data(), want_s.data(), pad * 4)) << "scales, cols " << cols << " mode " << mode;
      EXPECT_EQ(0, std::memcmp(got_v.data(), want_v.data(), want_v.size() * 4)) << "values, cols " << cols;
    }
  }
}

// The FP8 GEMV with one and two rows per warp: the same bits (each row's
// sums in the same order), and an f64 reference of the CPU's formula within
// f32 rounding (1e-5). An odd row count (the last warp's second row is
// past the end), the vector and the scalar path, token scales or none,
// outputs poisoned.
TEST_F(CudaOps, Fp8GemvRowsPerWarpSameBits) {
  struct Case {
    int rows, cols, tokens;
    bool xs;
  };
  for (const Case& c : std::vector<Case>{{1001, 4096, 1, false}, {1001, 4096, 3, true}, {37, 200, 8, true},
                                         {4099, 1040, 5, false}}) {
    const TensorView& w = fp8_weight(c.rows, c.cols, paca::ActQuant::none, 0, 0);
    const std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(c.tokens) * c.cols, 0.01f, 2.0f);
    const std::vector<float> xs = random_nonzero(rng_, static_cast<size_t>(c.tokens), 0.5f, 2.0f);
    std::vector<double> ref(static_cast<size_t>(c.tokens) * c.rows);
    for (int t = 0; t < c.tokens; ++t)
      for (int r = 0; r < c.rows; ++r) {
        double d = 0;
        for (int k = 0; k < c.cols; ++k)
          d += static_cast<double>(paca::e4m3_to_f32(w.data[static_cast<size_t>(r) * c.cols + k])) * x[t * c.cols + k];
        ref[static_cast<size_t>(t) * c.rows + r] = d * (c.xs ? xs[t] : 1.0) * w.scales[r];
      }
    uint8_t* dw = nullptr;
    float *dws = nullptr, *dx = nullptr, *dxs = nullptr, *dy = nullptr;
    const size_t ny = static_cast<size_t>(c.tokens) * c.rows;
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dw), w.bytes()), cudaSuccess);
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dws), c.rows * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dx), x.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dxs), xs.size() * 4), cudaSuccess);
    ASSERT_EQ(cudaMalloc(reinterpret_cast<void**>(&dy), ny * 4), cudaSuccess);
    cudaMemcpy(dw, w.data, w.bytes(), cudaMemcpyHostToDevice);
    cudaMemcpy(dws, w.scales, c.rows * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dx, x.data(), x.size() * 4, cudaMemcpyHostToDevice);
    cudaMemcpy(dxs, xs.data(), xs.size() * 4, cudaMemcpyHostToDevice);
    std::vector<float> got[2];
    for (int rw : {1, 2}) {
      cudaMemset(dy, 0xff, ny * 4);  // NaN
      ASSERT_EQ(paca::cuda::launch_gemv_f8(dw, dws, c.rows, c.cols, dx, c.cols, c.xs ? dxs : nullptr, c.tokens, dy,
                                           c.rows, rw, nullptr),
                cudaSuccess);
      got[rw - 1].resize(ny);
      ASSERT_EQ(cudaMemcpy(got[rw - 1].data(), dy, ny * 4, cudaMemcpyDeviceToHost), cudaSuccess);
    }
    for (void* p : {static_cast<void*>(dw), static_cast<void*>(dws), static_cast<void*>(dx), static_cast<void*>(dxs),
                    static_cast<void*>(dy)})
      cudaFree(p);
    EXPECT_EQ(0, std::memcmp(got[0].data(), got[1].data(), ny * 4))
        << c.rows << "x" << c.cols << " tokens " << c.tokens;
    const std::vector<float> ref_f(ref.begin(), ref.end());
    EXPECT_LT(rel_l2(got[1], ref_f), 1e-5) << c.rows << "x" << c.cols << " tokens " << c.tokens;
  }
}

// FP8 matmuls, CUDA vs the CPU backend's FP8 arithmetic, every activation
// treatment and path, awkward shapes, outputs poisoned. Tolerances (relative
// L2 of the whole output):
//   GEMV paths (w8a16 on f32 x; w8a8 with the CPU's codes, checked bit for
//     bit above): the same products summed in another order       1e-5
//   w8a8 through the FP8 GEMM (tokens in whole 16s; the rest on the GEMV):
//     exact products, but Hopper's FP8 tensor cores
//     keep partial sums at reduced precision between promotions    2e-3
//   w8a16 through bf16 tiles: activations rounded to bf16 (2^-9)   1e-2
TEST_F(CudaOps, Fp8Matmul) {
  using paca::ActQuant;
  paca::cuda::CudaBackendOptions no_lt;
  no_lt.use_cublaslt = false;
  paca::cuda::CudaBackendOptions epilogue;
  epilogue.fp8_lt_scales = false;
  Backend* gemv_only = &extra(no_lt);
  Backend* unscaled = &extra(epilogue);
  struct Case {
    int rows, cols, tokens;
  };
  struct Mode {
    ActQuant act;
    float ub, scale;
    const char* name;
  };
  const Mode modes[] = {{ActQuant::none, 0, 0, "w8a16"},
                        {ActQuant::dynamic_row, INFINITY, 0, "w8a8 dynamic"},
                        {ActQuant::dynamic_row, 0.5f, 0, "w8a8 dynamic, bound 0.5"},
                        {ActQuant::static_tensor, 0, 0.004f, "w8a8 static"}};
  for (const Mode& m : modes) {
    for (const Case& c : std::vector<Case>{{257, 208, 1},   // cols % 16, not % 128
                                           {96, 172, 3},    // scalar path
                                           {1000, 512, 5},
                                           {1003, 4096, 8},
                                           {4099, 768, 2},
                                           {333, 1024, 37},   // rows % 16 != 0: w8a8 on the GEMV
                                           {512, 1024, 64},   // the FP8 GEMM, no padding
                                           {512, 1040, 45}}) {  // 32 tokens on the GEMM, 13 on the GEMV
      for (Backend* gpu : {gemv_only, gpu_.get(), unscaled}) {
        const TensorView& w = fp8_weight(c.rows, c.cols, m.act, m.ub, m.scale);
        upload({&w}, gpu);
        const bool prefill = gpu != gemv_only && c.tokens > 8;
        const bool fp8_gemm = prefill && m.act != ActQuant::none && c.rows % 16 == 0 && c.cols % 16 == 0;
        const double tol = !prefill ? 1e-5 : fp8_gemm ? 2e-3 : m.act == ActQuant::none ? 1e-2 : 1e-5;
        std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(c.tokens) * c.cols);
        x[x.size() / 3] = 3.5f;  // above the bound: saturates
        EXPECT_LT(matmul_vs_cpu(*gpu, w, x, c.tokens), tol)
            << m.name << " " << c.rows << "x" << c.cols << " tokens " << c.tokens << " on " << gpu->name();
      }
    }
  }
  EXPECT_EQ(gpu_->name().find("fell back"), std::string::npos) << gpu_->name();
  EXPECT_NE(gpu_->name().find("fp8"), std::string::npos) << gpu_->name();
}

// Weights the device cannot run as the CPU does are refused at upload with
// a clear error, before anything is allocated.
// ---- the fused norm + FP8 quantize kernel (issue 7) ---------------------------

// Device memory freed on scope exit.
struct DevBuf {
  void* p = nullptr;
  explicit DevBuf(size_t bytes) { EXPECT_EQ(cudaMalloc(&p, bytes), cudaSuccess); }
  ~DevBuf() { cudaFree(p); }
  DevBuf(const DevBuf&) = delete;
  DevBuf& operator=(const DevBuf&) = delete;
  template <typename T>
  T* as() const {
    return static_cast<T*>(p);
  }
};

template <typename T>
std::vector<T> from_dev(const void* p, size_t n) {
  std::vector<T> v(n);
  EXPECT_EQ(cudaMemcpy(v.data(), p, n * sizeof(T), cudaMemcpyDeviceToHost), cudaSuccess);
  return v;
}

// launch_rmsnorm_quant against launch_rmsnorm / launch_add_rmsnorm followed
// by launch_quantize_e4m3 on their output, bit for bit: y (and x after the
// add), the codes of rows [0, code_rows), the values of the rest, every
// scale. Rows 1, 3, 17, 300; cols 64, 4096, 4100, 14336; per-token scales
// without and with a bound below the row maxima (saturation), a static scale
// (saturation and subnormal codes); f32 and bf16 norm weights; code rows
// none, half, all; every output poisoned first.
TEST(CudaFusedNorm, KernelIsNormThenQuantizeBitForBit) {
  SKIP_WITHOUT_DEVICE();
  using namespace paca::cuda;
  std::mt19937 rng(77);
  const float eps = 1e-5f;
  int n_case = 0;
  for (int rows : {1, 3, 17, 300}) {
    for (int cols : {64, 4096, 4100, 14336}) {
      const size_t n = static_cast<size_t>(rows) * cols;
      std::vector<float> x = random_nonzero(rng, n, 0.05f, 4.0f);
      for (size_t i = 0; i < n; i += 97) x[i] *= 1e-4f;  // a few tiny elements: subnormal codes
      const std::vector<float> r = random_nonzero(rng, n, 0.05f, 4.0f);
      const std::vector<float> w = random_nonzero(rng, static_cast<size_t>(cols), 0.25f, 2.0f);
      std::vector<uint16_t> wb(w.size());
      for (size_t i = 0; i < w.size(); ++i) wb[i] = paca::f32_to_bf16(w[i]);
      DevBuf dx(n * 4), dr(n * 4), dwf(w.size() * 4), dwb(w.size() * 2), dy(n * 4), ref_x(n * 4), ref_y(n * 4);
      DevBuf ref_q8(n), ref_qf(n * 4), ref_s(static_cast<size_t>(rows) * 4);
      DevBuf q8(n), qf(n * 4), sc(static_cast<size_t>(rows) * 4);
      cudaMemcpy(dr.p, r.data(), n * 4, cudaMemcpyHostToDevice);
      cudaMemcpy(dwf.p, w.data(), w.size() * 4, cudaMemcpyHostToDevice);
      cudaMemcpy(dwb.p, wb.data(), wb.size() * 2, cudaMemcpyHostToDevice);
      for (int add : {0, 1}) {
        for (int mode : {0, 1, 2}) {  // dynamic unbounded, dynamic bounded, static
          const int bf = (rows + cols + mode) % 2;
          const void* wd = bf ? dwb.p : dwf.p;
          const int dyn = mode == 2 ? 0 : 1;
          const float ub = mode == 1 ? 0.5f : INFINITY, sscale = 0.004f;
          const int code_rows = std::array<int, 3>{0, rows / 2, rows}[static_cast<size_t>(n_case % 3)];
          SCOPED_TRACE(testing::Message() << "rows " << rows << " cols " << cols << " add " << add << " mode " << mode
                                          << " bf16 " << bf << " code rows " << code_rows);
          // the reference: the norm, then the quantizer (codes, then values)
          cudaMemcpy(ref_x.p, x.data(), n * 4, cudaMemcpyHostToDevice);
          ASSERT_EQ(add ? launch_add_rmsnorm(ref_x.as<float>(), dr.as<float>(), wd, bf, eps, rows, cols,
                                             ref_y.as<float>(), nullptr)
                        : launch_rmsnorm(ref_x.as<float>(), wd, bf, eps, rows, cols, ref_y.as<float>(), nullptr),
                    cudaSuccess);
          ASSERT_EQ(launch_quantize_e4m3(ref_y.as<float>(), cols, rows, cols, rows, dyn, ub, sscale,
                                         ref_q8.as<uint8_t>(), cols, nullptr, 0, ref_s.as<float>(), nullptr),
                    cudaSuccess);
          ASSERT_EQ(launch_quantize_e4m3(ref_y.as<float>(), cols, rows, cols, rows, dyn, ub, sscale, nullptr, 0,
                                         ref_qf.as<float>(), cols, ref_s.as<float>(), nullptr),
                    cudaSuccess);
          // the fused kernel on poisoned outputs
          cudaMemcpy(dx.p, x.data(), n * 4, cudaMemcpyHostToDevice);
          cudaMemset(dy.p, 0xff, n * 4);
          cudaMemset(q8.p, 0x7f, n);
          cudaMemset(qf.p, 0xff, n * 4);
          cudaMemset(sc.p, 0xff, static_cast<size_t>(rows) * 4);
          const E4m3Quant q{.dynamic = dyn, .act_ub = ub, .act_scale = sscale, .code_rows = code_rows,
                            .q8 = q8.as<uint8_t>(), .ldq8 = cols, .qf = qf.as<float>(), .ldqf = cols,
                            .scales = sc.as<float>()};
          ASSERT_EQ(launch_rmsnorm_quant(dx.as<float>(), add ? dr.as<float>() : nullptr, wd, bf, eps, rows, cols,
                                         dy.as<float>(), q, nullptr),
                    cudaSuccess);
          ASSERT_EQ(cudaDeviceSynchronize(), cudaSuccess);
          const size_t nc = static_cast<size_t>(code_rows) * cols;
          const auto y = from_dev<float>(dy.p, n), yr = from_dev<float>(ref_y.p, n);
          EXPECT_EQ(0, std::memcmp(y.data(), yr.data(), n * 4)) << "y";
          if (add) {
            const auto xa = from_dev<float>(dx.p, n), xr = from_dev<float>(ref_x.p, n);
            EXPECT_EQ(0, std::memcmp(xa.data(), xr.data(), n * 4)) << "x += r";
          }
          const auto c = from_dev<uint8_t>(q8.p, nc), cr = from_dev<uint8_t>(ref_q8.p, nc);
          EXPECT_EQ(c, cr) << "codes";
          const auto v = from_dev<float>(qf.p, n - nc), vr = from_dev<float>(ref_qf.as<float>() + nc, n - nc);
          EXPECT_EQ(0, std::memcmp(v.data(), vr.data(), (n - nc) * 4)) << "values";
          const auto s = from_dev<float>(sc.p, static_cast<size_t>(rows)),
                     sr = from_dev<float>(ref_s.p, static_cast<size_t>(rows));
          EXPECT_EQ(0, std::memcmp(s.data(), sr.data(), s.size() * 4)) << "scales";
          if (mode == 1) {  // the bound took effect: some code saturated
            const auto all = from_dev<uint8_t>(ref_q8.p, n);
            EXPECT_TRUE(std::any_of(all.begin(), all.end(), [](uint8_t b) { return (b & 0x7f) == 0x7e; }));
          }
          ++n_case;
        }
      }
    }
  }
  EXPECT_EQ(n_case, 96);
}

// The backend: a norm told its readers quantizes once for the first w8a8
// reader; readers that quantize the same way take its codes, one with another
// bound, a static scale or BF16 weights does its own; any op in between
// makes the next matmul quantize again. Every output the same bits as a
// backend with the fusion off, at decode (GEMV) and prefill (FP8 GEMM plus
// the GEMV for the last T % 16 tokens) sizes.
TEST_F(CudaOps, NormQuantReuseSameBits) {
  paca::cuda::CudaBackendOptions off_opt;
  off_opt.fp8_fused_norm = false;
  Backend& off = extra(off_opt);
  const int C = 256;
  const TensorView& nw = weight(DType::bf16, 1, C);
  const TensorView& wq = fp8_weight(256, C, paca::ActQuant::dynamic_row, 1200.0f, 0);
  const TensorView& wk = fp8_weight(64, C, paca::ActQuant::dynamic_row, 0.75f, 0);  // another bound
  const TensorView& wv = fp8_weight(64, C, paca::ActQuant::dynamic_row, 1200.0f, 0);
  const TensorView& wb = weight(DType::bf16, 128, C);
  const TensorView& ws = fp8_weight(64, C, paca::ActQuant::static_tensor, 0, 0.01f);
  for (Backend* be : {gpu_.get(), &off}) upload({&nw, &wq, &wk, &wv, &wb, &ws}, be);
  const std::array<const TensorView*, 4> attn{&wq, &wk, &wv, &wb};
  const std::array<const TensorView*, 2> ffn{&ws, &wq};
  uint64_t fused = 0, reused = 0;
  for (int T : {1, 5, 37, 300}) {
    SCOPED_TRACE(testing::Message() << "tokens " << T);
    const std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(T) * C, 0.05f, 4.0f);
    const std::vector<float> y = random_nonzero(rng_, static_cast<size_t>(T) * C, 0.05f, 4.0f);
    std::vector<std::vector<float>> got[2];
    for (int b = 0; b < 2; ++b) {
      Backend& be = b == 0 ? *gpu_ : off;
      // every buffer first (alloc, copy and to_host are ops too), outputs poisoned
      Act ax = act(be, T, C, x), ay = act(be, T, C, y), xn = act(be, T, C, {});
      std::vector<Act> outs;
      const std::array<const TensorView*, 7> order{&wq, &wk, &wv, &wb, &ws, &wq, &wq};
      for (const TensorView* w : order)
        outs.push_back(act(be, T, static_cast<int>(w->rows), std::vector<float>(static_cast<size_t>(T) * w->rows, NAN)));
      be.rmsnorm_for(ax, nw, 1e-5f, xn, attn);
      for (size_t i = 0; i < 4; ++i) be.matmul(xn, *order[i], outs[i]);
      be.add_rmsnorm_for(ax, ay, nw, 1e-5f, xn, ffn);
      for (size_t i = 4; i < 6; ++i) be.matmul(xn, *order[i], outs[i]);
      be.rmsnorm_for(ax, nw, 1e-5f, xn, attn);
      be.add(ay, ay);  // another op: the next matmul quantizes again
      be.matmul(xn, *order[6], outs[6]);
      for (const Act& o : outs) got[b].push_back(host(be, o));
      got[b].push_back(host(be, xn));
    }
    ASSERT_EQ(got[0].size(), got[1].size());
    for (size_t i = 0; i < got[0].size(); ++i) {
      ASSERT_EQ(got[0][i].size(), got[1][i].size());
      EXPECT_EQ(0, std::memcmp(got[0][i].data(), got[1][i].data(), got[0][i].size() * 4)) << "output " << i;
      EXPECT_FALSE(std::any_of(got[0][i].begin(), got[0][i].end(), [](float v) { return std::isnan(v); }))
          << "output " << i;
    }
    fused += 3;   // every norm with an FP8 w8a8 reader
    reused += 3;  // wq and wv after the first norm, ws after the second
    const paca::cuda::GraphStats st = paca::cuda::graph_stats(*gpu_), none = paca::cuda::graph_stats(off);
    EXPECT_EQ(st.norm_quant_fused, fused);
    EXPECT_EQ(st.norm_quant_reused, reused);
    EXPECT_EQ(none.norm_quant_fused + none.norm_quant_reused, 0u);
  }
}

TEST_F(CudaOps, Fp8UploadRefusesBadWeights) {
  HostWeight w = make_fp8_weight(rng_, "layers.1.w2", 64, 32, paca::ActQuant::dynamic_row, INFINITY, 0);
  w.view.scales = nullptr;
  const TensorView* v = &w.view;
  try {
    gpu_->upload_weights(std::span<const TensorView* const>(&v, 1), nullptr);
    ADD_FAILURE() << "FP8 weight without scales uploaded";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::format);
    EXPECT_NE(std::string(e.what()).find("layers.1.w2 has no scales"), std::string::npos) << e.what();
  }
  // never uploaded: a matmul with it is an error, not a crash
  Act x = act(*gpu_, 1, 32, random_nonzero(rng_, 32)), o = act(*gpu_, 1, 64, {});
  EXPECT_THROW(gpu_->matmul(x, w.view, o), paca::Error);
}

TEST_F(CudaOps, Rope) {
  const std::vector<int32_t> pos = {0, 1, 17, 4095, 100000};
  for (paca::RopeLayout layout : {paca::RopeLayout::interleaved, paca::RopeLayout::half}) {
    for (int hd : {8, 64, 128}) {
      const int heads = 3, T = static_cast<int>(pos.size());
      std::vector<float> freqs(static_cast<size_t>(hd / 2));
      for (int i = 0; i < hd / 2; ++i) freqs[i] = std::pow(500000.0f, -2.0f * i / hd) / (i % 3 == 0 ? 8.0f : 1.0f);
      const std::vector<float> x = random_nonzero(rng_, static_cast<size_t>(T) * heads * hd);
      Act c = act(*cpu_, T, heads * hd, x), g = act(*gpu_, T, heads * hd, x);
      cpu_->rope(c, heads, hd, pos, freqs, layout);
      gpu_->rope(g, heads, hd, pos, freqs, layout);
      EXPECT_LT(rel_l2(host(*gpu_, g), host(*cpu_, c)), 1e-5) << hd;
    }
  }
}

TEST_F(CudaOps, SwigluAdd) {
  const size_t n = 3 * 1377;
  const std::vector<float> a = random_nonzero(rng_, n, 0.1f, 6.0f), b = random_nonzero(rng_, n);
  Act ca = act(*cpu_, 3, 1377, a), cb = act(*cpu_, 3, 1377, b), ga = act(*gpu_, 3, 1377, a), gb = act(*gpu_, 3, 1377, b);
  cpu_->swiglu(ca, cb, ca);
  gpu_->swiglu(ga, gb, ga);
  EXPECT_LT(rel_l2(host(*gpu_, ga), host(*cpu_, ca)), 1e-6);
  cpu_->add(ca, cb);
  gpu_->add(ga, gb);
  EXPECT_LT(rel_l2(host(*gpu_, ga), host(*cpu_, ca)), 1e-6);
}

// kv_write of a whole prompt, then causal attention (prefill rows, a decode
// row, forced splits) over blocks in shuffled order, f32 and bf16 caches.
TEST_F(CudaOps, PagedAttention) {
  paca::cuda::CudaBackendOptions f32_only;
  f32_only.flash_min_rows = 0;  // this test holds the f32 kernel to 1e-5; FlashPrefillAttention the other
  Backend* gpu = &extra(f32_only);
  struct Case {
    int heads, kv_heads, hd, block, P;
    DType kv;
    int splits;
  };
  for (const Case& c : std::vector<Case>{{8, 2, 64, 16, 37, DType::f32, 0},
                                         {8, 2, 64, 5, 37, DType::bf16, 0},
                                         {4, 1, 8, 16, 50, DType::f32, 3},
                                         {32, 8, 128, 16, 600, DType::bf16, 0},
                                         {6, 6, 96, 7, 300, DType::f32, 4}}) {
    paca::KvLayout L{2, c.block, c.kv_heads * c.hd, c.kv};
    const int nb = (c.P + c.block - 1) / c.block;
    std::vector<int> order(static_cast<size_t>(nb));
    for (int i = 0; i < nb; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    auto blocks_on = [&](Backend& be) {
      std::vector<uint8_t*> all(static_cast<size_t>(nb)), seq(static_cast<size_t>(nb));
      for (auto& b : all) {
        b = static_cast<uint8_t*>(be.alloc(L.block_bytes()));
        owned_.push_back({&be, b});
      }
      for (int i = 0; i < nb; ++i) seq[i] = all[order[i]];
      return seq;
    };
    std::vector<uint8_t*> cb = blocks_on(*cpu_), gb = blocks_on(*gpu_);
    paca::KvSeq cs{&L, cb}, gs{&L, gb};
    std::vector<int32_t> pos(static_cast<size_t>(c.P));
    for (int i = 0; i < c.P; ++i) pos[i] = i;
    const int Q = c.heads * c.hd, KV = c.kv_heads * c.hd;
    for (int layer = 0; layer < 2; ++layer) {
      const std::vector<float> k = random_nonzero(rng_, static_cast<size_t>(c.P) * KV);
      const std::vector<float> v = random_nonzero(rng_, static_cast<size_t>(c.P) * KV);
      cpu_->kv_write(cs, layer, act(*cpu_, c.P, KV, k), act(*cpu_, c.P, KV, v), pos);
      gpu_->kv_write(gs, layer, act(*gpu_, c.P, KV, k), act(*gpu_, c.P, KV, v), pos);
    }
    // the caches hold the same bytes
    for (int b = 0; b < nb; ++b) {
      std::vector<uint8_t> hc(L.block_bytes()), hg(L.block_bytes());
      cpu_->copy(hc.data(), cb[b], hc.size());
      gpu_->copy(hg.data(), gb[b], hg.size());
      ASSERT_EQ(hc, hg) << "block " << b;
    }
    paca::cuda::CudaBackendOptions o;
    o.attention_splits = c.splits;
    Backend* gsplit = &extra(o);
    const paca::AttentionShape shape{c.heads, c.kv_heads, c.hd};
    const std::vector<float> q = random_nonzero(rng_, static_cast<size_t>(c.P) * Q, 0.5f, 3.0f);
    // prefill rows: all positions at once
    Act cq = act(*cpu_, c.P, Q, q), co = act(*cpu_, c.P, Q, {});
    Act gq = act(*gpu, c.P, Q, q), go = act(*gpu, c.P, Q, {});
    cpu_->attention(cq, cs, 1, pos, shape, co);
    gpu->attention(gq, gs, 1, pos, shape, go);
    EXPECT_LT(rel_l2(host(*gpu, go), host(*cpu_, co)), 1e-5) << "prefill P=" << c.P << " hd=" << c.hd;
    // one decode row at the last position (the split path when asked)
    const std::vector<int32_t> last = {c.P - 1};
    const std::vector<float> q1(q.end() - Q, q.end());
    Act cq1 = act(*cpu_, 1, Q, q1), co1 = act(*cpu_, 1, Q, {});
    cpu_->attention(cq1, cs, 0, last, shape, co1);
    Act sq1 = act(*gsplit, 1, Q, q1), so1 = act(*gsplit, 1, Q, {});
    gsplit->attention(sq1, gs, 0, last, shape, so1);
    Act gq1 = act(*gpu_, 1, Q, q1), go1 = act(*gpu_, 1, Q, {});
    gpu_->attention(gq1, gs, 0, last, shape, go1);
    const std::vector<float> ref = host(*cpu_, co1);
    EXPECT_LT(rel_l2(host(*gsplit, so1), ref), 1e-5) << "decode, splits " << c.splits;
    EXPECT_LT(rel_l2(host(*gpu_, go1), ref), 1e-5) << "decode, automatic splits";
  }
}

// The paged attention test above keeps the f32 kernel (prefill rows below
// flash_min_rows or head dims it lacks); PagedAttention's first cases have
// 37 rows of head_dim 64, so they run with flash switched off there.

// Blocks of one sequence on a backend, in shuffled order (as a pool hands them out).
std::vector<uint8_t*> shuffled_blocks(Backend& be, const paca::KvLayout& L, const std::vector<int>& order,
                                      std::vector<std::pair<Backend*, void*>>& owned) {
  std::vector<uint8_t*> all(order.size()), seq(order.size());
  for (auto& b : all) {
    b = static_cast<uint8_t*>(be.alloc(L.block_bytes()));
    owned.push_back({&be, b});
  }
  for (size_t i = 0; i < order.size(); ++i) seq[i] = all[static_cast<size_t>(order[i])];
  return seq;
}

// The tensor-core prefill kernel against the CPU backend and against the
// f32 CUDA kernel it replaces for prefill: T query rows at the end of a
// context of P positions (P > T: a prefix already cached, as in chunked
// prefill), GQA 1/4/8, head_dim 64/128, blocks that split the tiles
// unevenly, bf16 and f32 caches, one 32K context. Outputs are NaN-poisoned
// first. Tolerance 1e-2 relative L2: Q, P (and an f32 cache's K, V) are
// rounded to bf16 (unit roundoff 2^-9), ~2e-3 expected; 5e-2 for each
// (token, head) row on its own (~3e-3 worst in the host emulation).
TEST_F(CudaOps, FlashPrefillAttention) {
  struct Case {
    int heads, kv_heads, hd, block, P, T;
    DType kv;
  };
  paca::cuda::CudaBackendOptions fo;
  fo.flash_min_rows = 1;  // every call through the flash kernel
  Backend* flash = &extra(fo);
  paca::cuda::CudaBackendOptions so;
  so.flash_min_rows = 0;  // never: the f32 kernel
  Backend* plain = &extra(so);
  for (const Case& c : std::vector<Case>{{8, 8, 64, 16, 1, 1, DType::bf16},
                                         {8, 2, 64, 16, 7, 7, DType::bf16},
                                         {32, 8, 128, 16, 33, 33, DType::bf16},
                                         {32, 4, 128, 16, 130, 130, DType::bf16},
                                         {8, 1, 64, 32, 257, 100, DType::bf16},
                                         {16, 2, 128, 7, 1037, 1037, DType::bf16},
                                         {32, 8, 128, 16, 700, 130, DType::bf16},
                                         {8, 2, 64, 16, 300, 65, DType::f32},
                                         {4, 4, 128, 5, 90, 90, DType::f32},
                                         {8, 2, 128, 256, 32768, 67, DType::bf16}}) {
    const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                             std::to_string(c.hd) + " block " + std::to_string(c.block) + " P " +
                             std::to_string(c.P) + " T " + std::to_string(c.T) + " " + paca::dtype_name(c.kv);
    paca::KvLayout L{2, c.block, c.kv_heads * c.hd, c.kv};
    const int nb = (c.P + c.block - 1) / c.block;
    std::vector<int> order(static_cast<size_t>(nb));
    for (int i = 0; i < nb; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    std::vector<uint8_t*> cb = shuffled_blocks(*cpu_, L, order, owned_), gb = shuffled_blocks(*gpu_, L, order, owned_);
    paca::KvSeq cs{&L, cb}, gs{&L, gb};
    std::vector<int32_t> all(static_cast<size_t>(c.P));
    for (int i = 0; i < c.P; ++i) all[i] = i;
    const int KV = L.kv_dim, Q = c.heads * c.hd;
    const int layer = 1;
    {
      const std::vector<float> k = random_nonzero(rng_, static_cast<size_t>(c.P) * KV);
      const std::vector<float> v = random_nonzero(rng_, static_cast<size_t>(c.P) * KV);
      cpu_->kv_write(cs, layer, act(*cpu_, c.P, KV, k), act(*cpu_, c.P, KV, v), all);
      gpu_->kv_write(gs, layer, act(*gpu_, c.P, KV, k), act(*gpu_, c.P, KV, v), all);
      // flash and plain read these blocks on their own (non-blocking)
      // streams: wait for gpu_'s stream (a copy to the host synchronises it)
      uint8_t probe = 0;
      gpu_->copy(&probe, gb[0], 1);
    }
    const std::vector<int32_t> pos(all.end() - c.T, all.end());
    const paca::AttentionShape shape{c.heads, c.kv_heads, c.hd};
    const std::vector<float> q = random_nonzero(rng_, static_cast<size_t>(c.T) * Q, 0.5f, 3.0f);
    const std::vector<float> nan(q.size(), std::nanf(""));
    Act cq = act(*cpu_, c.T, Q, q), co = act(*cpu_, c.T, Q, {});
    cpu_->attention(cq, cs, layer, pos, shape, co);
    const std::vector<float> ref = host(*cpu_, co);
    const uint64_t before = paca::cuda::graph_stats(*flash).flash_prefill;
    Act fq = act(*flash, c.T, Q, q), fout = act(*flash, c.T, Q, nan);
    flash->attention(fq, gs, layer, pos, shape, fout);
    EXPECT_EQ(paca::cuda::graph_stats(*flash).flash_prefill, before + 1) << what << ": the flash kernel did not run";
    Act pq = act(*plain, c.T, Q, q), pout = act(*plain, c.T, Q, nan);
    plain->attention(pq, gs, layer, pos, shape, pout);
    EXPECT_EQ(paca::cuda::graph_stats(*plain).flash_prefill, 0u);
    const std::vector<float> got = host(*flash, fout), old = host(*plain, pout);
    const double e_cpu = rel_l2(got, ref), e_old = rel_l2(got, old);
    const double worst = worst_row_rel_l2(got, ref, static_cast<size_t>(c.hd));  // of any (token, head)
    std::printf("flash prefill %s: rel L2 vs CPU %.2e (worst row %.2e), vs the f32 CUDA kernel %.2e\n", what.c_str(),
                e_cpu, worst, e_old);
    EXPECT_LT(e_cpu, 1e-2) << what;
    EXPECT_LT(worst, 5e-2) << what << ": worst row";
    EXPECT_LT(e_old, 1e-2) << what;
    EXPECT_LT(rel_l2(old, ref), 1e-5) << what << " (the f32 kernel)";
    // the query rows are read, not written
    EXPECT_EQ(host(*flash, fq), q) << what;
  }
}

// RoPE fused with the KV write: the same bits on the GPU as rope, rope and
// kv_write there (q, k and the cache bytes), and the CPU's composed default
// within f32 rounding; plain (Llama 2) and llama3-scaled (Llama 3.1/3.2)
// frequencies, both layouts, f32 and bf16 caches, positions crossing blocks.
TEST_F(CudaOps, RopeKvWrite) {
  struct Case {
    int heads, kv_heads, hd, block, p0, T;
    DType kv;
    paca::RopeScaling scaling;
    paca::RopeLayout layout;
  };
  for (const Case& c : std::vector<Case>{
           {8, 2, 64, 7, 5, 17, DType::bf16, paca::RopeScaling::llama3, paca::RopeLayout::half},
           {8, 2, 64, 7, 5, 17, DType::f32, paca::RopeScaling::none, paca::RopeLayout::interleaved},
           {32, 8, 128, 16, 4090, 33, DType::bf16, paca::RopeScaling::llama3, paca::RopeLayout::half},
           {6, 6, 96, 16, 0, 1, DType::f32, paca::RopeScaling::none, paca::RopeLayout::half},
           {4, 1, 128, 256, 100000, 3, DType::bf16, paca::RopeScaling::none, paca::RopeLayout::interleaved}}) {
    const std::string what = "heads " + std::to_string(c.heads) + "/" + std::to_string(c.kv_heads) + " hd " +
                             std::to_string(c.hd) + " p0 " + std::to_string(c.p0) + " T " + std::to_string(c.T) + " " +
                             paca::dtype_name(c.kv) +
                             (c.scaling == paca::RopeScaling::llama3 ? " llama3 freqs" : " plain freqs");
    paca::ModelConfig cfg;
    cfg.head_dim = c.hd;
    cfg.rope_theta = c.scaling == paca::RopeScaling::llama3 ? 500000.0f : 10000.0f;
    cfg.rope_scaling = c.scaling;
    cfg.rope_factor = 32.0f;  // Llama 3.2's
    cfg.rope_low_freq_factor = 1.0f;
    cfg.rope_high_freq_factor = 4.0f;
    cfg.rope_original_context = 8192;
    const std::vector<float> freqs = paca::rope_frequencies(cfg);
    ASSERT_EQ(freqs.size(), static_cast<size_t>(c.hd / 2));
    paca::KvLayout L{3, c.block, c.kv_heads * c.hd, c.kv};
    const int nb = (c.p0 + c.T + c.block - 1) / c.block;
    std::vector<int> order(static_cast<size_t>(nb));
    for (int i = 0; i < nb; ++i) order[i] = i;
    std::shuffle(order.begin(), order.end(), rng_);
    std::vector<uint8_t*> cb = shuffled_blocks(*cpu_, L, order, owned_);
    std::vector<uint8_t*> fb = shuffled_blocks(*gpu_, L, order, owned_), sb = shuffled_blocks(*gpu_, L, order, owned_);
    paca::KvSeq cs{&L, cb}, fs{&L, fb}, ss{&L, sb};
    std::vector<int32_t> pos(static_cast<size_t>(c.T));
    for (int i = 0; i < c.T; ++i) pos[i] = c.p0 + i;
    const int Q = c.heads * c.hd, KV = L.kv_dim;
    const std::vector<float> q = random_nonzero(rng_, static_cast<size_t>(c.T) * Q);
    const std::vector<float> k = random_nonzero(rng_, static_cast<size_t>(c.T) * KV);
    const std::vector<float> v = random_nonzero(rng_, static_cast<size_t>(c.T) * KV);
    const paca::AttentionShape shape{c.heads, c.kv_heads, c.hd};
    const int layer = 2;
    Act cq = act(*cpu_, c.T, Q, q), ck = act(*cpu_, c.T, KV, k), cv = act(*cpu_, c.T, KV, v);
    cpu_->rope_kv_write(cq, ck, cv, cs, layer, pos, freqs, c.layout, shape);
    Act fq = act(*gpu_, c.T, Q, q), fk = act(*gpu_, c.T, KV, k), fv = act(*gpu_, c.T, KV, v);
    const uint64_t fused_before = paca::cuda::graph_stats(*gpu_).rope_kv_fused;
    gpu_->rope_kv_write(fq, fk, fv, fs, layer, pos, freqs, c.layout, shape);  // fused
    EXPECT_EQ(paca::cuda::graph_stats(*gpu_).rope_kv_fused, fused_before + 1) << what << ": the fused kernel did not run";
    Act sq = act(*gpu_, c.T, Q, q), sk = act(*gpu_, c.T, KV, k), sv = act(*gpu_, c.T, KV, v);
    gpu_->rope(sq, c.heads, c.hd, pos, freqs, c.layout);  // composed on the GPU
    gpu_->rope(sk, c.kv_heads, c.hd, pos, freqs, c.layout);
    gpu_->kv_write(ss, layer, sk, sv, pos);
    const std::vector<float> fqh = host(*gpu_, fq), fkh = host(*gpu_, fk);
    EXPECT_EQ(0, std::memcmp(fqh.data(), host(*gpu_, sq).data(), fqh.size() * sizeof(float))) << what << ": q";
    EXPECT_EQ(0, std::memcmp(fkh.data(), host(*gpu_, sk).data(), fkh.size() * sizeof(float))) << what << ": k";
    EXPECT_NE(fqh, q) << what << ": q was not rotated";
    EXPECT_LT(rel_l2(fqh, host(*cpu_, cq)), 1e-5) << what;
    EXPECT_LT(rel_l2(fkh, host(*cpu_, ck)), 1e-5) << what;
    EXPECT_EQ(host(*gpu_, fv), v) << what << ": v is an input";
    for (int b = 0; b < nb; ++b) {
      std::vector<uint8_t> hf(L.block_bytes()), hs(L.block_bytes()), hc(L.block_bytes());
      gpu_->copy(hf.data(), fb[b], hf.size());
      gpu_->copy(hs.data(), sb[b], hs.size());
      cpu_->copy(hc.data(), cb[b], hc.size());
      ASSERT_EQ(hf, hs) << what << ": cache block " << b;
      // vs the CPU: the rows this step wrote, widened (an f32 rounding may
      // flip a bf16 last bit)
      const size_t n = L.block_bytes() / L.elem_bytes();
      std::vector<float> wf(n), wc(n);
      for (size_t i = 0; i < n; ++i) {
        if (c.kv == DType::f32) {
          std::memcpy(&wf[i], hf.data() + 4 * i, 4);
          std::memcpy(&wc[i], hc.data() + 4 * i, 4);
        } else {
          uint16_t a, d;
          std::memcpy(&a, hf.data() + 2 * i, 2);
          std::memcpy(&d, hc.data() + 2 * i, 2);
          wf[i] = paca::bf16_to_f32(a);
          wc[i] = paca::bf16_to_f32(d);
        }
      }
      EXPECT_LT(rel_l2(wf, wc), c.kv == DType::f32 ? 1e-5 : 1e-3) << what << ": cache block " << b;
    }
  }
}

// ---- CUDA graphs of decode steps ---------------------------------------------

int32_t argmax(const float* v, size_t n) { return static_cast<int32_t>(std::max_element(v, v + n) - v); }

// Leading tokens on which two continuations agree.
int same_prefix(const std::vector<int32_t>& a, const std::vector<int32_t>& b) {
  int n = 0;
  while (n < static_cast<int>(std::min(a.size(), b.size())) && a[n] == b[n]) ++n;
  return n;
}


// A synthetic model of awkward shape (GQA 3, head_dim 32, ffn not a multiple
// of 8) on a given backend, its weights uploaded when the backend wants them.
paca::TestModelSpec synthetic_spec() {
  paca::TestModelSpec spec;
  spec.seed = 21;
  spec.dim = 192;
  spec.n_layers = 3;
  spec.n_heads = 6;
  spec.n_kv_heads = 2;
  spec.ffn_dim = 420;
  spec.n_vocab = 1000;
  spec.max_context = 1024;
  return spec;
}

std::unique_ptr<paca::LlamaModel> synthetic_on(std::unique_ptr<Backend> be,
                                               const paca::TestModelSpec& spec = synthetic_spec(),
                                               DType kv_dtype = DType::f32) {
  paca::ModelOptions opt;
  opt.n_threads = 2;
  opt.kv_block_tokens = 16;
  opt.kv_dtype = kv_dtype;
  auto m = std::make_unique<paca::LlamaModel>(paca::synthetic_checkpoint(spec, uint64_t{1} << 30), std::move(be), opt);
  if (!m->backend().weights_on_host()) {
    std::vector<const TensorView*> views;
    for (const auto& [n, t] : m->checkpoint().tensors) views.push_back(&t);
    m->backend().upload_weights(views, nullptr);
  }
  return m;
}

// Every logits vector of: a prompt of `prompt` tokens, `steps` greedy decode
// steps of that session alone, then `steps` batched decode steps of it and
// two forks of it (three sequences per step, as paca_generator_next_batch
// runs them).
std::vector<std::vector<float>> decode_run(paca::LlamaModel& m, int prompt, int steps) {
  paca::BlockPool pool(m.kv_backend(), m.kv_layout());
  std::vector<std::vector<float>> out;
  paca::Session s(m, pool, 0);
  std::vector<int32_t> p(static_cast<size_t>(prompt));
  for (int i = 0; i < prompt; ++i) p[i] = (i * 37 + 11) % 1000;
  s.prefill(p);
  out.push_back(s.logits());
  auto greedy = [](const std::vector<float>& l) { return argmax(l.data(), l.size()); };
  for (int i = 0; i < steps; ++i) {
    const int32_t t = greedy(s.logits());
    s.prefill(std::span<const int32_t>(&t, 1));
    out.push_back(s.logits());
  }
  auto a = s.fork(s.length()), b = s.fork(s.length() - 3);
  const int32_t t0 = 5;
  b->prefill(std::span<const int32_t>(&t0, 1));
  for (int i = 0; i < steps; ++i) {
    const int32_t ts = greedy(s.logits()), ta = (greedy(a->logits()) + 1) % 1000, tb = greedy(b->logits());
    const paca::Session::BatchItem items[] = {{&s, std::span<const int32_t>(&ts, 1)},
                                              {a.get(), std::span<const int32_t>(&ta, 1)},
                                              {b.get(), std::span<const int32_t>(&tb, 1)}};
    paca::Session::step_batch(items);
    out.push_back(s.logits());
    out.push_back(a->logits());
    out.push_back(b->logits());
  }
  return out;
}

std::unique_ptr<paca::LlamaModel> cuda_synthetic(bool graphs, int splits, bool cublaslt = true) {
  paca::cuda::CudaBackendOptions o;
  o.graphs = graphs;
  o.attention_splits = splits;
  o.use_cublaslt = cublaslt;
  return synthetic_on(paca::cuda::make_cuda_backend(o));
}

// Session::sample on a GPU model (logits kept on the device: the k best, and
// for top-p the mass, come back) gives the token the same sampler gives
// from the session's logits read whole, for greedy, top-k, top-p (a nucleus
// among the 256 best or beyond them), min-p and plain temperature.
TEST(CudaSampling, KeptLogitsGiveTheHostsTokens) {
  SKIP_WITHOUT_DEVICE();
  auto m = cuda_synthetic(true, 0);
  paca::BlockPool pool(m->kv_backend(), m->kv_layout());
  const std::vector<paca::SamplerParams> ps = [] {
    std::vector<paca::SamplerParams> v(7);
    v[1].temperature = 0.8f, v[1].top_k = 40;
    v[2].temperature = 0.7f, v[2].top_p = 0.9f;
    v[3].temperature = 1.0f, v[3].top_p = 0.2f;
    v[4].temperature = 0.6f, v[4].min_p = 0.3f;
    v[5].temperature = 1.2f;
    v[6].temperature = 0.9f, v[6].top_p = 0.95f, v[6].min_p = 0.05f;
    for (size_t i = 0; i < v.size(); ++i) v[i].seed = 100 + i;
    return v;
  }();
  for (size_t c = 0; c < ps.size(); ++c) {
    paca::Session s(*m, pool, 0);
    std::vector<int32_t> p(37);
    for (size_t i = 0; i < p.size(); ++i) p[i] = static_cast<int32_t>((i * 53 + c) % 1000);
    s.prefill(p);
    paca::Sampler kept(ps[c], 1000), whole(ps[c], 1000);
    for (int step = 0; step < 16; ++step) {
      const int32_t a = s.sample(kept);
      const int32_t b = whole.sample(s.logits(), s.tokens());
      ASSERT_EQ(a, b) << "sampler " << c << " step " << step;
      s.prefill(std::span<const int32_t>(&a, 1));
    }
  }
}

// Graphs on and off launch the same kernels on the same data (with the
// attention splits fixed, which is all a recorded step plans differently),
// so every logit must be the same bits. Contexts cross block and bucket
// boundaries (16-token blocks, the 256-position bucket).
TEST(CudaGraphs, DecodeStepsEqualOpByOpBitForBit) {
  SKIP_WITHOUT_DEVICE();
  if (!graphs_wanted()) GTEST_SKIP() << "PACA_CUDA_GRAPHS switches graphs off in this run";
  for (int splits : {1, 3}) {
    auto on = cuda_synthetic(true, splits);
    auto off = cuda_synthetic(false, splits);
    const auto a = decode_run(*on, 245, 8), b = decode_run(*off, 245, 8);
    ASSERT_EQ(a.size(), b.size());
    for (size_t i = 0; i < a.size(); ++i)
      ASSERT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) << "logits " << i << " splits " << splits;
    const paca::cuda::GraphStats st = paca::cuda::graph_stats(on->backend());
    const paca::cuda::GraphStats none = paca::cuda::graph_stats(off->backend());
    std::printf("splits %d: graphs recorded %llu, replayed %llu, eager steps %llu, fallbacks %llu\n", splits,
                static_cast<unsigned long long>(st.recorded), static_cast<unsigned long long>(st.replayed),
                static_cast<unsigned long long>(st.eager), static_cast<unsigned long long>(st.fallbacks));
    EXPECT_GE(st.recorded, 2u);                // one sequence, then three
    EXPECT_LE(st.recorded, 8u);                // ... not one per step
    EXPECT_EQ(st.replayed, 17u);               // every decode step: 8 alone, a fork's 1, 8 batched
    EXPECT_EQ(st.fallbacks, 0u);
    EXPECT_EQ(none.replayed + none.recorded, 0u);
    // "no CUDA graphs" contains "CUDA graphs": look for the switched-off form
    EXPECT_EQ(on->backend_name().find("no CUDA graphs"), std::string::npos) << on->backend_name();
    EXPECT_NE(off->backend_name().find("no CUDA graphs"), std::string::npos) << off->backend_name();
  }
}

// With the planned splits (from the context bucket) the recorded steps stay
// within f32 rounding of the CPU backend (same bf16 weights, f32 KV). The
// 250-token prefill runs on the GEMV kernel (f32 activations): through
// cuBLASLt its activations would be rounded to bf16, ~1e-3 off the CPU.
TEST(CudaGraphs, DecodeStepsMatchTheCpu) {
  SKIP_WITHOUT_DEVICE();
  auto gpu = cuda_synthetic(true, 0, /*cublaslt=*/false);
  auto cpu = synthetic_on(paca::make_cpu_backend(2));
  const auto a = decode_run(*gpu, 250, 10), b = decode_run(*cpu, 250, 10);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i) EXPECT_LT(rel_l2(a[i], b[i]), 1e-4) << "logits " << i;
}

// A whole model whose prefill takes the flash kernel (head_dim 64, GQA 4,
// bf16 cache): a 200-token prompt, a 100-token chunk on top of it (a cached
// prefix), then decode steps (the f32 kernel), against the CPU and against
// the same GPU model with flash off. GEMV only (f32 activations), so the
// difference is the kernel's bf16 Q and P; 1e-2 relative L2 of the logits
// (the tiny models of CudaModel have head dims 8 and 16: never flash).
TEST(CudaFlashModel, ChunkedPrefillMatchesTheCpu) {
  SKIP_WITHOUT_DEVICE();
  paca::TestModelSpec spec = synthetic_spec();
  spec.dim = 256;
  spec.n_heads = 4;
  spec.n_kv_heads = 1;
  auto run = [&](std::unique_ptr<Backend> be) {
    auto m = synthetic_on(std::move(be), spec, DType::bf16);
    paca::BlockPool pool(m->kv_backend(), m->kv_layout());
    paca::Session s(*m, pool, 0);
    std::vector<int32_t> p(300);
    for (int i = 0; i < 300; ++i) p[i] = (i * 53 + 7) % 1000;
    std::vector<std::vector<float>> out;
    s.prefill(std::span<const int32_t>(p.data(), 200));
    out.push_back(s.logits());
    s.prefill(std::span<const int32_t>(p.data() + 200, 100));
    out.push_back(s.logits());
    for (int i = 0; i < 3; ++i) {  // fixed tokens: a near-tie of argmax cannot split the runs
      const int32_t t = (i * 311 + 5) % 1000;
      s.prefill(std::span<const int32_t>(&t, 1));
      out.push_back(s.logits());
    }
    return std::make_pair(std::move(m), out);
  };
  paca::cuda::CudaBackendOptions on, off;
  on.use_cublaslt = off.use_cublaslt = false;
  off.flash_min_rows = 0;
  auto [gm, got] = run(paca::cuda::make_cuda_backend(on));
  auto [om, old] = run(paca::cuda::make_cuda_backend(off));
  auto [cm, ref] = run(paca::make_cpu_backend(2));
  EXPECT_EQ(paca::cuda::graph_stats(gm->backend()).flash_prefill, 2u * spec.n_layers);  // two chunks per layer
  EXPECT_EQ(paca::cuda::graph_stats(om->backend()).flash_prefill, 0u);
  ASSERT_EQ(got.size(), ref.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_LT(rel_l2(got[i], ref[i]), 1e-2) << "logits " << i;
    EXPECT_LT(rel_l2(got[i], old[i]), 1e-2) << "logits " << i;
    // flash off: f32 rounding, except where it flips a bf16 cache value's last bit
    EXPECT_LT(rel_l2(old[i], ref[i]), 1e-3) << "logits " << i << " (flash off)";
  }
}

// ---- whole models through the C API -------------------------------------------

struct ModelRun {
  std::vector<float> logits;     // after the prompt
  std::vector<int32_t> greedy;   // the continuation by argmax
  std::vector<float> fork_logits;  // a fork of the session after the prompt, decoding greedy[0]
};

// FP8 load parameters (paca_model_params): quantize at load, targets, mode.
struct Fp8Load {
  int32_t weight_dtype = PACA_WEIGHTS_AS_STORED;
  int32_t targets = 0;
  int32_t mode = PACA_FP8_AUTO;
};

ModelRun run_model(const std::string& path, const char* device, const std::vector<int32_t>& prompt, int n_gen,
              int32_t kv_dtype, Fp8Load fp8 = {}) {
  ModelRun r;
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.device = device;
  p.n_threads = 2;
  p.kv_dtype = kv_dtype;
  p.cuda_graphs = graphs_wanted() ? 1 : 0;
  p.weight_dtype = fp8.weight_dtype;
  p.fp8_targets = fp8.targets;
  p.fp8_mode = fp8.mode;
  paca_model* m = nullptr;
  EXPECT_EQ(paca_model_load(path.c_str(), &p, &m), PACA_OK) << paca_last_error();
  if (m == nullptr) return r;
  paca_session* s = nullptr;
  EXPECT_EQ(paca_session_create(m, nullptr, &s), PACA_OK) << paca_last_error();
  EXPECT_EQ(paca_session_prefill(s, prompt.data(), prompt.size()), PACA_OK) << paca_last_error();
  const float* lg = nullptr;
  size_t nv = 0;
  EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
  r.logits.assign(lg, lg + nv);
  paca_session* child = nullptr;
  EXPECT_EQ(paca_session_fork(s, &child), PACA_OK) << paca_last_error();
  for (int i = 0; i < n_gen; ++i) {
    EXPECT_EQ(paca_session_logits(s, &lg, &nv), PACA_OK);
    const int32_t t = argmax(lg, nv);
    r.greedy.push_back(t);
    EXPECT_EQ(paca_session_decode(s, t), PACA_OK) << paca_last_error();
  }
  if (child != nullptr && !r.greedy.empty()) {
    EXPECT_EQ(paca_session_decode(child, r.greedy[0]), PACA_OK) << paca_last_error();
    EXPECT_EQ(paca_session_logits(child, &lg, &nv), PACA_OK);
    r.fork_logits.assign(lg, lg + nv);
  }
  paca_session_free(child);
  paca_session_free(s);
  paca_model_free(m);
  return r;
}

struct ModelCase {
  const char* path;  // under ../shared/models
  double tol;        // relative L2 of the prompt's logits
  int same_greedy;   // leading greedy tokens that must agree
};

class CudaModel : public ::testing::TestWithParam<ModelCase> {};

TEST_P(CudaModel, MatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  const ModelCase& c = GetParam();
  const std::string path = models_dir() + "/" + c.path;
  if (!std::filesystem::exists(path)) GTEST_SKIP() << "shared models absent: " << path;
  std::mt19937 rng(7);
  for (int n_prompt : {5, 40}) {  // 5: the GEMV path only; 40: cuBLASLt in the prefill
    for (int32_t kv : {PACA_KV_F32, PACA_KV_BF16}) {
      std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
      std::uniform_int_distribution<int32_t> tok(3, 250);  // inside every model's vocabulary
      prompt[0] = 1;
      for (size_t i = 1; i < prompt.size(); ++i) prompt[i] = tok(rng);
      const ModelRun cpu = run_model(path, "cpu", prompt, 16, kv);
      const ModelRun gpu = run_model(path, "cuda", prompt, 16, kv);
      ASSERT_EQ(cpu.logits.size(), gpu.logits.size());
      EXPECT_LT(rel_l2(gpu.logits, cpu.logits), c.tol) << c.path << " prompt " << n_prompt << " kv " << kv;
      EXPECT_LT(rel_l2(gpu.fork_logits, cpu.fork_logits), c.tol) << c.path << " fork";
      int same = 0;
      while (same < static_cast<int>(cpu.greedy.size()) && cpu.greedy[same] == gpu.greedy[same]) ++same;
      if (n_prompt <= 8 && kv == PACA_KV_F32) {
        // f32 activations and cache on both sides: the same tokens
        EXPECT_GE(same, c.same_greedy) << c.path << " prompt " << n_prompt;
      } else {
        // bf16 activations or cache: the first token must agree whenever the
        // CPU's top-1 margin exceeds 4x the largest logit difference
        std::vector<float> sorted = cpu.logits;
        std::partial_sort(sorted.begin(), sorted.begin() + 2, sorted.end(), std::greater<float>());
        float diff = 0;
        for (size_t i = 0; i < cpu.logits.size(); ++i) diff = std::max(diff, std::fabs(cpu.logits[i] - gpu.logits[i]));
        if (sorted[0] - sorted[1] > 4 * diff) {
          EXPECT_GE(same, 1) << c.path << " prompt " << n_prompt << " kv " << kv;
        }
      }
      std::printf("%s prompt %d kv %d: rel L2 %.2e, %d of %zu greedy tokens agree\n", c.path, n_prompt, kv,
                  rel_l2(gpu.logits, cpu.logits), same, cpu.greedy.size());
    }
  }
}

INSTANTIATE_TEST_SUITE_P(SharedModels, CudaModel,
                         ::testing::Values(ModelCase{"tiny-llama2", 2e-2, 8}, ModelCase{"tiny-llama3", 2e-2, 8},
                                           ModelCase{"tiny-llama31", 2e-2, 8}, ModelCase{"tiny-llama32", 2e-2, 8},
                                           ModelCase{"gguf/tiny-llama31.gguf", 2e-2, 8},
                                           ModelCase{"gguf/tiny-llama3.q8_0.gguf", 3e-2, 1},
                                           ModelCase{"stories260K/stories260K.bin", 3e-2, 4}),
                         [](const ::testing::TestParamInfo<ModelCase>& i) {
                           std::string n = i.param.path;
                           for (char& ch : n)
                             if (!std::isalnum(static_cast<unsigned char>(ch))) ch = '_';
                           return n;
                         });

// The golden.json of a shared model directory.
nlohmann::json read_golden(const std::string& dir) {
  std::ifstream f(dir + "/golden.json");
  return nlohmann::json::parse(f);
}

// The golden continuation of stories260K ("Once upon a time, there was a
// little girl named Lily...") on the device, from its golden.json.
TEST(CudaModelGolden, Stories260KGreedy) {
  SKIP_WITHOUT_DEVICE();
  const std::string dir = models_dir() + "/stories260K";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared models absent: " << dir;
  const nlohmann::json golden = read_golden(dir);
  const auto& c = golden["cases"][0];
  const std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
  const std::vector<int32_t> want = c["greedy"].get<std::vector<int32_t>>();
  const ModelRun gpu = run_model(dir + "/stories260K.bin", "cuda", prompt, 24, PACA_KV_BF16);
  const int same = same_prefix(gpu.greedy, want);
  // weights rounded to bf16 (the file holds f32): the story may part from
  // the f32 golden one late, not early
  EXPECT_GE(same, 8) << "greedy tokens agreeing with golden.json";
  std::printf("stories260K on the GPU (bf16 weights and cache): %d of %zu golden greedy tokens\n", same,
              gpu.greedy.size());
}

// ---- FP8 models ------------------------------------------------------------------

std::vector<float> read_f32(const std::string& path) {
  std::ifstream f(path, std::ios::binary);
  std::vector<float> v;
  float x;
  while (f.read(reinterpret_cast<char*>(&x), sizeof x)) v.push_back(x);
  return v;
}

// Meta's fbgemm_fp8 layout (tiny-llama31-fp8: the MLP of layer 1 in FP8,
// w8a8 with bound 1200). Golden prompts (<= 8 tokens: the FP8 GEMV after the
// quantizer) against golden.json, which was computed with exactly this
// arithmetic: relative L2 <= 1e-3 and the first 8 greedy tokens, the bound
// its README states. Against the CPU backend the same 1e-3 (an activation a
// rounding away from an E4M3 boundary may take the other code when the f32
// sums before it ran in another order). A 40-token prompt (the FP8 GEMM for
// 32 tokens, the GEMV for 8; bf16 activations in the BF16 layers' GEMMs): 2e-2 as
// the bf16 models. The weight-only mode of the same file too.
TEST(CudaFp8Model, CheckpointMatchesGoldenAndCpu) {
  SKIP_WITHOUT_DEVICE();
  const std::string dir = models_dir() + "/tiny-llama31-fp8";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared models absent: " << dir;
  const nlohmann::json golden = read_golden(dir);
  int n_case = 0;
  for (const auto& c : golden["cases"]) {
    const std::vector<int32_t> prompt = c["prompt_tokens"].get<std::vector<int32_t>>();
    const std::vector<int32_t> want = c["greedy"].get<std::vector<int32_t>>();
    const std::vector<float> ref = read_f32(dir + "/" + c["logits_file"].get<std::string>());
    const ModelRun gpu = run_model(dir, "cuda", prompt, 8, PACA_KV_F32);
    const ModelRun cpu = run_model(dir, "cpu", prompt, 8, PACA_KV_F32);
    ASSERT_EQ(gpu.logits.size(), ref.size());
    EXPECT_LT(rel_l2(gpu.logits, ref), 1e-3) << "case " << n_case;
    EXPECT_LT(rel_l2(gpu.logits, cpu.logits), 1e-3) << "case " << n_case;
    EXPECT_EQ(same_prefix(gpu.greedy, want), 8) << "case " << n_case;
    EXPECT_EQ(same_prefix(gpu.greedy, cpu.greedy), 8) << "case " << n_case;
    std::printf("tiny-llama31-fp8 case %d: rel L2 %.2e vs golden, %.2e vs cpu\n", n_case, rel_l2(gpu.logits, ref),
                rel_l2(gpu.logits, cpu.logits));
    ++n_case;
  }
  EXPECT_GT(n_case, 0);
  std::mt19937 rng(11);
  std::uniform_int_distribution<int32_t> tok(3, 120000);
  std::vector<int32_t> prompt(40);
  for (int32_t& t : prompt) t = tok(rng);
  prompt[0] = 128000;
  for (int32_t mode : {PACA_FP8_AUTO, PACA_FP8_W8A16}) {
    Fp8Load l;
    l.mode = mode;
    const ModelRun gpu = run_model(dir, "cuda", prompt, 8, PACA_KV_F32, l);
    const ModelRun cpu = run_model(dir, "cpu", prompt, 8, PACA_KV_F32, l);
    ASSERT_EQ(gpu.logits.size(), cpu.logits.size());
    EXPECT_LT(rel_l2(gpu.logits, cpu.logits), 2e-2) << "mode " << mode;
    EXPECT_LT(rel_l2(gpu.fork_logits, cpu.fork_logits), 2e-2) << "mode " << mode;
    EXPECT_GE(same_prefix(gpu.greedy, cpu.greedy), 1) << "mode " << mode;
    std::printf("tiny-llama31-fp8, 40-token prompt, mode %d: rel L2 %.2e, %d of 8 greedy tokens agree\n", mode,
                rel_l2(gpu.logits, cpu.logits), same_prefix(gpu.greedy, cpu.greedy));
  }
}

// Quantize-at-load (weight_dtype FP8, every linear weight of every layer) of
// a BF16 model, w8a8 and weight-only, CUDA vs CPU. Tolerances as above: a
// 5-token prompt 1e-3 and the first 8 greedy tokens; a 40-token prompt (the
// FP8 GEMM or bf16 tiles) 2e-2 and the first token.
TEST(CudaFp8Model, QuantizeAtLoadMatchesCpu) {
  SKIP_WITHOUT_DEVICE();
  const std::string dir = models_dir() + "/tiny-llama31";
  if (!std::filesystem::exists(dir)) GTEST_SKIP() << "shared models absent: " << dir;
  std::mt19937 rng(5);
  std::uniform_int_distribution<int32_t> tok(3, 120000);
  for (int32_t mode : {PACA_FP8_W8A8, PACA_FP8_W8A16}) {
    for (int n_prompt : {5, 40}) {
      std::vector<int32_t> prompt(static_cast<size_t>(n_prompt));
      for (int32_t& t : prompt) t = tok(rng);
      prompt[0] = 128000;
      Fp8Load l;
      l.weight_dtype = PACA_WEIGHTS_FP8;
      l.targets = PACA_FP8_MLP | PACA_FP8_ATTENTION;
      l.mode = mode;
      const ModelRun gpu = run_model(dir, "cuda", prompt, 8, PACA_KV_F32, l);
      const ModelRun cpu = run_model(dir, "cpu", prompt, 8, PACA_KV_F32, l);
      ASSERT_EQ(gpu.logits.size(), cpu.logits.size());
      const double tol = n_prompt <= 8 ? 1e-3 : 2e-2;
      EXPECT_LT(rel_l2(gpu.logits, cpu.logits), tol) << "mode " << mode << " prompt " << n_prompt;
      EXPECT_LT(rel_l2(gpu.fork_logits, cpu.fork_logits), tol) << "mode " << mode << " prompt " << n_prompt;
      EXPECT_GE(same_prefix(gpu.greedy, cpu.greedy), n_prompt <= 8 ? 8 : 1)
          << "mode " << mode << " prompt " << n_prompt;
      std::printf("tiny-llama31 quantized at load, mode %d, prompt %d: rel L2 %.2e, %d of 8 greedy tokens agree\n", mode,
                  n_prompt, rel_l2(gpu.logits, cpu.logits), same_prefix(gpu.greedy, cpu.greedy));
    }
  }
}

// A synthetic model with every linear weight quantized at load (w8a8, a
// bound of 1200, the k projections with a bound of their own so that they
// quantize for themselves), on CUDA with the fused norm + quantize and
// without it (the option; PACA_CUDA_FP8_FUSED_NORM=0 does the same): the same
// logits bit for bit through a 245-token prefill (the FP8 GEMM and the GEMV
// tail), decode steps alone and batched (recorded as CUDA graphs when on),
// and forks. The fused backend must really fuse and reuse.
TEST(CudaFp8Model, FusedNormQuantSameLogits) {
  SKIP_WITHOUT_DEVICE();
  auto make = [](bool fused) {
    paca::cuda::CudaBackendOptions o;
    o.fp8_fused_norm = fused;
    o.graphs = graphs_wanted();
    auto ckpt = paca::synthetic_checkpoint(synthetic_spec(), uint64_t{1} << 30);
    paca::Fp8Options q;
    q.attention = true;
    q.keep_first_last = false;
    paca::quantize_fp8(*ckpt, q);
    for (auto& [name, t] : ckpt->tensors)
      if (name.find("k_proj") != std::string::npos) t.act_ub = 2.5f;
    paca::ModelOptions opt;
    opt.n_threads = 2;
    opt.kv_block_tokens = 16;
    auto m = std::make_unique<paca::LlamaModel>(std::move(ckpt), paca::cuda::make_cuda_backend(o), opt);
    std::vector<const TensorView*> views;
    for (const auto& [n, t] : m->checkpoint().tensors) views.push_back(&t);
    m->backend().upload_weights(views, nullptr);
    return m;
  };
  auto on = make(true), off = make(false);
  EXPECT_GT(paca::count_fp8(on->checkpoint()), 0);
  const auto a = decode_run(*on, 245, 6), b = decode_run(*off, 245, 6);
  ASSERT_EQ(a.size(), b.size());
  for (size_t i = 0; i < a.size(); ++i)
    ASSERT_EQ(0, std::memcmp(a[i].data(), b[i].data(), a[i].size() * sizeof(float))) << "logits " << i;
  const paca::cuda::GraphStats st = paca::cuda::graph_stats(on->backend());
  const paca::cuda::GraphStats none = paca::cuda::graph_stats(off->backend());
  std::printf("fused norm + quantize: %llu norms fused, %llu matmuls reused their codes\n",
              static_cast<unsigned long long>(st.norm_quant_fused),
              static_cast<unsigned long long>(st.norm_quant_reused));
  EXPECT_GT(st.norm_quant_fused, 0u);
  EXPECT_GT(st.norm_quant_reused, st.norm_quant_fused);  // wq and wv after the attention norms, w1 and w3 after the FFN's
  EXPECT_EQ(none.norm_quant_fused + none.norm_quant_reused, 0u);
  if (graphs_wanted()) {
    EXPECT_GT(st.replayed, 0u);
    EXPECT_EQ(st.fallbacks, 0u);
  }
}

}  // namespace
