// fp8_test.cpp - the E4M3 format: every code decodes to the value the
// format definition gives, and f32 -> E4M3 rounds to the nearest
// representable value (ties to the even code), saturating at +-448, checked
// against a brute-force search over all codes.
#include <gtest/gtest.h>

#include <cmath>
#include <random>

#include "util/fp8.h"

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
