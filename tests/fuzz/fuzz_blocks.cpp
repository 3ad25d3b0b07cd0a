// fuzz_blocks.cpp - libFuzzer target for the block-quantized weight formats
// (Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, Q4_K, Q5_K, Q6_K): any bytes of a GGUF tensor
// are a row of blocks, and everything that reads them must stay in bounds and
// agree with itself.
//
// Input: byte 0 picks the type, byte 1 the activation pattern, the rest is
// the weight row (whole blocks only; the tail is ignored). For that row:
//   - dequantize_blocks reads exactly the row (ASan) and block_codes stays in
//     its code range;
//   - the AVX2 block dot equals the scalar one bit for bit (NaN for NaN);
//   - when every value is finite, the dot is within the f32 rounding bound of
//     the definition sum_i w[i] * x[i] computed in double from the
//     dequantized weights and activations;
//   - quantize_blocks of the dequantized row (non-finite read as 0) writes a
//     row that decodes to finite values, within half the block's largest
//     magnitude of the input (plus the f16 underflow floor) where that is
//     inside the f16 range (a loose
//     bound: it catches a wrong layout or an overflow, not a poor scale).
#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "backend/cpu/kernels.h"
#include "format/block_quant.h"
#include "format/tensor.h"
#include "fuzz_common.h"

namespace {

using paca::DType;
using paca::fuzz::require;

constexpr DType kTypes[] = {DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1,
                            DType::q8_0, DType::q4_k, DType::q5_k, DType::q6_k};
constexpr size_t kMaxBlocks = 64;  // 16384 elements at most: keeps each input fast

// The value element i of activation block b dequantizes to.
float act_value(DType t, const std::vector<uint8_t>& xq, size_t i) {
  if (paca::cpu::act_block(t) == 256) {
    const auto* a = reinterpret_cast<const paca::cpu::ActQ256*>(xq.data()) + i / 256;
    return a->d * static_cast<float>(a->q[i % 256]);
  }
  const auto* a = reinterpret_cast<const paca::cpu::ActQ32*>(xq.data()) + i / 32;
  return a->d * static_cast<float>(a->q[i % 32]);
}

// Activations from a pattern byte: a smooth wave, a spike, alternating signs
// or a constant, scaled by a power of two picked by the high bits.
std::vector<float> activations(uint8_t pattern, size_t n) {
  std::vector<float> x(n);
  const float scale = std::ldexp(1.0f, static_cast<int>(pattern >> 3) - 16);
  for (size_t i = 0; i < n; ++i) {
    switch (pattern & 7) {
      case 0: x[i] = scale * std::sin(0.37f * static_cast<float>(i)); break;
      case 1: x[i] = i == n / 3 ? scale : 0.0f; break;
      case 2: x[i] = (i % 2 ? -scale : scale); break;
      case 3: x[i] = scale; break;
      case 4: x[i] = scale * static_cast<float>(static_cast<int>(i % 17) - 8); break;
      case 5: x[i] = 0.0f; break;
      case 6: x[i] = i % 64 == 0 ? scale * 1e6f : scale * 1e-3f; break;
      default: x[i] = scale * std::cos(1.7f * static_cast<float>(i)); break;
    }
  }
  return x;
}

void check_codes(DType t, const uint8_t* row, size_t blocks) {
  if (t == DType::q8_0) return;
  const auto shape = paca::block_shape(t);
  const int limit = t == DType::q6_k ? 64 : (t == DType::q5_0 || t == DType::q5_1 || t == DType::q5_k) ? 32 : 16;
  std::vector<int> q(shape.elems);
  for (size_t b = 0; b < blocks; ++b) {
    paca::block_codes(t, row + b * shape.bytes, q.data());
    for (int v : q) require(v >= 0 && v < limit);
  }
}

void check_dots(DType t, const uint8_t* row, const std::vector<float>& w, uint8_t pattern) {
  const paca::cpu::Kernels& scalar = paca::cpu::scalar_kernels();
  const paca::cpu::BlockDot sdot = paca::cpu::block_dot(scalar, t);
  if (sdot == nullptr) return;  // Q8_0 reads f32 activations (dot_q8_0)
  const size_t n = w.size();
  const std::vector<float> x = activations(pattern, n);
  std::vector<uint8_t> xq(paca::cpu::act_row_bytes(t, n));
  paca::cpu::quantize_activations(t, x.data(), xq.data(), n);
  const float got = sdot(row, xq.data(), n);
  static const std::vector<const paca::cpu::Kernels*> isas = paca::cpu::available_kernels();
  for (size_t i = 1; i < isas.size(); ++i) {  // every wider set this CPU runs, bit for bit
    std::vector<uint8_t> vq(xq.size(), 0x5a);
    isas[i]->quantize_acts(t, x.data(), vq.data(), n);
    require(vq == xq);
    const float v = paca::cpu::block_dot(*isas[i], t)(row, xq.data(), n);
    require((std::isnan(got) && std::isnan(v)) || std::memcmp(&got, &v, sizeof got) == 0);
  }
  double ref = 0, mag = 0;
  bool finite = true;
  for (size_t i = 0; i < n; ++i) {
    const double p = static_cast<double>(w[i]) * act_value(t, xq, i);
    finite = finite && std::isfinite(w[i]) && std::isfinite(p);
    ref += p;
    mag += std::fabs(p);
  }
  // Exact integer sums inside each block; f32 only in the per-block scale
  // products and the n / 32 fmas, each off by at most a few ulps of the
  // running magnitude. Scales near the f32 range can overflow where double
  // does not: skip those.
  if (!finite || !std::isfinite(got) || mag > 1e30 || mag < 1e-30) return;
  const double bound = 1e-5 * static_cast<double>(n / 32 + 8) * mag + 1e-30;
  require(std::fabs(static_cast<double>(got) - ref) <= bound);
}

void check_requantize(DType t, const std::vector<float>& w) {
  const auto shape = paca::block_shape(t);
  const size_t n = w.size();
  std::vector<float> src(n);
  for (size_t i = 0; i < n; ++i) src[i] = std::isfinite(w[i]) ? w[i] : 0.0f;
  std::vector<uint8_t> q(paca::row_bytes(t, n));
  paca::quantize_blocks(t, src.data(), q.data(), n);
  std::vector<float> back(n);
  paca::dequantize_blocks(t, q.data(), back.data(), n);
  for (size_t b = 0; b < n / shape.elems; ++b) {
    float amax = 0;
    for (size_t i = 0; i < shape.elems; ++i) amax = std::max(amax, std::fabs(src[b * shape.elems + i]));
    for (size_t i = 0; i < shape.elems; ++i) {
      const size_t k = b * shape.elems + i;
      require(std::isfinite(back[k]));  // the f16 fields saturate, never inf
      // Past +-65504 the f16 fields clip (quantize_checkpoint refuses such weights).
      // Below about 1e-6 the f16 scales underflow (subnormal steps of 6e-8,
      // times a K sub-block scale up to 63): an absolute floor of 4e-6.
      if (amax <= 65504.0f) require(std::fabs(back[k] - src[k]) <= 0.5f * amax + 4e-6f);
    }
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const DType t = kTypes[data[0] % (sizeof kTypes / sizeof kTypes[0])];
  const uint8_t pattern = data[1];
  const auto shape = paca::block_shape(t);
  const size_t blocks = std::min((size - 2) / shape.bytes, kMaxBlocks);
  if (blocks == 0) return 0;
  // A copy of exactly the row, so ASan sees any read past its end.
  const std::vector<uint8_t> row(data + 2, data + 2 + blocks * shape.bytes);
  const size_t n = blocks * shape.elems;
  std::vector<float> w(n);
  paca::dequantize_blocks(t, row.data(), w.data(), n);
  check_codes(t, row.data(), blocks);
  check_dots(t, row.data(), w, pattern);
  check_requantize(t, w);
  return 0;
}
