// fp8_test.cpp - the E4M3 format: every code decodes to the value the
// format definition gives, and f32 -> E4M3 rounds to the nearest
// representable value (ties to the even code), saturating at +-448, checked
// against a brute-force search over all codes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "model/checkpoint.h"
#include "model/quantize.h"
#include "util/error.h"
#include "util/fp8.h"
#include "util/half.h"

using namespace paca;

namespace {

// Value of a code straight from the definition (bias 7, 3 mantissa bits).
double definition(int code) {
  int s = code >> 7, e = (code >> 3) & 15, m = code & 7;
  if (e == 15 && m == 7) return NAN;
  double mag = e == 0 ? std::ldexp(m / 8.0, -6) : std::ldexp(1.0 + m / 8.0, e - 7);
  return s ? -mag : mag;
}

// Nearest finite code by exhaustive search; ties go to the even mantissa.
int brute_force(float f) {
  double x = f;
  if (x > 448) x = 448;
  if (x < -448) x = -448;
  int best = -1;
  double best_d = INFINITY;
  for (int c = 0; c < 256; ++c) {
    double v = definition(c);
    if (std::isnan(v)) continue;
    if (std::signbit(v) != std::signbit(x)) continue;  // keep the sign (and -0)
    double d = std::fabs(v - x);
    if (d < best_d || (d == best_d && (c & 1) == 0)) {
      best_d = d;
      best = c;
    }
  }
  return best;
}

}  // namespace

TEST(Fp8, DecodesEveryCode) {
  for (int c = 0; c < 256; ++c) {
    double want = definition(c);
    float got = e4m3_to_f32(static_cast<uint8_t>(c));
    if (std::isnan(want)) {
      EXPECT_TRUE(std::isnan(got)) << c;
    } else {
      EXPECT_EQ(static_cast<double>(got), want) << c;
    }
  }
  EXPECT_EQ(e4m3_to_f32(0x7e), 448.0f);
  EXPECT_EQ(e4m3_to_f32(0x08), std::ldexp(1.0f, -6));
  EXPECT_EQ(e4m3_to_f32(0x01), std::ldexp(1.0f, -9));
}

TEST(Fp8, EveryCodeRoundTrips) {
  for (int c = 0; c < 256; ++c) {
    float v = e4m3_to_f32(static_cast<uint8_t>(c));
    if (std::isnan(v)) continue;
    EXPECT_EQ(f32_to_e4m3(v), c) << c;
  }
}

TEST(Fp8, RoundsToNearestEvenAndSaturates) {
  // every midpoint between neighbouring codes, and points just beside it
  for (int c = 0; c < 0x7e; ++c) {
    for (int sign : {0, 0x80}) {
      float a = e4m3_to_f32(static_cast<uint8_t>(c | sign)), b = e4m3_to_f32(static_cast<uint8_t>((c + 1) | sign));
      float mid = (a + b) / 2;
      for (float x : {mid, std::nextafter(mid, 0.0f), std::nextafter(mid, 1000.0f * (sign ? -1 : 1))})
        EXPECT_EQ(f32_to_e4m3(x), brute_force(x)) << x;
    }
  }
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> e(-14.0f, 10.0f);
  for (int i = 0; i < 200000; ++i) {
    float x = std::ldexp(1.0f + static_cast<float>(rng() % 1024) / 1024.0f, static_cast<int>(e(rng))) * ((rng() & 1) ? -1.0f : 1.0f);
    ASSERT_EQ(f32_to_e4m3(x), brute_force(x)) << x;
  }
  EXPECT_EQ(f32_to_e4m3(1e6f), 0x7e);
  EXPECT_EQ(f32_to_e4m3(-1e6f), 0xfe);
  EXPECT_EQ(f32_to_e4m3(INFINITY), 0x7e);
  EXPECT_EQ(f32_to_e4m3(464.0f), 0x7e);  // would round to 480: saturates
  EXPECT_EQ(f32_to_e4m3(NAN) & 0x7f, 0x7f);
  EXPECT_EQ(f32_to_e4m3(-0.0f), 0x80);
  EXPECT_EQ(f32_to_e4m3(std::ldexp(1.0f, -10)), 0x00);  // half the smallest subnormal: tie to even 0
  EXPECT_EQ(f32_to_e4m3(std::ldexp(3.0f, -10)), 0x02);  // 1.5 x 2^-9: tie to even 2
}

// quantize_fp8 splits a tensor's rows over threads: every code and scale is
// what the one-row formula gives (scale = max|w| / 448, code = e4m3(w /
// scale)), and a non-finite weight is reported at the first row that holds
// one, whichever thread met it.
namespace {

struct OneMatrix {
  paca::Checkpoint ck;
  std::vector<uint16_t> bf;  // [rows, cols] bf16
};

void make_one_matrix(OneMatrix& m, int64_t rows, int64_t cols) {
  std::mt19937 rng(3);
  std::normal_distribution<float> d(0.0f, 0.02f);
  m.bf.resize(static_cast<size_t>(rows * cols));
  for (auto& b : m.bf) b = paca::f32_to_bf16(d(rng) * (1 + (rng() % 5)));
  m.ck.config.n_layers = 3;
  paca::TensorView& t = m.ck.tensors[paca::layer_tensor(1, "w1")];
  t.name = "L1.w1";
  t.dtype = paca::DType::bf16;
  t.rows = rows;
  t.cols = cols;
  t.data = reinterpret_cast<const uint8_t*>(m.bf.data());
}

}  // namespace

TEST(Fp8, QuantizeAtLoadOverThreadsGivesTheOneRowFormula) {
  const int64_t rows = 2050, cols = 1040;  // > 2 Mi elements: split over threads when there are several
  OneMatrix m;
  make_one_matrix(m, rows, cols);
  paca::quantize_fp8(m.ck, paca::Fp8Options{});
  const paca::TensorView& t = m.ck.tensors.at(paca::layer_tensor(1, "w1"));
  ASSERT_EQ(t.dtype, paca::DType::f8e4m3);
  ASSERT_NE(t.scales, nullptr);
  size_t bad_codes = 0, bad_scales = 0;
  for (int64_t r = 0; r < rows; ++r) {
    float mx = 0;
    for (int64_t c = 0; c < cols; ++c) mx = std::max(mx, std::fabs(paca::bf16_to_f32(m.bf[r * cols + c])));
    const float s = mx / paca::kE4M3Max;
    bad_scales += t.scales[r] != s;
    for (int64_t c = 0; c < cols; ++c)
      bad_codes += t.data[r * cols + c] != paca::f32_to_e4m3(paca::bf16_to_f32(m.bf[r * cols + c]) / s);
  }
  EXPECT_EQ(bad_codes, 0u);
  EXPECT_EQ(bad_scales, 0u);
}

TEST(Fp8, QuantizeAtLoadReportsTheFirstNonFiniteRow) {
  const int64_t rows = 2050, cols = 1040;
  OneMatrix m;
  make_one_matrix(m, rows, cols);
  m.bf[1900 * cols + 5] = 0x7f80;  // +inf, late in the last rows
  m.bf[700 * cols + 1000] = 0x7fc0;  // NaN, earlier
  try {
    paca::quantize_fp8(m.ck, paca::Fp8Options{});
    ADD_FAILURE() << "non-finite weights quantized";
  } catch (const paca::Error& e) {
    EXPECT_EQ(e.status(), paca::Status::format);
    EXPECT_NE(std::string(e.what()).find("L1.w1 row 700 holds a non-finite weight"), std::string::npos) << e.what();
  }
  EXPECT_EQ(m.ck.tensors.at(paca::layer_tensor(1, "w1")).dtype, paca::DType::bf16);  // left as it was
}
