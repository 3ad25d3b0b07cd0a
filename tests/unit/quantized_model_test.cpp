// quantized_model_test.cpp - a model with block-quantized weights (every mix
// of paca quantize) against the same quantized weights widened to F32: the
// logits agree within the error of 8-bit activations; a token's logits have
// the same bits alone, inside a prefill, and for any thread count; the GGUF
// writer keeps the metadata and writes exactly the quantizer's blocks.
#include <gtest/gtest.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "backend/backend.h"
#include "backend/cpu/kernels.h"
#include "format/block_quant.h"
#include "model/checkpoint.h"
#include "model/llama_model.h"
#include "model/quantize.h"
#include "model/test_model.h"
#include "runtime/load.h"
#include "tokenizer/tokenizer.h"
#include "util/error.h"
#include "util/half.h"

using namespace paca;

namespace {

TestModelSpec kq_spec() {
  TestModelSpec s;
  s.seed = 11;
  s.dim = 256;  // whole K super-blocks along every row but w2's
  s.n_layers = 3;
  s.n_heads = 4;
  s.n_kv_heads = 2;
  s.ffn_dim = 768;
  s.n_vocab = 1024;
  s.max_context = 256;
  return s;
}

double rel_l2(const std::vector<float>& a, const std::vector<float>& b) {
  double num = 0, den = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    num += (a[i] - b[i]) * static_cast<double>(a[i] - b[i]);
    den += static_cast<double>(b[i]) * b[i];
  }
  return std::sqrt(num / den);
}

// Runs `tokens` through the model, `chunk` tokens per forward, and returns
// the logits after each chunk.
std::vector<std::vector<float>> run(LlamaModel& m, const std::vector<int32_t>& tokens, size_t chunk) {
  Workspace ws(m.backend(), m.config());
  ws.reserve(static_cast<int>(chunk));
  const KvLayout& L = m.kv_layout();
  std::vector<uint8_t*> blocks;
  for (int b = 0; b < (m.config().max_context + L.block_tokens - 1) / L.block_tokens; ++b)
    blocks.push_back(static_cast<uint8_t*>(m.backend().alloc(L.block_bytes())));
  const KvSeq seq{&L, blocks};
  std::vector<std::vector<float>> out;
  for (size_t p = 0; p < tokens.size(); p += chunk) {
    const size_t n = std::min(chunk, tokens.size() - p);
    m.forward(ws, std::span<const int32_t>(tokens.data() + p, n), static_cast<int>(p), seq, nullptr);
    out.emplace_back(ws.logits.data, ws.logits.data + ws.logits.cols);
  }
  for (uint8_t* b : blocks) m.backend().release(b);
  return out;
}

std::unique_ptr<LlamaModel> make(std::unique_ptr<Checkpoint> ck, int threads) {
  ModelOptions opt;
  opt.n_threads = threads;
  return std::make_unique<LlamaModel>(std::move(ck), make_cpu_backend(threads), opt);
}

std::vector<int32_t> prompt_tokens() {
  std::vector<int32_t> t;
  for (int i = 0; i < 24; ++i) t.push_back((i * 37 + 5) % 1024);
  return t;
}

}  // namespace

TEST(QuantizedModel, MixesPickTheirTypes) {
  const int L = 32;
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L5.wq", 4096, 4096, L, false), DType::q4_k);
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L0.wv", 1024, 4096, L, false), DType::q6_k);   // first eighth
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L4.w2", 4096, 14336, L, false), DType::q4_k);  // (4 - 4) % 3 != 2
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L6.w2", 4096, 14336, L, false), DType::q6_k);  // (6 - 4) % 3 == 2
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L31.wv", 1024, 4096, L, false), DType::q6_k);  // last eighth
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_s, "L0.wv", 1024, 4096, L, false), DType::q4_k);
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "output", 128256, 4096, L, false), DType::q6_k);
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "embed", 128256, 4096, L, true), DType::q6_k);
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "embed", 128256, 4096, L, false), DType::q4_k);
  EXPECT_EQ(quant_mix_type(QuantMix::q8_0, "output", 128256, 4096, L, false), DType::q8_0);
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L1.attn_norm", 1, 4096, L, false), DType::f32);
  // rows without whole blocks fall back
  EXPECT_EQ(quant_mix_type(QuantMix::q4_k_m, "L5.wq", 64, 64, L, false), DType::q5_0);
  EXPECT_EQ(quant_mix_type(QuantMix::q5_k_m, "L5.wq", 64, 64, L, false), DType::q5_1);
  EXPECT_EQ(quant_mix_type(QuantMix::q6_k, "L5.wq", 64, 64, L, false), DType::q8_0);
  EXPECT_EQ(quant_mix_type(QuantMix::q4_0, "L5.w2", 64, 172, L, false), DType::f16);
  QuantMix m;
  EXPECT_TRUE(parse_quant_mix("Q4_K_M", m));
  EXPECT_EQ(m, QuantMix::q4_k_m);
  EXPECT_FALSE(parse_quant_mix("q3_k", m));
}

TEST(QuantizedModel, LogitsMatchTheDequantizedModel) {
  const std::vector<int32_t> toks = prompt_tokens();
  for (QuantMix mix : {QuantMix::q4_0, QuantMix::q4_1, QuantMix::q5_0, QuantMix::q5_1, QuantMix::q8_0,
                       QuantMix::q4_k_s, QuantMix::q4_k_m, QuantMix::q5_k_m, QuantMix::q6_k}) {
    auto qa = synthetic_checkpoint(kq_spec(), uint64_t{1} << 30);
    quantize_checkpoint(*qa, mix, 2);
    int blocks = 0;
    for (const auto& [name, t] : qa->tensors) blocks += is_block_quant(t.dtype) || t.dtype == DType::q8_0;
    EXPECT_GE(blocks, 3 * 7) << quant_mix_name(mix) << ": the layers' matrices should all be block types";
    auto qb = synthetic_checkpoint(kq_spec(), uint64_t{1} << 30);
    quantize_checkpoint(*qb, mix, 2);
    dequantize_checkpoint(*qb);
    auto a = make(std::move(qa), 2);
    auto b = make(std::move(qb), 2);
    // prefill of 16, then single tokens (the decode path)
    std::vector<std::vector<float>> la = run(*a, toks, 16), lb = run(*b, toks, 16);
    std::vector<std::vector<float>> da = run(*a, toks, 1), db = run(*b, toks, 1);
    for (size_t i = 0; i < la.size(); ++i) {
      // 8-bit activations against f32 ones: about 1% of the logits' norm
      EXPECT_LT(rel_l2(la[i], lb[i]), 3e-2) << quant_mix_name(mix) << " chunk " << i;
    }
    EXPECT_LT(rel_l2(da.back(), db.back()), 3e-2) << quant_mix_name(mix);
    std::printf("%s: relative L2 of the last logits vs the dequantized model %.4f\n", quant_mix_name(mix),
                rel_l2(la.back(), lb.back()));
    // the last token's logits: the same bits decoded one at a time as in the prefill
    EXPECT_EQ(std::memcmp(da.back().data(), la.back().data(), la.back().size() * 4), 0) << quant_mix_name(mix);
  }
}

TEST(QuantizedModel, SameBitsForAnyThreadCount) {
  const std::vector<int32_t> toks = prompt_tokens();
  std::vector<std::vector<float>> ref;
  for (int threads : {1, 2, 3}) {
    auto ck = synthetic_checkpoint(kq_spec(), uint64_t{1} << 30);
    quantize_checkpoint(*ck, QuantMix::q4_k_m, threads);
    auto m = make(std::move(ck), threads);
    std::vector<std::vector<float>> got = run(*m, toks, 8);
    if (ref.empty()) {
      ref = got;
      continue;
    }
    for (size_t i = 0; i < ref.size(); ++i)
      EXPECT_EQ(std::memcmp(got[i].data(), ref[i].data(), ref[i].size() * 4), 0) << threads << " threads, chunk " << i;
  }
}

TEST(QuantizedModel, NonFiniteWeightsAreNamed) {
  auto ck = synthetic_checkpoint(kq_spec(), uint64_t{1} << 30);
  TensorView& t = ck->tensors.at("L1.wk");
  std::vector<uint8_t>& mem = ck->owned_u8.emplace_back(t.bytes());
  std::memcpy(mem.data(), t.data, t.bytes());
  const float inf = INFINITY;
  ASSERT_EQ(t.dtype, DType::bf16);
  const uint16_t hinf = static_cast<uint16_t>(f32_to_bits(inf) >> 16);
  std::memcpy(mem.data() + 2 * (5 * t.cols + 3), &hinf, 2);
  t.data = mem.data();
  try {
    quantize_checkpoint(*ck, QuantMix::q4_k_m, 2);
    FAIL() << "a non-finite weight was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("row 5"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("non-finite"), std::string::npos) << e.what();
  }
}

TEST(QuantizedModel, WeightsPastTheF16RangeAreNamedNotClipped) {
  auto ck = synthetic_checkpoint(kq_spec(), uint64_t{1} << 30);
  TensorView& t = ck->tensors.at("L0.wq");
  std::vector<uint8_t>& mem = ck->owned_u8.emplace_back(t.bytes());
  std::memcpy(mem.data(), t.data, t.bytes());
  ASSERT_EQ(t.dtype, DType::bf16);
  const uint16_t big = static_cast<uint16_t>(f32_to_bits(-70000.0f) >> 16);  // about -69632 in bf16
  std::memcpy(mem.data() + 2 * (7 * t.cols + 1), &big, 2);
  t.data = mem.data();
  try {
    quantize_checkpoint(*ck, QuantMix::q4_1, 1);
    FAIL() << "a weight past the f16 range was quantized";
  } catch (const Error& e) {
    EXPECT_NE(std::string(e.what()).find("L0.wq row 7"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("65504"), std::string::npos) << e.what();
  }
  // The block quantizer alone saturates its f16 fields: finite, clipped values.
  std::vector<float> x(32, -70000.0f);
  x[3] = 1.0f;
  std::vector<uint8_t> q(row_bytes(DType::q4_1, 32));
  quantize_blocks(DType::q4_1, x.data(), q.data(), 32);
  std::vector<float> back(32);
  dequantize_blocks(DType::q4_1, q.data(), back.data(), 32);
  for (float v : back) EXPECT_TRUE(std::isfinite(v)) << v;
  EXPECT_EQ(back[0], -65504.0f);
}

// ---- the GGUF writer, on the shared stories260K GGUF ------------------------

namespace {

std::string shared_dir() {
  const char* env = std::getenv("PACA_SHARED_DIR");
  return env != nullptr ? env : std::string(PACA_SHARED_DEFAULT);
}

}  // namespace

TEST(QuantizeGguf, WritesTheQuantizersBlocksAndKeepsTheMetadata) {
  const std::string in = shared_dir() + "/models/stories260K/stories260K.gguf";
  if (!std::filesystem::exists(in)) GTEST_SKIP() << in << " is absent";
  const std::string out = testing::TempDir() + "/s260-q4_k_m.gguf";
  const QuantizeReport r = write_quantized_gguf(in, out, QuantMix::q4_k_m, 2);
  EXPECT_GT(r.converted, 0);
  EXPECT_LT(r.bytes_out, r.bytes_in);
  EXPECT_FALSE(std::filesystem::exists(out + ".tmp"));
  auto src = open_checkpoint(in);
  auto dst = open_checkpoint(out);
  EXPECT_EQ(dst->gguf->get_int("general.file_type").value_or(-1), 15);
  EXPECT_EQ(dst->gguf->get_int("general.quantization_version").value_or(-1), 2);
  ASSERT_NE(dst->tokenizer, nullptr) << dst->tokenizer_note;
  EXPECT_EQ(dst->tokenizer->n_tokens(), src->tokenizer->n_tokens());
  EXPECT_EQ(dst->config.dim, src->config.dim);
  ASSERT_EQ(dst->tensors.size(), src->tensors.size());
  const bool tied = src->find("output") == nullptr;
  for (const auto& [name, s] : src->tensors) {
    const TensorView& d = dst->tensors.at(name);
    const DType want = quant_mix_type(QuantMix::q4_k_m, name, s.rows, s.cols, src->config.n_layers, tied);
    const DType stored = want == DType::f32 && s.rows <= 1 ? s.dtype : want;
    EXPECT_EQ(d.dtype, stored) << name;
    // every row holds the bytes the quantizer gives for the source row
    const size_t cols = static_cast<size_t>(s.cols);
    std::vector<float> row(cols);
    std::vector<uint8_t> expect(row_bytes(d.dtype, cols));
    for (int64_t rr = 0; rr < s.rows; rr += std::max<int64_t>(1, s.rows / 7)) {
      cpu::dequant_row(s.dtype, s.row(rr), row.data(), cols);
      if (d.dtype == DType::q8_0 || is_block_quant(d.dtype)) {
        quantize_blocks(d.dtype, row.data(), expect.data(), cols);
        EXPECT_EQ(std::memcmp(expect.data(), d.row(rr), expect.size()), 0) << name << " row " << rr;
      } else {
        std::vector<float> back(cols);
        cpu::dequant_row(d.dtype, d.row(rr), back.data(), cols);
        for (size_t c = 0; c < cols; ++c) {
          const float want_v = d.dtype == DType::f16 ? f16_to_f32(f32_to_f16(row[c])) : row[c];
          EXPECT_EQ(back[c], want_v) << name << " row " << rr << " col " << c;
        }
      }
    }
  }
}

TEST(QuantizeGguf, RefusesWhatItCannotWrite) {
  const std::string dir = testing::TempDir() + "/quantize-hf";
  TestModelSpec s = kq_spec();
  write_test_model(dir, s);
  EXPECT_THROW(write_quantized_gguf(dir, dir + "/out.gguf", QuantMix::q4_0, 1), Error);  // not a GGUF
  EXPECT_FALSE(std::filesystem::exists(dir + "/out.gguf"));
  EXPECT_THROW(write_quantized_gguf(dir + "/missing.gguf", dir + "/out.gguf", QuantMix::q4_0, 1), Error);
}
