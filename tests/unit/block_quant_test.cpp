// block_quant_test.cpp - GGUF's block types: blocks built by hand from the
// format's description decode to the values it defines; quantize ->
// dequantize stays within each type's error; the block dots equal the dot of
// the dequantized operands; every ISA's dots equal the scalar ones bit for
// bit, on quantized rows and on arbitrary bytes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <vector>

#include "backend/cpu/kernels.h"
#include "format/block_quant.h"
#include "util/error.h"
#include "util/half.h"

using namespace paca;

namespace {

const DType kTypes[] = {DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1, DType::q4_k, DType::q5_k, DType::q6_k};

void put16(uint8_t* p, float v) {
  const uint16_t h = f32_to_f16(v);
  std::memcpy(p, &h, 2);
}

std::vector<float> dequant(DType t, const std::vector<uint8_t>& b, size_t n) {
  std::vector<float> y(n);
  dequantize_blocks(t, b.data(), y.data(), n);
  return y;
}

std::vector<float> random_row(size_t n, uint32_t seed, float scale = 1.0f) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> nd(0.0f, scale);
  std::vector<float> x(n);
  for (float& v : x) v = nd(rng);
  // a few outliers, as real weights and activations have
  for (size_t i = 0; i < n; i += 97) x[i] *= 6.0f;
  return x;
}

// Arbitrary bytes with every f16 scale set to a finite value in [-2, 2].
std::vector<uint8_t> random_blocks(DType t, size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> b(row_bytes(t, n));
  for (uint8_t& v : b) v = static_cast<uint8_t>(rng());
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  const BlockShape bs = block_shape(t);
  for (size_t k = 0; k < n / bs.elems; ++k) {
    uint8_t* blk = b.data() + k * bs.bytes;
    if (t == DType::q6_k) {
      put16(blk + 208, u(rng));
    } else {
      put16(blk, u(rng));
      if (t == DType::q4_1 || t == DType::q5_1 || t == DType::q4_k || t == DType::q5_k) put16(blk + 2, u(rng));
    }
  }
  return b;
}

}  // namespace

// ---- the format, from its description --------------------------------------

TEST(BlockFormat, Q4_0AndQ4_1) {
  std::vector<uint8_t> b(20);
  put16(b.data(), 0.5f);
  for (int j = 0; j < 16; ++j) b[2 + j] = static_cast<uint8_t>(j | ((15 - j) << 4));
  std::vector<float> y = dequant(DType::q4_0, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.5f * static_cast<float>(j - 8)) << j;
    EXPECT_EQ(y[j + 16], 0.5f * static_cast<float>(7 - j)) << j;
  }
  put16(b.data(), 0.25f);
  put16(b.data() + 2, -1.5f);
  for (int j = 0; j < 16; ++j) b[4 + j] = static_cast<uint8_t>((j % 7) | (((j * 5) % 16) << 4));
  y = dequant(DType::q4_1, b, 32);
  for (int j = 0; j < 16; ++j) {
    EXPECT_EQ(y[j], 0.25f * static_cast<float>(j % 7) - 1.5f) << j;
    EXPECT_EQ(y[j + 16], 0.25f * static_cast<float>((j * 5) % 16) - 1.5f) << j;
  }
}

TEST(BlockFormat, Q5_0AndQ5_1) {
  // codes c[e] = (7 * e + 3) % 32: low nibbles in qs, bit 4 of element e in bit e of qh
  int c[32];
  uint32_t qh = 0;
  for (int e = 0; e < 32; ++e) {
    c[e] = (7 * e + 3) % 32;
    qh |= static_cast<uint32_t>(c[e] >> 4) << e;
  }
  std::vector<uint8_t> b(24);
  put16(b.data(), 2.0f);
  std::memcpy(b.data() + 2, &qh, 4);
  for (int j = 0; j < 16; ++j) b[6 + j] = static_cast<uint8_t>((c[j] & 15) | ((c[j + 16] & 15) << 4));
  std::vector<float> y = dequant(DType::q5_0, b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 2.0f * static_cast<float>(c[e] - 16)) << e;
  put16(b.data(), 0.125f);
  put16(b.data() + 2, 3.0f);
  std::memcpy(b.data() + 4, &qh, 4);
  for (int j = 0; j < 16; ++j) b[8 + j] = static_cast<uint8_t>((c[j] & 15) | ((c[j + 16] & 15) << 4));
  y = dequant(DType::q5_1, b, 32);
  for (int e = 0; e < 32; ++e) EXPECT_EQ(y[e], 0.125f * static_cast<float>(c[e]) + 3.0f) << e;
}

TEST(BlockFormat, Q4_KAndQ5_K) {
  // sub-block s: scale 5 + 7s (6 bits), min 60 - 3s; code of element e: (e * 11 + 1) % 32
  int sc[8], mn[8];
  for (int s = 0; s < 8; ++s) {
    sc[s] = 5 + 7 * s;
    mn[s] = 60 - 3 * s;
  }
  uint8_t scales[12];
  for (int s = 0; s < 4; ++s) {
    scales[s] = static_cast<uint8_t>(sc[s] | ((sc[s + 4] >> 4) << 6));
    scales[s + 4] = static_cast<uint8_t>(mn[s] | ((mn[s + 4] >> 4) << 6));
    scales[s + 8] = static_cast<uint8_t>((sc[s + 4] & 15) | ((mn[s + 4] & 15) << 4));
  }
  for (bool five : {false, true}) {
    const DType t = five ? DType::q5_k : DType::q4_k;
    int code[256];
    for (int e = 0; e < 256; ++e) code[e] = (e * 11 + 1) % (five ? 32 : 16);
    std::vector<uint8_t> b(176, 0);
    put16(b.data(), 0.5f);
    put16(b.data() + 2, 0.25f);
    std::memcpy(b.data() + 4, scales, 12);
    uint8_t* qs = b.data() + (five ? 48 : 16);
    for (int c = 0; c < 4; ++c)
      for (int l = 0; l < 32; ++l) {
        qs[32 * c + l] = static_cast<uint8_t>((code[64 * c + l] & 15) | ((code[64 * c + 32 + l] & 15) << 4));
        if (five)
          b[16 + l] |= static_cast<uint8_t>(((code[64 * c + l] >> 4) << (2 * c)) | ((code[64 * c + 32 + l] >> 4) << (2 * c + 1)));
      }
    std::vector<float> y = dequant(t, b, 256);
    for (int e = 0; e < 256; ++e) {
      const int s = e / 32;
      EXPECT_EQ(y[e], 0.5f * static_cast<float>(sc[s]) * static_cast<float>(code[e]) - 0.25f * static_cast<float>(mn[s]))
          << dtype_name(t) << " element " << e;
    }
  }
}

TEST(BlockFormat, Q6_K) {
  int code[256];
  int8_t scales[16];
  for (int e = 0; e < 256; ++e) code[e] = (e * 13 + 5) % 64;
  for (int s = 0; s < 16; ++s) scales[s] = static_cast<int8_t>(s * 17 - 128);
  std::vector<uint8_t> b(210, 0);
  for (int h = 0; h < 2; ++h)
    for (int l = 0; l < 32; ++l) {
      const int* c = code + 128 * h;
      b[64 * h + l] = static_cast<uint8_t>((c[l] & 15) | ((c[l + 64] & 15) << 4));
      b[64 * h + l + 32] = static_cast<uint8_t>((c[l + 32] & 15) | ((c[l + 96] & 15) << 4));
      b[128 + 32 * h + l] = static_cast<uint8_t>((c[l] >> 4) | ((c[l + 32] >> 4) << 2) | ((c[l + 64] >> 4) << 4) | ((c[l + 96] >> 4) << 6));
    }
  std::memcpy(b.data() + 192, scales, 16);
  put16(b.data() + 208, 0.0625f);
  std::vector<float> y = dequant(DType::q6_k, b, 256);
  for (int e = 0; e < 256; ++e)
    EXPECT_EQ(y[e], 0.0625f * static_cast<float>(scales[e / 16]) * static_cast<float>(code[e] - 32)) << e;
}

TEST(BlockFormat, RowsMustHoldWholeBlocks) {
  std::vector<uint8_t> b(1024);
  std::vector<float> y(300);
  EXPECT_THROW(dequantize_blocks(DType::q4_k, b.data(), y.data(), 300), Error);
  EXPECT_THROW(quantize_blocks(DType::q4_0, y.data(), b.data(), 40), Error);
  EXPECT_THROW(dequantize_blocks(DType::bf16, b.data(), y.data(), 32), Error);
}

// ---- quantizer -------------------------------------------------------------

// The RMS error a uniform quantizer of step D has on smooth data is
// D / sqrt(12); D per group is the group's range over (levels - 1). A type's
// relative RMS error must stay within 1.25x of that model (the K types also
// round their sub-block scales to 6 or 8 bits).
double noise_model(const std::vector<float>& x, size_t group, int levels, bool symmetric, bool min_le_zero) {
  double e2 = 0, x2 = 0;
  for (size_t g = 0; g < x.size(); g += group) {
    float mn = x[g], mx = x[g], amax = 0;
    for (size_t i = g; i < g + group; ++i) {
      mn = std::min(mn, x[i]);
      mx = std::max(mx, x[i]);
      amax = std::max(amax, std::fabs(x[i]));
    }
    if (min_le_zero) mn = std::min(mn, 0.0f);
    const double range = symmetric ? 2.0 * amax : static_cast<double>(mx) - mn;
    const double step = range / (levels - 1);
    e2 += static_cast<double>(group) * step * step / 12.0;
  }
  for (float v : x) x2 += static_cast<double>(v) * v;
  return std::sqrt(e2 / x2);
}

TEST(BlockQuantize, RoundTripError) {
  const struct {
    DType t;
    size_t group;
    int levels;
    bool symmetric, min_le_zero;
  } cases[] = {{DType::q8_0, 32, 255, true, false},  {DType::q4_0, 32, 16, true, false},
               {DType::q4_1, 32, 16, false, false},  {DType::q5_0, 32, 32, true, false},
               {DType::q5_1, 32, 32, false, false},  {DType::q4_k, 32, 16, false, true},
               {DType::q5_k, 32, 32, false, true},   {DType::q6_k, 16, 64, true, false}};
  for (const auto& c : cases) {
    const size_t n = 4096;
    std::vector<float> x = random_row(n, 7);
    std::vector<uint8_t> b(row_bytes(c.t, n));
    quantize_blocks(c.t, x.data(), b.data(), n);
    std::vector<float> y = dequant(c.t, b, n);
    double e2 = 0, x2 = 0;
    for (size_t i = 0; i < n; ++i) {
      e2 += (x[i] - y[i]) * static_cast<double>(x[i] - y[i]);
      x2 += static_cast<double>(x[i]) * x[i];
    }
    const double rel = std::sqrt(e2 / x2);
    const double model = noise_model(x, c.group, c.levels, c.symmetric, c.min_le_zero);
    EXPECT_LT(rel, 1.25 * model) << dtype_name(c.t);
    EXPECT_GT(rel, 0.0) << dtype_name(c.t) << ": a lossy type reproduced the row exactly";
    std::printf("%s: relative RMS error %.4f (uniform-noise model %.4f)\n", dtype_name(c.t), rel, model);
  }
}

TEST(BlockQuantize, ZerosConstantsAndNonFinite) {
  for (DType t : kTypes) {
    const size_t n = 512;
    std::vector<float> x(n, 0.0f);
    std::vector<uint8_t> b(row_bytes(t, n));
    quantize_blocks(t, x.data(), b.data(), n);
    for (float v : dequant(t, b, n)) EXPECT_EQ(v, 0.0f) << dtype_name(t);
    x.assign(n, 0.75f);
    x[3] = NAN;
    x[300] = INFINITY;
    quantize_blocks(t, x.data(), b.data(), n);
    std::vector<float> y = dequant(t, b, n);
    for (size_t i = 0; i < n; ++i) {
      ASSERT_TRUE(std::isfinite(y[i])) << dtype_name(t) << " " << i;
      if (i != 3 && i != 300) {
        EXPECT_NEAR(y[i], 0.75f, 0.75f * 0.1f) << dtype_name(t) << " " << i;
      }
    }
  }
}

// ---- kernels ---------------------------------------------------------------

namespace {

// The dot as the definition gives it: sum of dequantized weight times
// dequantized activation, in double.
double reference_dot(DType t, const uint8_t* w, const void* xq, size_t n, double* abs_sum) {
  std::vector<float> wf(n);
  dequantize_blocks(t, w, wf.data(), n);
  double s = 0, a = 0;
  for (size_t i = 0; i < n; ++i) {
    double xv;
    if (cpu::act_block(t) == 256) {
      const auto* blk = static_cast<const cpu::ActQ256*>(xq) + i / 256;
      xv = static_cast<double>(blk->d) * blk->q[i % 256];
    } else {
      const auto* blk = static_cast<const cpu::ActQ32*>(xq) + i / 32;
      xv = static_cast<double>(blk->d) * blk->q[i % 32];
    }
    s += wf[i] * xv;
    a += std::fabs(wf[i] * xv);
  }
  *abs_sum = a;
  return s;
}

void check_block_kernels(const cpu::Kernels& k) {
  for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1, DType::q4_k, DType::q5_k,
                  DType::q6_k}) {
    for (size_t nb : {1, 3, 16}) {
      const size_t n = nb * 256;
      for (int variant = 0; variant < 2; ++variant) {
        std::vector<uint8_t> w;
        if (variant == 0) {
          w.resize(row_bytes(t, n));
          std::vector<float> wf = random_row(n, static_cast<uint32_t>(nb * 31 + 1), 0.02f);
          quantize_blocks(t, wf.data(), w.data(), n);
        } else {
          w = random_blocks(t, n, static_cast<uint32_t>(nb * 7 + 3));
        }
        std::vector<float> x = random_row(n, static_cast<uint32_t>(nb + 100));
        std::vector<uint8_t> xq(cpu::act_row_bytes(t, n));
        cpu::quantize_activations(t, x.data(), xq.data(), n);
        double abs_sum = 0;
        const double want = reference_dot(t, w.data(), xq.data(), n, &abs_sum);
        const float got = cpu::block_dot(k, t)(w.data(), xq.data(), n);
        EXPECT_NEAR(got, want, 2e-6 * abs_sum + 1e-30) << k.isa << " " << dtype_name(t) << " n=" << n << " v=" << variant;
        const float ref = cpu::block_dot(cpu::scalar_kernels(), t)(w.data(), xq.data(), n);
        EXPECT_EQ(f32_to_bits(got), f32_to_bits(ref)) << k.isa << " vs scalar " << dtype_name(t) << " n=" << n;
      }
      // The batched form: 1..5 weight rows (pairs and an odd one) x 1..9
      // activation rows (every remainder of the groups of four), each
      // exactly the single dot of its pair of rows.
      const size_t rb = row_bytes(t, n), xb = cpu::act_row_bytes(t, n);
      std::vector<uint8_t> ws = random_blocks(t, 5 * n, static_cast<uint32_t>(nb * 13 + 5));
      for (size_t tokens = 1; tokens <= 9; ++tokens) {
        std::vector<uint8_t> xs(tokens * xb);
        for (size_t j = 0; j < tokens; ++j) {
          std::vector<float> x = random_row(n, static_cast<uint32_t>(1000 * nb + 17 * j + tokens));
          cpu::quantize_activations(t, x.data(), xs.data() + j * xb, n);
        }
        for (size_t rows = 1; rows <= 5; ++rows) {
          const size_t ldo = rows + 2;
          std::vector<float> out(tokens * ldo, -1.0f);
          cpu::block_dots(k, t)(ws.data(), rb, rows, xs.data(), xb, tokens, n, out.data(), ldo);
          for (size_t j = 0; j < tokens; ++j) {
            for (size_t r = 0; r < rows; ++r) {
              const float one = cpu::block_dot(cpu::scalar_kernels(), t)(ws.data() + r * rb, xs.data() + j * xb, n);
              EXPECT_EQ(f32_to_bits(out[j * ldo + r]), f32_to_bits(one)) << k.isa << " batched " << dtype_name(t)
                                                                         << " n=" << n << " rows=" << rows
                                                                         << " tokens=" << tokens << " at " << j << "," << r;
            }
            EXPECT_EQ(out[j * ldo + rows], -1.0f) << "wrote outside its output";
          }
        }
      }
    }
  }
}

}  // namespace

TEST(BlockKernels, ActivationQuantizer) {
  std::vector<float> x = random_row(512, 5);
  x[10] = -x[10] - 50.0f;  // the largest magnitude, negative
  std::vector<uint8_t> a(cpu::act_row_bytes(DType::q4_k, 512)), b(cpu::act_row_bytes(DType::q4_0, 512));
  cpu::quantize_activations(DType::q4_k, x.data(), a.data(), 512);
  cpu::quantize_activations(DType::q4_0, x.data(), b.data(), 512);
  const auto* k = reinterpret_cast<const cpu::ActQ256*>(a.data());
  const auto* l = reinterpret_cast<const cpu::ActQ32*>(b.data());
  EXPECT_EQ(k[0].q[10], -127);
  EXPECT_EQ(l[0].q[10], -127);
  for (int blk = 0; blk < 2; ++blk) {
    for (int i = 0; i < 256; ++i) {
      const float xi = x[256 * blk + i];
      EXPECT_LE(std::fabs(xi - k[blk].d * k[blk].q[i]), 0.5f * k[blk].d * 1.0001f) << i;
    }
    for (int s = 0; s < 16; ++s) {
      int sum = 0;
      for (int i = 0; i < 16; ++i) sum += k[blk].q[16 * s + i];
      EXPECT_EQ(k[blk].bsum[s], sum);
    }
  }
  int sum = 0;
  for (int8_t q : l[1].q) sum += q;
  EXPECT_EQ(l[1].s, l[1].d * static_cast<float>(sum));
  x[3] = NAN;
  cpu::quantize_activations(DType::q4_0, x.data(), b.data(), 512);
  EXPECT_TRUE(std::isnan(l[0].d));
}

// Every kernel set's quantize_acts writes exactly the definition's bytes
// (codes, d, s, bsum), on rows of many scales and on the blocks where
// rounding and the special cases matter: zero, -0, ties, subnormals, inf, NaN.
TEST(BlockKernels, EveryIsaQuantizesActivationsAsTheDefinition) {
  constexpr size_t n = 1024;
  std::vector<std::vector<float>> rows;
  for (int r = 0; r < 12; ++r) {
    std::vector<float> x = random_row(n, 40 + r);
    const float scale = std::ldexp(1.0f, 4 * r - 24);  // 2^-24 .. 2^20
    for (float& v : x) v *= scale;
    rows.push_back(x);
  }
  std::vector<float> x = random_row(n, 99);
  for (size_t i = 0; i < 32; ++i) x[i] = 0.0f;                        // a zero block
  for (size_t i = 32; i < 64; ++i) x[i] = -0.0f;                      // negative zeros
  for (size_t i = 64; i < 96; ++i) x[i] = static_cast<float>(i % 9) - 4.0f + 0.5f;  // halves: ties
  x[95] = 127.0f;                                                    // id = 1: x * id is x, ties stay ties
  for (size_t i = 96; i < 128; ++i) x[i] = 1e-40f * static_cast<float>(i - 100);  // subnormals (id capped)
  x[300] = INFINITY;
  x[600] = -INFINITY;
  x[900] = NAN;
  rows.push_back(x);
  for (const cpu::Kernels* k : cpu::available_kernels()) {
    for (DType t : {DType::q4_0, DType::q8_0, DType::q4_k, DType::q6_k}) {
      const size_t bytes = cpu::act_row_bytes(t, n);
      for (size_t r = 0; r < rows.size(); ++r) {
        std::vector<uint8_t> want(bytes, 0xAA), got(bytes, 0x55);
        cpu::quantize_activations(t, rows[r].data(), want.data(), n);
        k->quantize_acts(t, rows[r].data(), got.data(), n);
        for (size_t b = 0; b < bytes; ++b)
          ASSERT_EQ(want[b], got[b]) << k->isa << " " << dtype_name(t) << " row " << r << " byte " << b;
      }
    }
  }
}

TEST(BlockKernels, ScalarMatchesDefinition) { check_block_kernels(cpu::scalar_kernels()); }

TEST(BlockKernels, EveryIsaMatchesScalarBitForBit) {
  const std::vector<const cpu::Kernels*> all = cpu::available_kernels();
  if (all.size() < 2) GTEST_SKIP() << "this CPU runs only the scalar kernels";
  for (size_t i = 1; i < all.size(); ++i) {
    SCOPED_TRACE(all[i]->isa);
    check_block_kernels(*all[i]);
  }
}
