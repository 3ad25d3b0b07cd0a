// kernels_test.cpp - every CPU dot kernel (scalar and AVX2) against a double
// reference on random data, at awkward lengths.
#include <gtest/gtest.h>

#include <cmath>
#include <algorithm>
#include <cstring>
#include <iterator>
#include <limits>
#include <random>

#include "backend/cpu/kernels.h"
#include "util/half.h"

using namespace paca;

namespace {

struct Row {
  std::vector<uint8_t> bytes;
  std::vector<double> values;  // the exact stored values
};

Row make_row(DType t, size_t n, std::mt19937& rng) {
  std::uniform_real_distribution<float> u(-2.0f, 2.0f);
  Row r;
  r.bytes.resize(row_bytes(t, n));
  r.values.resize(n);
  for (size_t i = 0; i < n; ++i) {
    float v = u(rng);
    if (t == DType::f32) {
      std::memcpy(r.bytes.data() + 4 * i, &v, 4);
      r.values[i] = v;
    } else if (t == DType::f16 || t == DType::bf16) {
      uint16_t h = t == DType::f16 ? f32_to_f16(v) : f32_to_bf16(v);
      std::memcpy(r.bytes.data() + 2 * i, &h, 2);
      r.values[i] = t == DType::f16 ? f16_to_f32(h) : bf16_to_f32(h);
    }
  }
  if (t == DType::q8_0) {
    for (size_t b = 0; b < n / 32; ++b) {
      uint16_t d = f32_to_f16(0.01f + 0.001f * static_cast<float>(b));
      uint8_t* p = r.bytes.data() + b * 34;
      std::memcpy(p, &d, 2);
      for (int i = 0; i < 32; ++i) {
        int8_t q = static_cast<int8_t>(static_cast<int>(rng() % 255) - 127);
        p[2 + i] = static_cast<uint8_t>(q);
        r.values[b * 32 + i] = static_cast<double>(f16_to_f32(d)) * q;
      }
    }
  }
  return r;
}

// `count` rows `ld` floats apart, each rearranged by gemm_pack (the padding
// between rows is kept).
std::vector<float> packed(const cpu::Kernels& k, const std::vector<float>& m, size_t ld, size_t count, size_t n) {
  std::vector<float> p = m;
  for (size_t r = 0; r < count; ++r) k.gemm_pack(m.data() + r * ld, p.data() + r * ld, n);
  return p;
}

// gemm_f32 (on packed rows), dot_rows_f32 and axpy_rows_f32 against double
// references; gemm's results must not depend on how rows and tokens are grouped.
void check_blocked(const cpu::Kernels& k) {
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t n : {5, 8, 37, 128, 771, 4133}) {
    const size_t rows = 11, tokens = 7, ldw = n + 3, ldx = n + 1, ldo = rows + 2;
    std::vector<float> w(rows * ldw), x(tokens * ldx), out(tokens * ldo, -1.0f), part(tokens * ldo, -2.0f);
    for (auto& v : w) v = u(rng);
    for (auto& v : x) v = u(rng);
    const std::vector<float> wp = packed(k, w, ldw, rows, n), xp = packed(k, x, ldx, tokens, n);
    k.gemm_f32(wp.data(), ldw, xp.data(), ldx, out.data(), ldo, rows, tokens, n);
    for (size_t t = 0; t < tokens; ++t)
      for (size_t r = 0; r < rows; ++r) {
        double ref = 0, mag = 0;
        for (size_t i = 0; i < n; ++i) {
          ref += static_cast<double>(w[r * ldw + i]) * x[t * ldx + i];
          mag += std::fabs(static_cast<double>(w[r * ldw + i]) * x[t * ldx + i]);
        }
        EXPECT_NEAR(out[t * ldo + r], ref, 1e-6 * mag + 1e-7) << k.isa << " gemm n=" << n;
      }
    // the same outputs computed in pieces (rows 0-2 | 3-10, tokens one at a time)
    for (size_t t = 0; t < tokens; ++t) {
      k.gemm_f32(wp.data(), ldw, xp.data() + t * ldx, ldx, part.data() + t * ldo, ldo, 3, 1, n);
      k.gemm_f32(wp.data() + 3 * ldw, ldw, xp.data() + t * ldx, ldx, part.data() + t * ldo + 3, ldo, rows - 3, 1, n);
    }
    for (size_t t = 0; t < tokens; ++t)
      for (size_t r = 0; r < rows; ++r) ASSERT_EQ(part[t * ldo + r], out[t * ldo + r]) << k.isa << " grouping, n=" << n;
    // attention helpers over rows `ldw` apart
    std::vector<float> dots(rows), a(rows), y(n, 0.5f);
    k.dot_rows_f32(x.data(), w.data(), ldw, rows, n, dots.data());
    for (size_t r = 0; r < rows; ++r) {
      double ref = 0, mag = 0;
      for (size_t i = 0; i < n; ++i) {
        ref += static_cast<double>(w[r * ldw + i]) * x[i];
        mag += std::fabs(static_cast<double>(w[r * ldw + i]) * x[i]);
      }
      EXPECT_NEAR(dots[r], ref, 1e-6 * mag + 1e-7) << k.isa << " dot_rows n=" << n;
      a[r] = u(rng);
    }
    k.axpy_rows_f32(a.data(), w.data(), ldw, rows, n, y.data());
    for (size_t i = 0; i < n; ++i) {
      double ref = 0.5;
      for (size_t r = 0; r < rows; ++r) ref += static_cast<double>(a[r]) * w[r * ldw + i];
      EXPECT_NEAR(y[i], ref, 1e-5) << k.isa << " axpy_rows n=" << n;
    }
  }
}

// The dot kernels on stored f32/f16/bf16 rows (decode) and the small-batch
// dots kernels give exactly gemm_f32's bits on the widened, packed rows
// (prefill, batches); dot_rows_f32 gives each score
// the same bits however many rows it is called with.
void check_same_bits(const cpu::Kernels& k) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (DType t : {DType::f32, DType::f16, DType::bf16}) {
    // 4133: quarters of 1032 floats, whole blocks and a scalar tail past them
    for (size_t n : {1, 5, 8, 13, 31, 32, 40, 64, 67, 96, 771, 4133}) {
      const size_t rows = 19, tokens = 5;
      std::vector<uint8_t> w;
      std::vector<float> wide(rows * n), x(tokens * n);
      for (size_t r = 0; r < rows; ++r) {
        Row row = make_row(t, n, rng);
        w.insert(w.end(), row.bytes.begin(), row.bytes.end());
        for (size_t i = 0; i < n; ++i) wide[r * n + i] = static_cast<float>(row.values[i]);
      }
      for (auto& v : x) v = u(rng);
      std::vector<float> b(tokens * rows, -2.0f);
      const std::vector<float> wp = packed(k, wide, n, rows, n), xp = packed(k, x, n, tokens, n);
      k.gemm_f32(wp.data(), n, xp.data(), n, b.data(), rows, rows, tokens, n);
      const size_t rb = row_bytes(t, n);
      for (size_t tk = 0; tk < tokens; ++tk)
        for (size_t r = 0; r < rows; ++r)
          ASSERT_EQ(cpu::dot_row(k, t, w.data() + r * rb, x.data() + tk * n, n), b[tk * rows + r])
              << k.isa << " dot vs gemm " << dtype_name(t) << " n=" << n << " row " << r << " token " << tk;
      // the small-batch kernel, every token count up to `tokens` (groups of 3, 2 and 1)
      const auto dots = t == DType::f32 ? k.dots_f32 : t == DType::f16 ? k.dots_f16 : k.dots_bf16;
      for (size_t count = 1; count <= tokens; ++count)
        for (size_t r = 0; r < rows; ++r) {
          std::vector<float> d(count * 3, -3.0f);
          dots(w.data() + r * rb, x.data(), n, count, n, d.data(), 3);
          for (size_t tk = 0; tk < count; ++tk)
            ASSERT_EQ(d[tk * 3], b[tk * rows + r])
                << k.isa << " dots vs gemm " << dtype_name(t) << " n=" << n << " tokens " << count << " row " << r;
          for (size_t j = 0; j < d.size(); ++j) {
            if (j % 3 != 0) {
              ASSERT_EQ(d[j], -3.0f) << k.isa << " dots wrote outside its outputs";
            }
          }
        }
    }
  }
  for (size_t n : {8, 64, 70}) {
    const size_t count = 21, stride = n + 5;
    std::vector<float> rows(count * stride), x(n), all(count), one(count);
    for (auto& v : rows) v = u(rng);
    for (auto& v : x) v = u(rng);
    k.dot_rows_f32(x.data(), rows.data(), stride, count, n, all.data());
    for (size_t c = 1; c <= count; ++c) {
      k.dot_rows_f32(x.data(), rows.data(), stride, c, n, one.data());
      for (size_t p = 0; p < c; ++p) ASSERT_EQ(one[p], all[p]) << k.isa << " dot_rows count " << c << " row " << p;
    }
  }
}

// softmax_f32 against a double reference, including one element, a large
// spread (exp underflows to 0) and equal values.
void check_softmax(const cpu::Kernels& k) {
  std::mt19937 rng(5);
  std::uniform_real_distribution<float> u(-30.0f, 30.0f);
  for (size_t n : {1, 3, 8, 9, 16, 100, 1027}) {
    for (int kind = 0; kind < 3; ++kind) {
      std::vector<float> x(n);
      for (size_t i = 0; i < n; ++i) x[i] = kind == 0 ? u(rng) : kind == 1 ? (i % 2 == 0 ? -5000.0f : 3.0f) : 0.25f;
      const float scale = kind == 0 ? 0.125f : 1.0f;
      std::vector<double> ref(n);
      double mx = -1e300, sum = 0;
      for (float v : x) mx = std::max(mx, static_cast<double>(v) * scale);
      for (size_t i = 0; i < n; ++i) sum += (ref[i] = std::exp(static_cast<double>(x[i]) * scale - mx));
      k.softmax_f32(x.data(), n, scale);
      double total = 0;
      for (size_t i = 0; i < n; ++i) {
        EXPECT_NEAR(x[i], ref[i] / sum, 2e-6 * ref[i] / sum + 1e-9) << k.isa << " softmax n=" << n << " kind " << kind;
        total += x[i];
      }
      EXPECT_NEAR(total, 1.0, 1e-5) << k.isa << " n=" << n;
    }
  }
}

// swiglu_f32 against g * sigmoid(g) * up in double, over the range where
// exp under- and overflows, signed zeros and a NaN, in place too.
void check_swiglu(const cpu::Kernels& k) {
  std::mt19937 rng(9);
  std::uniform_real_distribution<float> u(-30.0f, 30.0f), v(-2.0f, 2.0f);
  for (size_t n : {1, 3, 8, 9, 100, 1027}) {
    std::vector<float> g(n), up(n), out(n);
    for (size_t i = 0; i < n; ++i) {
      g[i] = u(rng);
      up[i] = v(rng);
    }
    const float special[] = {-100.0f, 100.0f, 0.0f, -0.0f, -87.5f, 88.5f, 1e-30f};
    for (size_t i = 0; i < n && i < std::size(special); ++i) g[n - 1 - i] = special[i];
    k.swiglu_f32(g.data(), up.data(), out.data(), n);
    for (size_t i = 0; i < n; ++i) {
      const double gd = g[i], ref = gd / (1.0 + std::exp(-gd)) * up[i];
      EXPECT_NEAR(out[i], ref, 4e-6 * std::fabs(ref) + 1e-30) << k.isa << " swiglu n=" << n << " g=" << g[i];
    }
    std::vector<float> in_place = g;
    k.swiglu_f32(in_place.data(), up.data(), in_place.data(), n);
    EXPECT_EQ(0, std::memcmp(in_place.data(), out.data(), n * sizeof(float))) << k.isa << " in place, n=" << n;
  }
  const float nan = std::numeric_limits<float>::quiet_NaN(), one = 1.0f;
  float o = 0;
  k.swiglu_f32(&nan, &one, &o, 1);
  EXPECT_TRUE(std::isnan(o)) << k.isa << " a NaN gate gives NaN";
}

// The many-query attention kernels give each query exactly the bits of its
// own single-query call: 1..9 queries (every remainder of the tiles), 1..17
// rows, widths with and without a tail, per-query row counts for the V side.
void check_rows_many(const cpu::Kernels& k) {
  std::mt19937 rng(11);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (size_t n : {8, 20, 64, 72, 100}) {
    const size_t stride = n + 3;
    for (size_t count : {1, 4, 5, 16, 17}) {
      std::vector<float> rows(count * stride);
      for (float& v : rows) v = u(rng);
      for (size_t nq = 1; nq <= 9; ++nq) {
        std::vector<std::vector<float>> x(nq, std::vector<float>(n)), a(nq, std::vector<float>(count));
        std::vector<std::vector<float>> got(nq, std::vector<float>(count + 1, -7.0f)), y(nq, std::vector<float>(n));
        std::vector<const float*> xs, as;
        std::vector<float*> outs, ys;
        std::vector<size_t> counts;
        for (size_t q = 0; q < nq; ++q) {
          for (float& v : x[q]) v = u(rng);
          for (float& v : a[q]) v = u(rng);
          for (float& v : y[q]) v = u(rng);
          xs.push_back(x[q].data());
          outs.push_back(got[q].data());
          as.push_back(a[q].data());
          ys.push_back(y[q].data());
          counts.push_back(1 + (q * 7 + count) % count);
        }
        std::vector<std::vector<float>> want_y = y;
        k.dot_rows_many_f32(xs.data(), outs.data(), nq, rows.data(), stride, count, n);
        k.axpy_rows_many_f32(as.data(), ys.data(), counts.data(), nq, rows.data(), stride, n);
        for (size_t q = 0; q < nq; ++q) {
          std::vector<float> want(count);
          k.dot_rows_f32(x[q].data(), rows.data(), stride, count, n, want.data());
          EXPECT_EQ(0, std::memcmp(want.data(), got[q].data(), count * sizeof(float)))
              << k.isa << " scores n=" << n << " count=" << count << " nq=" << nq << " q=" << q;
          EXPECT_EQ(got[q][count], -7.0f) << "wrote past its count";
          k.axpy_rows_f32(a[q].data(), rows.data(), stride, counts[q], n, want_y[q].data());
          EXPECT_EQ(0, std::memcmp(want_y[q].data(), y[q].data(), n * sizeof(float)))
              << k.isa << " values n=" << n << " count=" << counts[q] << " nq=" << nq << " q=" << q;
        }
      }
    }
  }
}

void check_kernels(const cpu::Kernels& k) {
  std::mt19937 rng(42);
  std::uniform_real_distribution<float> u(-1.0f, 1.0f);
  for (DType t : {DType::f32, DType::f16, DType::bf16, DType::q8_0}) {
    for (size_t n : {1, 7, 8, 31, 32, 33, 64, 100, 1000, 4096, 4099}) {
      if (t == DType::q8_0 && n % 32 != 0) continue;
      Row r = make_row(t, n, rng);
      std::vector<float> x(n);
      double ref = 0, mag = 0;
      for (size_t i = 0; i < n; ++i) {
        x[i] = u(rng);
        ref += r.values[i] * x[i];
        mag += std::fabs(r.values[i] * x[i]);
      }
      float got = cpu::dot_row(k, t, r.bytes.data(), x.data(), n);
      EXPECT_NEAR(got, ref, 1e-6 * mag + 1e-7) << k.isa << " " << dtype_name(t) << " n=" << n;
      // dequant_row gives the stored values
      std::vector<float> dq(n);
      cpu::dequant_row(t, r.bytes.data(), dq.data(), n);
      for (size_t i = 0; i < n; ++i) ASSERT_FLOAT_EQ(dq[i], static_cast<float>(r.values[i])) << dtype_name(t);
      if (t == DType::f16 || t == DType::bf16) {  // the widening kernels are exact
        std::vector<float> w(n);
        (t == DType::f16 ? k.widen_f16 : k.widen_bf16)(r.bytes.data(), w.data(), n);
        for (size_t i = 0; i < n; ++i) ASSERT_EQ(w[i], static_cast<float>(r.values[i])) << k.isa << " widen " << dtype_name(t);
      }
    }
  }
  check_blocked(k);
  check_same_bits(k);
  check_softmax(k);
  check_swiglu(k);
  check_rows_many(k);
}

}  // namespace

TEST(Kernels, ScalarMatchesReference) { check_kernels(cpu::scalar_kernels()); }

// Every wider set this CPU runs (avx2, avx512), each on its own.
TEST(Kernels, EveryIsaMatchesReference) {
  const std::vector<const cpu::Kernels*> all = cpu::available_kernels();
  if (all.size() < 2) GTEST_SKIP() << "this CPU runs only the scalar kernels";
  for (size_t i = 1; i < all.size(); ++i) {
    SCOPED_TRACE(all[i]->isa);
    check_kernels(*all[i]);
  }
}
