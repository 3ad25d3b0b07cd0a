// sampler_test.cpp - the sampler chain (core/sample/sampler.h), stage by stage
// against hand-computed values, then as a whole: determinism, logprobs, and
// chi-square goodness of fit of many draws against the intended truncated,
// tempered softmax. Also the stop conditions and the stop-string matcher.
#include <gtest/gtest.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <limits>
#include <numeric>
#include <string>
#include <vector>

#include "util/fast_exp.h"
#include "sample/rng.h"
#include "sample/sampler.h"
#include "sample/stop.h"
#include "util/error.h"

using namespace paca;

namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
constexpr float kNaN = std::numeric_limits<float>::quiet_NaN();

// Deterministic pseudo-random logits, the same on every platform (no <random>
// distributions, whose output is implementation-defined).
std::vector<float> test_logits(size_t n, uint64_t seed, float scale = 4.0f) {
  std::vector<float> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<float>((sampler_uniform(seed, i) * 2.0 - 1.0) * scale);
  return v;
}

std::vector<int32_t> ids_of(const std::vector<Candidate>& c) {
  std::vector<int32_t> r;
  for (const Candidate& x : c) r.push_back(x.id);
  return r;
}

// The reference top-k: a full stable sort.
std::vector<int32_t> reference_top_k(const std::vector<float>& l, size_t k) {
  std::vector<int32_t> idx;
  for (size_t i = 0; i < l.size(); ++i)
    if (l[i] > -kInf) idx.push_back(static_cast<int32_t>(i));
  std::stable_sort(idx.begin(), idx.end(), [&](int32_t a, int32_t b) { return l[a] > l[b]; });
  if (idx.size() > k) idx.resize(k);
  return idx;
}

// The mass of a weight w in a list of n (sampler.h, "Weights"), written out.
uint64_t reference_mass(float w, size_t n) {
  const int log2n = n <= 1 ? 0 : static_cast<int>(std::ceil(std::log2(static_cast<double>(n))));
  return static_cast<uint64_t>(std::floor(static_cast<double>(w) * std::ldexp(1.0, std::min(52, 62 - log2n))));
}

// How many of the best (sorted) the nucleus holds by the definition: the
// shortest run whose mass reaches ceil(top_p * the vocabulary's mass).
size_t reference_nucleus(const std::vector<Candidate>& sorted, size_t n, float top_p) {
  uint64_t total = 0;
  for (const Candidate& c : sorted) total += reference_mass(fast_exp(c.logit - sorted[0].logit), n);
  const double t = static_cast<double>(top_p) * static_cast<double>(total);
  auto target = static_cast<uint64_t>(std::ceil(t));
  target = std::max<uint64_t>(1, std::min(target, total));
  size_t keep = 0;
  for (uint64_t cum = 0; keep < sorted.size() && cum < target; ++keep)
    cum += reference_mass(fast_exp(sorted[keep].logit - sorted[0].logit), n);
  return keep;
}

// The chain without top-k (no bias, no penalties) the slow, obvious way: sort
// the vocabulary, cut the nucleus and the min-p floor, then walk the kept
// tokens in id order to the first whose running mass passes floor(u * total).
int32_t reference_draw(const std::vector<float>& l, float temperature, float top_p, float min_p, double u) {
  std::vector<Candidate> sorted;
  for (int32_t id : reference_top_k(l, l.size())) sorted.push_back({id, l[static_cast<size_t>(id)]});
  if (sorted.empty()) return -1;
  const float m = sorted[0].logit;
  const size_t keep = top_p < 1.0f ? reference_nucleus(sorted, l.size(), top_p) : sorted.size();
  const float floor = min_p_floor(m, min_p);
  std::vector<Candidate> set;
  for (size_t i = 0; i < keep; ++i)
    if (sorted[i].logit >= floor) set.push_back(sorted[i]);
  std::sort(set.begin(), set.end(), [](const Candidate& a, const Candidate& b) { return a.id < b.id; });
  const auto inv_t = static_cast<float>(std::min(1.0 / static_cast<double>(temperature), 1e30));
  std::vector<uint64_t> q;
  uint64_t total = 0;
  for (const Candidate& c : set) total += q.emplace_back(reference_mass(fast_exp((c.logit - m) * inv_t), l.size()));
  const uint64_t target = std::min(total - 1, static_cast<uint64_t>(u * static_cast<double>(total)));
  uint64_t cum = 0;
  for (size_t i = 0; i < set.size(); ++i)
    if ((cum += q[i]) > target) return set[i].id;
  return -1;
}

// Rounds some logits to a grid of 1/grid (ties) and makes others -inf or
// NaN: with v uniform per logit, v < cut[0] a tie, then -inf below cut[1],
// NaN below cut[2]. At least one logit stays finite.
void add_ties_and_holes(std::vector<float>& l, uint64_t seed, float grid, std::array<double, 3> cut) {
  for (size_t i = 0; i < l.size(); ++i) {
    const double v = sampler_uniform(seed, i);
    if (v < cut[0]) l[i] = std::round(l[i] * grid) / grid;
    else if (v < cut[1]) l[i] = -kInf;
    else if (v < cut[2]) l[i] = kNaN;
  }
  if (std::none_of(l.begin(), l.end(), [](float x) { return x > -kInf; })) l[0] = 0.0f;
}

SamplerParams with(float temperature, int32_t top_k = 0, float top_p = 1.0f, float min_p = 0.0f) {
  SamplerParams p;
  p.temperature = temperature;
  p.top_k = top_k;
  p.top_p = top_p;
  p.min_p = min_p;
  return p;
}

}  // namespace

// ---- random numbers --------------------------------------------------------

TEST(SamplerRng, PhiloxMatchesRandom123KnownAnswers) {
  EXPECT_EQ(philox4x32_10({0, 0, 0, 0}, {0, 0}), (Philox4x32{0x6627e8d5, 0xe169c58d, 0xbc57ac4c, 0x9b00dbd8}));
  EXPECT_EQ(philox4x32_10({0xffffffff, 0xffffffff, 0xffffffff, 0xffffffff}, {0xffffffff, 0xffffffff}),
            (Philox4x32{0x408f276d, 0x41c83b0e, 0xa20bc7c6, 0x6d5451fd}));
  EXPECT_EQ(philox4x32_10({0x243f6a88, 0x85a308d3, 0x13198a2e, 0x03707344}, {0xa4093822, 0x299f31d0}),
            (Philox4x32{0xd16cfe09, 0x94fdcceb, 0x5001e420, 0x24126ea1}));
}

TEST(SamplerRng, UniformDependsOnlyOnSeedAndPosition) {
  EXPECT_EQ(sampler_uniform(42, 7), sampler_uniform(42, 7));
  EXPECT_NE(sampler_uniform(42, 7), sampler_uniform(42, 8));
  EXPECT_NE(sampler_uniform(42, 7), sampler_uniform(43, 7));
  EXPECT_NE(sampler_uniform(42, 7, 0), sampler_uniform(42, 7, 1));
  EXPECT_NE(sampler_uniform(1, uint64_t{1} << 32), sampler_uniform(1, 0));  // the high half of the position counts
  // 20 equal bins over 200000 positions: chi-square with 19 degrees of
  // freedom; the critical value at significance 0.001 is 43.82.
  std::vector<double> bins(20, 0);
  const int n = 200000;
  for (int i = 0; i < n; ++i) {
    const double u = sampler_uniform(2024, static_cast<uint64_t>(i));
    ASSERT_GE(u, 0.0);
    ASSERT_LT(u, 1.0);
    bins[static_cast<size_t>(u * 20)] += 1;
  }
  double chi2 = 0;
  for (double b : bins) chi2 += (b - n / 20.0) * (b - n / 20.0) / (n / 20.0);
  EXPECT_LT(chi2, 43.82);
}

// ---- stages ----------------------------------------------------------------

TEST(SamplerStages, ArgmaxTiesNanAndInfinities) {
  EXPECT_EQ(argmax_logit(std::vector<float>{1, 3, 3, 2}), 1);  // tie: lowest id
  EXPECT_EQ(argmax_logit(std::vector<float>{0, 0, 0, 0}), 0);  // all equal
  EXPECT_EQ(argmax_logit(std::vector<float>{kNaN, -kInf, -5, kNaN}), 2);
  EXPECT_EQ(argmax_logit(std::vector<float>{-kInf, -kInf}), -1);
  EXPECT_EQ(argmax_logit(std::vector<float>{}), -1);
  // lengths around the 16-wide blocks, maximum in the tail and at a block edge
  for (size_t n : {1u, 15u, 16u, 17u, 33u, 1000u}) {
    std::vector<float> l = test_logits(n, n);
    for (size_t at : {size_t{0}, n / 2, n - 1}) {
      std::vector<float> m = l;
      m[at] = 100;
      EXPECT_EQ(argmax_logit(m), static_cast<int32_t>(at)) << n << " " << at;
      m.back() = 100;  // a later tie loses
      EXPECT_EQ(argmax_logit(m), static_cast<int32_t>(at)) << n << " " << at;
    }
  }
}

TEST(SamplerStages, TopKHandComputed) {
  std::vector<Candidate> c;
  const std::vector<float> l{0.5f, 2.0f, -kInf, 2.0f, 1.0f, kNaN, 3.0f};
  select_top_k(l, 3, c);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{6, 1, 3}));  // 2.0 tie: lower id first
  select_top_k(l, 2, c);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{6, 1}));
  select_top_k(l, 1, c);
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{6}));
  select_top_k(l, 100, c);  // vocabulary smaller than k: all finite ones, sorted
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{6, 1, 3, 4, 0}));
  select_top_k(std::vector<float>(5, 1.0f), 3, c);  // all equal: the lowest ids
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{0, 1, 2}));
  select_top_k(std::vector<float>{-kInf, -kInf, 7.0f}, 2, c);  // fewer finite than k
  EXPECT_EQ(ids_of(c), (std::vector<int32_t>{2}));
  select_top_k(l, 0, c);
  EXPECT_TRUE(c.empty());
}

TEST(SamplerStages, TopKMatchesAFullSort) {
  std::vector<Candidate> c;
  for (size_t n : {17u, 1000u, 32000u}) {
    std::vector<float> l = test_logits(n, 3 * n);
    for (size_t i = 0; i < n; i += 7) l[i] = std::round(l[i]);  // many ties
    for (size_t i = 1; i < n; i += 97) l[i] = -kInf;
    // ascending logits push every element through the buffer: the worst case
    std::vector<float> asc(n);
    for (size_t i = 0; i < n; ++i) asc[i] = static_cast<float>(i % 50);
    for (size_t k : {size_t{1}, size_t{2}, size_t{40}, size_t{100}, n - 1, n, n + 5}) {
      select_top_k(l, k, c);
      EXPECT_EQ(ids_of(c), reference_top_k(l, k)) << n << " " << k;
      select_top_k(asc, k, c);
      EXPECT_EQ(ids_of(c), reference_top_k(asc, k)) << n << " " << k;
    }
  }
}

TEST(SamplerStages, PenaltiesHandComputed) {
  std::vector<float> l{2.0f, -2.0f, 1.0f, 0.5f, -kInf};
  std::vector<int32_t> scratch;
  // token 0 once, 1 twice, 3 once, 4 once; 7 and -1 are outside the vocabulary
  const std::vector<int32_t> window{1, 0, 7, 1, 3, -1, 4};
  apply_penalties(l, window, 2.0f, 0.5f, 0.25f, scratch);
  EXPECT_FLOAT_EQ(l[0], 2.0f / 2 - (1 * 0.5f + 0.25f));   // 0.25
  EXPECT_FLOAT_EQ(l[1], -2.0f * 2 - (2 * 0.5f + 0.25f));  // -5.25
  EXPECT_FLOAT_EQ(l[2], 1.0f);                            // not in the window
  EXPECT_FLOAT_EQ(l[3], 0.5f / 2 - (1 * 0.5f + 0.25f));   // -0.5
  EXPECT_EQ(l[4], -kInf);                                 // -inf stays -inf
  // penalty 1 and zero frequency/presence change nothing
  std::vector<float> m{2.0f, -2.0f};
  apply_penalties(m, std::vector<int32_t>{0, 1, 1}, 1.0f, 0.0f, 0.0f, scratch);
  EXPECT_EQ(m, (std::vector<float>{2.0f, -2.0f}));
}

TEST(SamplerStages, TopPHandComputed) {
  // probabilities 0.5, 0.3, 0.2
  const std::vector<Candidate> c{{4, std::log(0.5f)}, {0, std::log(0.3f)}, {9, std::log(0.2f)}};
  EXPECT_EQ(top_p_keep(c, 0.45f), 1u);
  EXPECT_EQ(top_p_keep(c, 0.7f), 2u);
  EXPECT_EQ(top_p_keep(c, 0.85f), 3u);
  EXPECT_EQ(top_p_keep(c, 1.0f), 3u);
  EXPECT_EQ(top_p_keep(c, 1e-6f), 1u);  // single-token nucleus
  // all equal (0.25 each): 0.6 needs three
  const std::vector<Candidate> eq{{0, 1.0f}, {1, 1.0f}, {2, 1.0f}, {3, 1.0f}};
  EXPECT_EQ(top_p_keep(eq, 0.6f), 3u);
  EXPECT_EQ(top_p_keep(eq, 0.2f), 1u);
  // one dominant token: a nucleus of one even at p = 0.99
  const std::vector<Candidate> dom{{5, 30.0f}, {1, 0.0f}, {2, 0.0f}};
  EXPECT_EQ(top_p_keep(dom, 0.99f), 1u);
}

TEST(SamplerStages, MinPFloor) {
  const std::vector<float> l{std::log(0.5f), std::log(0.3f), std::log(0.2f)};
  auto kept = [&](float min_p) {
    const float f = min_p_floor(l[0], min_p);
    return std::count_if(l.begin(), l.end(), [&](float x) { return x >= f; });
  };
  EXPECT_EQ(kept(0.0f), 3);
  EXPECT_EQ(min_p_floor(l[0], 0.0f), -kInf);
  EXPECT_EQ(kept(0.5f), 2);   // keeps p >= 0.25
  EXPECT_EQ(kept(0.39f), 3);  // keeps p >= 0.195
  EXPECT_EQ(kept(0.7f), 1);   // keeps p >= 0.35
  EXPECT_EQ(min_p_floor(1.0f, 1.0f), 1.0f);  // min_p 1 keeps the (tied) maxima
  // the floor is exact: the smallest float at or above max + ln(min_p)
  const float f = min_p_floor(3.0f, 0.1f);
  EXPECT_GE(static_cast<double>(f), 3.0 + std::log(0.1));
  EXPECT_LT(static_cast<double>(std::nextafter(f, -kInf)), 3.0 + std::log(0.1));
}

TEST(SamplerStages, DrawHandComputed) {
  SampleScratch s;
  // index order: weights 1 and 1/3 at T = 1 (probabilities 0.75, 0.25); at
  // T = 0.5: 0.9, 0.1; at T = 2: 1 / (1 + 1/sqrt 3) = 0.634, 0.366
  const std::vector<float> l{std::log(3.0f), 0.0f};
  const float m = l[0];
  EXPECT_EQ(draw_index(l, m, 1.0f, -kInf, 0.0, s), 0);
  EXPECT_EQ(draw_index(l, m, 1.0f, -kInf, 0.74, s), 0);
  EXPECT_EQ(draw_index(l, m, 1.0f, -kInf, 0.76, s), 1);
  EXPECT_EQ(draw_index(l, m, 0.5f, -kInf, 0.89, s), 0);
  EXPECT_EQ(draw_index(l, m, 0.5f, -kInf, 0.91, s), 1);
  EXPECT_EQ(draw_index(l, m, 2.0f, -kInf, 0.63, s), 0);
  EXPECT_EQ(draw_index(l, m, 2.0f, -kInf, 0.64, s), 1);
  EXPECT_EQ(draw_index(l, m, 1.0f, -kInf, std::nextafter(1.0, 0.0), s), 1);
  // a temperature so small that every other weight underflows: the maximum gets everything
  EXPECT_EQ(draw_index(l, m, 1e-45f, -kInf, 0.999, s), 0);
  // a floor (min-p) removes what is below it
  EXPECT_EQ(draw_index(l, m, 1.0f, 0.5f, 0.999, s), 0);
  // zero weights (underflow, -inf, NaN) are never drawn
  const std::vector<float> z{-kInf, 0.0f, kNaN, -1e30f, -kInf};
  for (double u : {0.0, 0.5, std::nextafter(1.0, 0.0)}) EXPECT_EQ(draw_index(z, 0.0f, 1.0f, -kInf, u, s), 1);
  const std::vector<float> none{-kInf, kNaN};
  EXPECT_EQ(draw_index(none, 0.0f, 1.0f, -kInf, 0.5, s), -1);
  // across many 256-wide blocks: u walks the tokens in order
  const std::vector<float> flat(1000, 0.0f);
  for (int i : {0, 1, 255, 256, 257, 700, 999})
    EXPECT_EQ(draw_index(flat, 0.0f, 1.0f, -kInf, (i + 0.5) / 1000.0, s), i);
}

TEST(SamplerStages, FastExpIsAccurate) {
  double worst = 0;
  for (int i = 0; i <= 1750000; ++i) {
    const float x = -87.0f + static_cast<float>(i) * 1e-4f;  // [-87, 88]
    const double want = std::exp(static_cast<double>(x));
    worst = std::max(worst, std::abs(fast_exp(x) - want) / want);
  }
  EXPECT_LT(worst, 3.6e-7);  // 3 ulp
  EXPECT_EQ(fast_exp(0.0f), 1.0f);
  EXPECT_EQ(fast_exp(-kInf), 0.0f);
  EXPECT_EQ(fast_exp(kNaN), 0.0f);
  EXPECT_EQ(fast_exp(-100.0f), 0.0f);
}

TEST(SamplerStages, TopPCutMatchesTheSortedDefinition) {
  SampleScratch scratch;
  TopPCut cut;
  std::vector<Candidate> sorted;
  int cases = 0, with_ties = 0;
  for (size_t n : {1u, 17u, 1000u, 32000u}) {
    for (float scale : {0.0f, 0.05f, 3.0f, 30.0f}) {  // flat, nearly flat, model-like, peaky
      std::vector<float> l = test_logits(n, n + static_cast<size_t>(scale * 10), scale);
      for (size_t i = 0; i < n; i += 5) l[i] = std::round(l[i] * 4) / 4;  // ties
      for (size_t i = 3; i < n; i += 101) l[i] = -kInf;
      for (float p : {0.01f, 0.3004f, 0.9f, 0.999f}) {
        ++cases;
        const float m = *std::max_element(l.begin(), l.end());
        top_p_cut(l, m, p, cut, scratch);
        with_ties += !cut.tied_out.empty();
        std::vector<int32_t> got;
        for (size_t i = 0; i < n; ++i)
          if (l[i] > cut.threshold ||
              (l[i] == cut.threshold &&
               std::find(cut.tied_out.begin(), cut.tied_out.end(), static_cast<int32_t>(i)) == cut.tied_out.end()))
            got.push_back(static_cast<int32_t>(i));
        select_top_k(l, n, sorted);
        // the nucleus is exactly the best tokens the definition says (integer
        // masses: no rounding decides the boundary)
        const size_t want = reference_nucleus(sorted, n, p);
        std::vector<int32_t> best = ids_of(sorted);
        best.resize(want);
        std::sort(best.begin(), best.end());
        EXPECT_EQ(got, best) << n << " " << scale << " " << p;
      }
    }
  }
  EXPECT_EQ(cases, 64);
  EXPECT_GT(with_ties, 5);  // the ties at the cut were exercised
}

// ---- the chain -------------------------------------------------------------

TEST(Sampler, ValidatesEveryField) {
  auto message = [](SamplerParams p) -> std::string {
    try {
      Sampler s(p, 10);
    } catch (const Error& e) {
      EXPECT_EQ(e.status(), Status::invalid_argument);
      return e.what();
    }
    return "";
  };
  SamplerParams p;
  EXPECT_EQ(message(p), "");
  p = {}; p.temperature = -0.1f; EXPECT_NE(message(p).find("temperature"), std::string::npos);
  p = {}; p.temperature = kNaN; EXPECT_NE(message(p).find("temperature"), std::string::npos);
  p = {}; p.temperature = kInf; EXPECT_NE(message(p).find("temperature"), std::string::npos);
  p = {}; p.top_k = -1; EXPECT_NE(message(p).find("top_k"), std::string::npos);
  p = {}; p.top_p = 0.0f; EXPECT_NE(message(p).find("top_p"), std::string::npos);
  p = {}; p.top_p = 1.5f; EXPECT_NE(message(p).find("top_p"), std::string::npos);
  p = {}; p.top_p = kNaN; EXPECT_NE(message(p).find("top_p"), std::string::npos);
  p = {}; p.min_p = -0.01f; EXPECT_NE(message(p).find("min_p"), std::string::npos);
  p = {}; p.min_p = 1.01f; EXPECT_NE(message(p).find("min_p"), std::string::npos);
  p = {}; p.min_p = kNaN; EXPECT_NE(message(p).find("min_p"), std::string::npos);
  p = {}; p.repeat_penalty = 0.0f; EXPECT_NE(message(p).find("repeat_penalty"), std::string::npos);
  p = {}; p.repeat_penalty = kNaN; EXPECT_NE(message(p).find("repeat_penalty"), std::string::npos);
  p = {}; p.frequency_penalty = kNaN; EXPECT_NE(message(p).find("frequency_penalty"), std::string::npos);
  p = {}; p.presence_penalty = -kInf; EXPECT_NE(message(p).find("presence_penalty"), std::string::npos);
  p = {}; p.repeat_last_n = -2; EXPECT_NE(message(p).find("repeat_last_n"), std::string::npos);
  EXPECT_THROW(Sampler(SamplerParams{}, 0), Error);
}

TEST(Sampler, GreedyIsTheArgmaxOfTheAdjustedLogits) {
  Sampler s(with(0.0f), 4);
  EXPECT_EQ(s.sample(std::vector<float>{1, 5, 5, 2}, {}), 1);  // tie: lowest id
  EXPECT_EQ(s.sample(std::vector<float>(4, 0.0f), {}), 0);     // all equal
  EXPECT_EQ(s.sample(std::vector<float>{-kInf, -kInf, -1, kNaN}, {}), 2);
  EXPECT_THROW(s.sample(std::vector<float>(4, -kInf), {}), Error);   // nothing finite
  EXPECT_THROW(s.sample(std::vector<float>(5, 0.0f), {}), Error);    // wrong size
  // a bias bans the maximum
  const int32_t id = 1;
  const float ban = -kInf;
  s.set_logit_bias({&id, 1}, {&ban, 1});
  EXPECT_EQ(s.sample(std::vector<float>{1, 5, 4, 2}, {}), 2);
  s.set_logit_bias({}, {});
  EXPECT_EQ(s.sample(std::vector<float>{1, 5, 4, 2}, {}), 1);
}

TEST(Sampler, LogitBiasValidationAndLastEntryWins) {
  Sampler s(with(0.0f), 4);
  const std::vector<float> l{0, 1, 2, 3};
  const std::vector<int32_t> ids{0, 0};
  const std::vector<float> b{10.0f, -10.0f};  // the last entry for id 0 wins
  s.set_logit_bias(ids, b);
  EXPECT_EQ(s.sample(l, {}), 3);
  const std::vector<int32_t> ids2{0, 0};
  const std::vector<float> b2{-10.0f, 10.0f};
  s.set_logit_bias(ids2, b2);
  EXPECT_EQ(s.sample(l, {}), 0);
  // bad input leaves the table as it was
  EXPECT_THROW(s.set_logit_bias(std::vector<int32_t>{4}, std::vector<float>{1.0f}), Error);
  EXPECT_THROW(s.set_logit_bias(std::vector<int32_t>{-1}, std::vector<float>{1.0f}), Error);
  EXPECT_THROW(s.set_logit_bias(std::vector<int32_t>{1}, std::vector<float>{kNaN}), Error);
  EXPECT_THROW(s.set_logit_bias(std::vector<int32_t>{1}, std::vector<float>{kInf}), Error);
  EXPECT_EQ(s.sample(l, {}), 0);
}

TEST(Sampler, PenaltyWindowIsTheLastNTokens) {
  SamplerParams p = with(0.0f);
  p.presence_penalty = 10.0f;
  p.repeat_last_n = 2;
  Sampler s(p, 4);
  const std::vector<float> l{0, 5, 4, 3};
  EXPECT_EQ(s.sample(l, std::vector<int32_t>{1, 0, 0}), 1);  // 1 is outside the window of 2
  EXPECT_EQ(s.sample(l, std::vector<int32_t>{0, 1, 0}), 2);  // 1 is penalised
  EXPECT_EQ(s.sample(l, std::vector<int32_t>{1, 2}), 3);
  p.repeat_last_n = -1;  // the whole sequence
  Sampler all(p, 4);
  EXPECT_EQ(all.sample(l, std::vector<int32_t>{1, 0, 0, 0, 0}), 2);
  p.repeat_last_n = 0;  // off
  Sampler off(p, 4);
  EXPECT_EQ(off.sample(l, std::vector<int32_t>{1, 2, 3}), 1);
}

TEST(Sampler, VocabularySmallerThanKAndSingleTokenNucleus) {
  const std::vector<float> l{0.0f, 1.0f, 2.0f};
  Sampler big_k(with(1.0f, 100), 3);
  std::vector<int> seen(3, 0);
  // the same (seed, position) always gives the same token
  for (int i = 0; i < 300; ++i) ++seen[static_cast<size_t>(big_k.sample(l, {}))];
  EXPECT_EQ(*std::max_element(seen.begin(), seen.end()), 300);
  std::fill(seen.begin(), seen.end(), 0);
  std::vector<int32_t> h(300, 0);
  for (size_t pos = 0; pos < 300; ++pos) ++seen[static_cast<size_t>(big_k.sample(l, {h.data(), pos}))];
  for (int n : seen) EXPECT_GT(n, 0);  // all three drawn
  // top-p so small that only the most probable token remains, with and without top-k
  for (int32_t k : {0, 2}) {
    Sampler nucleus(with(5.0f, k, 0.01f), 3);
    for (size_t pos = 0; pos < 100; ++pos) EXPECT_EQ(nucleus.sample(l, {h.data(), pos}), 2);
  }
  // min-p 1 with a unique maximum: greedy whatever the temperature
  Sampler minp(with(10.0f, 0, 1.0f, 1.0f), 3);
  for (size_t pos = 0; pos < 100; ++pos) EXPECT_EQ(minp.sample(l, {h.data(), pos}), 2);
}

TEST(Sampler, NegativeInfinityIsNeverDrawn) {
  std::vector<float> l(40, -kInf);
  l[7] = 0.0f;
  l[30] = 0.0f;
  std::vector<int32_t> h(2000, 0);
  for (int32_t k : {0, 1, 5, 100}) {
    Sampler s(with(1.5f, k), 40);
    std::vector<int> seen(40, 0);
    for (size_t pos = 0; pos < 2000; ++pos) ++seen[static_cast<size_t>(s.sample(l, {h.data(), pos}))];
    EXPECT_EQ(seen[7] + seen[30], 2000);
    if (k == 1) {
      EXPECT_EQ(seen[7], 2000);  // tie: lower id
    } else {
      EXPECT_GT(seen[7], 800) << k;
      EXPECT_GT(seen[30], 800) << k;
    }
  }
  Sampler s(with(1.0f), 40);
  EXPECT_THROW(s.sample(std::vector<float>(40, -kInf), {}), Error);
}

// The best few (a full sort's, not select_top_k's) give the token the whole
// vocabulary gives, for every sampler that needs only those, at every
// position: ties, -inf and NaN among the logits, vocabularies smaller than k.
TEST(Sampler, BestCandidatesGiveTheWholeVocabularysToken) {
  const std::vector<SamplerParams> ps = {with(0.0f),           with(0.7f, 1),          with(0.7f, 3),
                                         with(1.0f, 40, 0.9f), with(1.6f, 256, 1.0f, 0.03f),
                                         with(0.4f, 12, 0.5f, 0.2f)};
  int sampled = 0, differ = 0;
  for (size_t c = 0; c < ps.size(); ++c) {
    for (size_t n : {size_t{1}, size_t{5}, size_t{300}, size_t{5000}}) {
      for (uint64_t seed = 0; seed < 6; ++seed) {
        std::vector<float> l = test_logits(n, 1000 * c + seed);
        add_ties_and_holes(l, seed + 77, 1.0f, {0.1, 0.15, 0.18});
        SamplerParams p = ps[c];
        p.seed = seed;
        Sampler whole(p, static_cast<int32_t>(n)), best(p, static_cast<int32_t>(n));
        const size_t k = best.best_needed(false);
        ASSERT_GT(k, 0u) << c;
        std::vector<Candidate> cands;
        for (int32_t id : reference_top_k(l, k)) cands.push_back({id, l[static_cast<size_t>(id)]});
        std::vector<int32_t> h(40, 1);
        for (size_t pos = 0; pos < 40; ++pos) {
          const int32_t a = whole.sample(l, {h.data(), pos});
          ASSERT_EQ(best.sample_best(cands, {h.data(), pos}), a) << "params " << c << " n " << n << " pos " << pos;
          ++sampled;
          differ += a != cands[0].id;
        }
      }
    }
  }
  EXPECT_GT(differ, sampled / 10);  // not only argmaxes: the draws were exercised
}

// Stage 0 against its definition, bit by bit: mask words of every kind (all
// set, all clear, single bits, random), vocabularies that end inside a word
// and inside a byte, masks longer and shorter than the vocabulary (tokens
// past a short mask are copied), and logits that are already -inf, +inf or
// NaN (an allowed one is copied as it is, bits included). Every output is
// written (dst starts as a value no logit has).
TEST(Sampler, GrammarMaskSetsExactlyTheClearBitsToMinusInf) {
  for (size_t n : {size_t{1}, size_t{7}, size_t{8}, size_t{63}, size_t{64}, size_t{65}, size_t{200}, size_t{1027}}) {
    for (uint64_t seed = 1; seed <= 6; ++seed) {
      std::vector<float> logits = test_logits(n, seed);
      for (size_t i = 0; i < n; i += 5) logits[i] = i % 3 == 0 ? -kInf : i % 3 == 1 ? kInf : kNaN;
      const size_t words = (n + 63) / 64;
      std::vector<uint64_t> mask(seed == 6 ? words + 2 : seed == 5 ? words / 2 : words);
      for (size_t w = 0; w < mask.size(); ++w) {
        uint64_t r = (seed * 0x9E3779B97F4A7C15ull) ^ (w * 0xBF58476D1CE4E5B9ull);  // splitmix64's finalizer
        r = (r ^ (r >> 30)) * 0xBF58476D1CE4E5B9ull;
        r = (r ^ (r >> 27)) * 0x94D049BB133111EBull;
        r ^= r >> 31;
        switch ((w + seed) % 5) {
          case 0: mask[w] = ~uint64_t{0}; break;
          case 1: mask[w] = 0; break;
          case 2: mask[w] = uint64_t{1} << (r % 64); break;
          case 3: mask[w] = ~(uint64_t{1} << (r % 64)); break;
          default: mask[w] = r ^ (r << 7); break;
        }
      }
      std::vector<float> got(n, 12345.0f);
      copy_with_grammar_mask(logits, mask, got);
      for (size_t i = 0; i < n; ++i) {
        const bool allowed = i / 64 >= mask.size() || ((mask[i / 64] >> (i % 64)) & 1) != 0;
        if (allowed) {
          EXPECT_EQ(0, std::memcmp(&got[i], &logits[i], sizeof(float))) << "n " << n << " seed " << seed << " id " << i;
        } else {
          EXPECT_EQ(got[i], -kInf) << "n " << n << " seed " << seed << " id " << i;
        }
      }
    }
  }
}

// Top-p and min-p without top-k: sample() over the whole vocabulary, and
// sample_best() from the 256 best and the vocabulary's mass (what a device
// sends instead of the logits), both against the definition written out
// (reference_draw). sample_best may only fall back (-1) when the truncated
// set goes on beyond the 256; both outcomes must occur.
TEST(Sampler, NucleusFromTheBestAndTheMass) {
  const std::vector<SamplerParams> ps = {with(0.6f, 0, 0.9f),        with(1.0f, 0, 0.5f),
                                         with(1.4f, 0, 0.95f, 0.05f), with(0.8f, 0, 1.0f, 0.2f),
                                         with(0.3f, 0, 0.999f),       with(2.0f, 0, 0.3f, 0.6f)};
  int sampled = 0, fell_back = 0, differ = 0;
  for (size_t c = 0; c < ps.size(); ++c) {
    for (size_t n : {size_t{1}, size_t{7}, size_t{300}, size_t{5000}, size_t{128256}}) {
      for (float spread : {0.3f, 4.0f, 12.0f}) {  // flat (large nucleus), model-like, peaky
        const uint64_t seed = 31 * c + static_cast<uint64_t>(spread);
        std::vector<float> l = test_logits(n, seed, spread);
        add_ties_and_holes(l, seed + 5, 2.0f, {0.1, 0.13, 0.15});
        SamplerParams p = ps[c];
        p.seed = seed;
        Sampler whole(p, static_cast<int32_t>(n)), best(p, static_cast<int32_t>(n));
        const size_t k = best.best_needed(false);
        ASSERT_EQ(k, Sampler::kMaxBest);
        std::vector<Candidate> cands, all;
        for (int32_t id : reference_top_k(l, n)) all.push_back({id, l[static_cast<size_t>(id)]});
        cands.assign(all.begin(), all.begin() + static_cast<ptrdiff_t>(std::min(k, all.size())));
        // the mass, added up independently (in reverse order: integers, so any order gives it)
        uint64_t mass = 0;
        for (size_t i = n; i-- > 0;)
          if (l[i] > -kInf && !std::isnan(l[i])) mass += reference_mass(fast_exp(l[i] - cands[0].logit), n);
        ASSERT_EQ(mass, logit_mass(l, cands[0].logit));
        const size_t nucleus = p.top_p < 1.0f ? reference_nucleus(all, n, p.top_p) : 0;
        std::vector<int32_t> h(30, 2);
        for (size_t pos = 0; pos < 30; ++pos) {
          const int32_t want = reference_draw(l, p.temperature, p.top_p, p.min_p, sampler_uniform(seed, pos));
          ASSERT_EQ(whole.sample(l, {h.data(), pos}), want)
              << "params " << c << " n " << n << " spread " << spread << " pos " << pos;
          const int32_t b = best.sample_best(cands, {h.data(), pos}, p.top_p < 1.0f ? mass : 0);
          if (b < 0) {
            ++fell_back;
            if (p.top_p < 1.0f) {
              EXPECT_GT(nucleus, k) << "params " << c << " n " << n << " spread " << spread;
            }
            continue;
          }
          ASSERT_EQ(b, want) << "params " << c << " n " << n << " spread " << spread << " pos " << pos;
          ++sampled;
          differ += b != cands[0].id;
        }
      }
    }
  }
  std::printf("[ nucleus  ] %d draws from the best 256 (%d not the argmax), %d fell back\n", sampled, differ,
              fell_back);
  EXPECT_GT(sampled, 1000);
  EXPECT_GT(fell_back, 100);       // flat distributions over big vocabularies
  EXPECT_GT(differ, sampled / 5);  // not only argmaxes
  // without the mass, top-p cannot tell where the nucleus ends
  Sampler s(with(0.7f, 0, 0.9f), 10);
  const std::vector<Candidate> two = {{3, 1.0f}, {1, 0.0f}};
  EXPECT_EQ(s.sample_best(two, {}, 0), -1);
  EXPECT_THROW(s.sample_best({}, {}, 5), Error);  // no finite logit
}

TEST(Sampler, BestNeededOnlyWhenNothingElseMatters) {
  EXPECT_EQ(Sampler(with(0.0f), 10).best_needed(false), 1u);
  EXPECT_EQ(Sampler(with(0.0f, 7, 0.5f), 10).best_needed(false), 1u);  // truncation cannot change the argmax
  EXPECT_EQ(Sampler(with(0.8f, 7, 0.5f, 0.1f), 10).best_needed(false), 7u);
  EXPECT_EQ(Sampler(with(0.8f, 256), 10).best_needed(false), 256u);
  EXPECT_EQ(Sampler(with(0.8f, 257), 10).best_needed(false), 0u);  // beyond kMaxBest
  // top-p or min-p over the vocabulary: the best 256, and for top-p the mass
  EXPECT_EQ(Sampler(with(0.8f, 0, 0.9f), 10).best_needed(false), Sampler::kMaxBest);
  EXPECT_TRUE(Sampler(with(0.8f, 0, 0.9f), 10).mass_needed());
  EXPECT_EQ(Sampler(with(0.8f, 0, 1.0f, 0.1f), 10).best_needed(false), Sampler::kMaxBest);
  EXPECT_FALSE(Sampler(with(0.8f, 0, 1.0f, 0.1f), 10).mass_needed());
  EXPECT_FALSE(Sampler(with(0.8f, 7, 0.9f), 10).mass_needed());  // top-p within the top-k list
  EXPECT_FALSE(Sampler(with(0.0f, 0, 0.9f), 10).mass_needed());  // greedy
  EXPECT_EQ(Sampler(with(0.8f), 10).best_needed(false), 0u);     // temperature alone weighs every token
  EXPECT_EQ(Sampler(with(0.0f), 10).best_needed(true), 0u);  // log-probabilities normalise over all
  SamplerParams pen = with(0.0f);
  pen.frequency_penalty = 0.5f;
  EXPECT_EQ(Sampler(pen, 10).best_needed(false), 0u);
  pen.repeat_last_n = 0;  // the penalty is off
  EXPECT_EQ(Sampler(pen, 10).best_needed(false), 1u);
  Sampler biased(with(0.0f), 10);
  const int32_t id = 3;
  const float b = 2.0f;
  biased.set_logit_bias({&id, 1}, {&b, 1});
  EXPECT_EQ(biased.best_needed(false), 0u);
  // misuse: no candidates (no finite logit), too many, or a sampler that needs all
  std::vector<Candidate> two = {{1, 2.0f}, {0, 1.0f}};
  Sampler g(with(0.0f), 10);
  EXPECT_EQ(g.sample_best({two.data(), 1}, {}), 1);
  try {
    g.sample_best({}, {});
    ADD_FAILURE() << "no candidates";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::invalid_argument);
  }
  try {
    g.sample_best(two, {});
    ADD_FAILURE() << "two candidates for greedy";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::internal);
  }
  try {
    biased.sample_best({two.data(), 1}, {});
    ADD_FAILURE() << "a biased sampler sampled from candidates";
  } catch (const Error& e) {
    EXPECT_EQ(e.status(), Status::internal);
  }
}

TEST(Sampler, SameSeedAndPositionSameToken) {
  const std::vector<float> l = test_logits(1000, 5);
  std::vector<int32_t> h(500, 3);
  SamplerParams p = with(0.9f, 50, 0.95f);
  p.seed = 1234;
  Sampler a(p, 1000), b(p, 1000);
  int differ = 0;
  for (size_t pos = 0; pos < 500; ++pos) {
    EXPECT_EQ(a.sample(l, {h.data(), pos}), b.sample(l, {h.data(), pos}));
    differ += a.sample(l, {h.data(), pos}) != a.sample(l, {h.data(), (pos + 1) % 500});
  }
  EXPECT_GT(differ, 100);
  p.seed = 1235;
  Sampler c(p, 1000);
  int differ_seed = 0;
  for (size_t pos = 0; pos < 500; ++pos) differ_seed += a.sample(l, {h.data(), pos}) != c.sample(l, {h.data(), pos});
  EXPECT_GT(differ_seed, 100);
}

TEST(Sampler, LogprobsAreLogSoftmaxOfTheAdjustedLogits) {
  // logits 0, ln 3, -inf, ln 3: probabilities 1/7, 3/7, 0, 3/7
  const std::vector<float> l{0.0f, std::log(3.0f), -kInf, std::log(3.0f)};
  Sampler s(with(0.0f), 4);
  Logprobs lp;
  EXPECT_EQ(s.sample(l, {}, &lp, 10), 1);
  EXPECT_NEAR(lp.logprob, std::log(3.0 / 7), 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);  // the -inf token is not listed
  EXPECT_EQ(lp.top[0].token, 1);
  EXPECT_EQ(lp.top[1].token, 3);  // tie with 1: higher id second
  EXPECT_EQ(lp.top[2].token, 0);
  EXPECT_NEAR(lp.top[2].logprob, std::log(1.0 / 7), 1e-6);
  s.sample(l, {}, &lp, 0);
  EXPECT_TRUE(lp.top.empty());
  // after a bias (+ln 3 on token 0): 3/9, 3/9, 0, 3/9
  const int32_t id = 0;
  const float b = std::log(3.0f);
  s.set_logit_bias({&id, 1}, {&b, 1});
  EXPECT_EQ(s.sample(l, {}, &lp, 1), 0);
  EXPECT_NEAR(lp.logprob, std::log(1.0 / 3), 1e-6);
  // truncation and temperature do not change them: a token outside the
  // nucleus keeps its log-probability
  SamplerParams p = with(0.3f, 1);
  p.presence_penalty = std::log(3.0f);  // token 3 in the window: 3/7 -> 1/7
  Sampler t(p, 4);
  const std::vector<int32_t> h{3};
  EXPECT_EQ(t.sample(l, h, &lp, 4), 1);
  EXPECT_NEAR(lp.logprob, std::log(3.0 / 5), 1e-6);
  ASSERT_EQ(lp.top.size(), 3u);
  EXPECT_NEAR(lp.top[1].logprob, std::log(1.0 / 5), 1e-6);
  EXPECT_NEAR(lp.top[2].logprob, std::log(1.0 / 5), 1e-6);
}

// ---- goodness of fit -------------------------------------------------------

namespace {

// The intended distribution, computed independently in double: bias and
// penalties off; top-k, top-p, min-p over a full sort; tempered softmax.
std::vector<double> intended(const std::vector<float>& l, const SamplerParams& p) {
  std::vector<int32_t> order = reference_top_k(l, l.size());
  if (p.top_k > 0 && order.size() > static_cast<size_t>(p.top_k)) order.resize(static_cast<size_t>(p.top_k));
  auto probs = [&](double t) {
    double m = l[static_cast<size_t>(order[0])], z = 0;
    std::vector<double> q;
    for (int32_t i : order) q.push_back(std::exp((l[static_cast<size_t>(i)] - m) / t));
    for (double x : q) z += x;
    for (double& x : q) x /= z;
    return q;
  };
  if (p.top_p < 1.0f) {
    std::vector<double> q = probs(1.0);
    double cum = 0;
    size_t keep = 0;
    while (keep < q.size() && cum < p.top_p) cum += q[keep++];
    order.resize(keep);
  }
  if (p.min_p > 0.0f) {
    const double thr = l[static_cast<size_t>(order[0])] + std::log(static_cast<double>(p.min_p));
    size_t keep = 0;
    while (keep < order.size() && l[static_cast<size_t>(order[keep])] >= thr) ++keep;
    order.resize(keep);
  }
  std::vector<double> q = probs(p.temperature);
  std::vector<double> dist(l.size(), 0.0);
  for (size_t i = 0; i < order.size(); ++i) dist[static_cast<size_t>(order[i])] = q[i];
  return dist;
}

// Upper critical value of chi-square with df degrees of freedom at
// significance 0.001 (Wilson-Hilferty; z = 3.0902).
double chi2_critical_001(int df) {
  const double a = 2.0 / (9.0 * df);
  return df * std::pow(1.0 - a + 3.0902 * std::sqrt(a), 3);
}

struct Fit {
  double chi2 = 0;
  int df = 0;
  int64_t outside = 0;  // draws of tokens whose intended probability is 0
};

// Pearson's chi-square of counts against dist; cells with an expected count
// below 5 are pooled (in order) until they reach it.
Fit fit(const std::vector<int64_t>& counts, const std::vector<double>& dist, int64_t n) {
  Fit f;
  double obs = 0, exp = 0;
  int cells = 0;
  for (size_t i = 0; i < dist.size(); ++i) {
    if (dist[i] == 0.0) {
      f.outside += counts[i];
      continue;
    }
    obs += static_cast<double>(counts[i]);
    exp += dist[i] * static_cast<double>(n);
    if (exp >= 5.0) {
      f.chi2 += (obs - exp) * (obs - exp) / exp;
      ++cells;
      obs = exp = 0;
    }
  }
  if (exp > 0) {
    f.chi2 += (obs - exp) * (obs - exp) / exp;  // the pooled remainder
    ++cells;
  }
  f.df = cells - 1;
  return f;
}

}  // namespace

// Each configuration draws n tokens at positions 0..n-1 with a fixed seed and
// compares the counts with the intended distribution: the test is
// deterministic, and at significance 0.001 a correct sampler would fail for
// one seed in a thousand. The same counts must be rejected against a wrong
// distribution (no temperature), so the test has power.
TEST(SamplerFit, DrawsFollowTheTruncatedTemperedSoftmax) {
  struct Config {
    size_t vocab;
    SamplerParams p;
    int64_t n;
  };
  std::vector<Config> configs{
      {64, with(0.7f, 20, 0.9f, 0.02f), 100000},  // typical: top-k, top-p, min-p, T < 1
      {64, with(1.3f), 100000},                    // temperature only (id-order walk)
      {64, with(1.0f, 10), 100000},                // top-k only, T = 1
      {1000, with(0.8f, 0, 0.85f), 40000},         // top-p over the whole vocabulary (incremental sort)
      {1000, with(1.0f, 0, 1.0f, 0.05f), 40000},   // min-p over the whole vocabulary
  };
  for (size_t ci = 0; ci < configs.size(); ++ci) {
    Config& c = configs[ci];
    c.p.seed = 1000 + ci;
    const std::vector<float> l = test_logits(c.vocab, 77 + ci, c.vocab > 100 ? 3.0f : 4.0f);
    Sampler s(c.p, static_cast<int32_t>(c.vocab));
    std::vector<int32_t> h(static_cast<size_t>(c.n), 0);
    std::vector<int64_t> counts(c.vocab, 0);
    for (size_t pos = 0; pos < static_cast<size_t>(c.n); ++pos) ++counts[static_cast<size_t>(s.sample(l, {h.data(), pos}))];
    const std::vector<double> dist = intended(l, c.p);
    const Fit f = fit(counts, dist, c.n);
    EXPECT_EQ(f.outside, 0) << "config " << ci << ": a truncated token was drawn";
    EXPECT_GE(f.df, 5) << "config " << ci;
    EXPECT_LT(f.chi2, chi2_critical_001(f.df)) << "config " << ci << " df " << f.df;
    SamplerParams wrong = c.p;
    wrong.temperature = c.p.temperature == 1.0f ? 1.25f : 1.0f;
    const Fit w = fit(counts, intended(l, wrong), c.n);
    std::printf("[ fit      ] config %zu: chi-square %.1f, df %d, critical value (0.001) %.1f; "
                "against a wrong temperature: %.1f\n",
                ci, f.chi2, f.df, chi2_critical_001(f.df), w.chi2);
    EXPECT_GT(w.chi2, chi2_critical_001(w.df)) << "config " << ci << ": the test cannot tell a wrong temperature";
  }
}

// ---- stop conditions ---------------------------------------------------------

TEST(StopConditions, PrecedenceAndLimits) {
  StopConditions s;
  s.eos_ids = {2, 128009};
  s.stop_ids = {7, 2};
  s.max_new_tokens = 5;
  EXPECT_EQ(s.check(2, 1), StopReason::eos);
  EXPECT_EQ(s.check(128009, 5), StopReason::eos);
  EXPECT_EQ(s.check(7, 1), StopReason::stop_token);
  EXPECT_EQ(s.check(8, 4), StopReason::none);
  EXPECT_EQ(s.check(8, 5), StopReason::max_tokens);
  s.ignore_eos = true;
  EXPECT_EQ(s.check(128009, 1), StopReason::none);
  EXPECT_EQ(s.check(2, 1), StopReason::stop_token);  // also a stop id
  s.max_new_tokens = 0;
  EXPECT_EQ(s.check(8, 1u << 30), StopReason::none);
  EXPECT_STREQ(stop_reason_name(StopReason::max_tokens), "length");
  EXPECT_STREQ(stop_reason_name(StopReason::stop_string), "stop_string");
}

// ---- stop strings ------------------------------------------------------------

namespace {

// Feeds pieces; returns everything emitted (plus the flush when no stop
// string matched) and the stop index.
std::pair<std::string, int> run_matcher(StopStringMatcher& m, const std::vector<std::string>& pieces) {
  std::string out;
  int idx = -1;
  for (const std::string& p : pieces) {
    const auto r = m.feed(p);
    out.append(r.text);
    if (idx >= 0) {
      EXPECT_TRUE(r.text.empty()) << "text after the stop string";
    }
    if (r.stop_index >= 0) idx = r.stop_index;
  }
  if (idx < 0) out.append(m.flush());
  return {out, idx};
}

}  // namespace

TEST(StopStrings, PassThroughWithoutStops) {
  StopStringMatcher m({});
  EXPECT_EQ(run_matcher(m, {"a", "bc", ""}), std::make_pair(std::string("abc"), -1));
}

TEST(StopStrings, SplitAcrossTwoAndThreePieces) {
  StopStringMatcher m({"<|end|>"});
  // two pieces
  auto r = m.feed("Hello <|e");
  EXPECT_EQ(r.text, "Hello ");
  EXPECT_EQ(r.stop_index, -1);
  EXPECT_EQ(m.held_bytes(), 3u);
  r = m.feed("nd|> and more");
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0);
  r = m.feed("later text");  // nothing after a match
  EXPECT_EQ(r.text, "");
  EXPECT_EQ(r.stop_index, 0);
  EXPECT_EQ(m.flush(), "");
  // three pieces
  m.reset();
  EXPECT_EQ(run_matcher(m, {"x<|", "end", "|>y"}), std::make_pair(std::string("x"), 0));
  m.reset();
  EXPECT_EQ(run_matcher(m, {"x<", "|en", "d|", ">", "y"}), std::make_pair(std::string("x"), 0));
  // a false start is released once it cannot be a stop string
  m.reset();
  r = m.feed("a <|en");
  EXPECT_EQ(r.text, "a ");
  r = m.feed("try");
  EXPECT_EQ(r.text, "<|entry");
  EXPECT_EQ(m.flush(), "");
  // held text is released at the end of the generation
  m.reset();
  EXPECT_EQ(m.feed("tail <|").text, "tail ");
  EXPECT_EQ(m.flush(), "<|");
}

TEST(StopStrings, OverlapsEarliestEndAndIndex) {
  StopStringMatcher self({"aab"});
  EXPECT_EQ(run_matcher(self, {"a", "a", "a", "b", "c"}), std::make_pair(std::string("a"), 0));
  // "bc" is complete before "abcd": the earliest end wins, however the text is cut
  StopStringMatcher two({"abcd", "bc"});
  EXPECT_EQ(run_matcher(two, {"xabcd"}), std::make_pair(std::string("xa"), 1));
  two.reset();
  EXPECT_EQ(run_matcher(two, {"xab", "cd"}), std::make_pair(std::string("xa"), 1));
  // same end: the one that starts first, i.e. the longer
  StopStringMatcher same({"c", "abc"});
  EXPECT_EQ(run_matcher(same, {"zabcz"}), std::make_pair(std::string("z"), 1));
  // identical stops: the lower index
  StopStringMatcher dup({"STOP", "STOP"});
  EXPECT_EQ(run_matcher(dup, {"go S", "TOP"}), std::make_pair(std::string("go "), 0));
  // UTF-8: the held suffix starts on a code point boundary
  StopStringMatcher u({"\xC3\xA9!"});  // "é!"
  auto r = u.feed("caf\xC3\xA9");
  EXPECT_EQ(r.text, "caf");
  EXPECT_EQ(u.feed("?").text, "\xC3\xA9?");
  EXPECT_THROW(StopStringMatcher({"ok", ""}), Error);
}

TEST(StopStrings, AnyCutGivesTheSameResultAsOnePiece) {
  // random text over a small alphabet, random cuts, against a direct search
  const std::vector<std::string> stops{"abc", "bca", "cc", "abab"};
  auto reference = [&](const std::string& t) -> std::pair<std::string, int> {
    size_t best_end = std::string::npos, best_at = 0;
    int idx = -1;
    for (size_t i = 0; i < stops.size(); ++i) {
      const size_t at = t.find(stops[i]);
      if (at == std::string::npos) continue;
      const size_t end = at + stops[i].size();
      if (end < best_end || (end == best_end && at < best_at)) {
        best_end = end;
        best_at = at;
        idx = static_cast<int>(i);
      }
    }
    return idx < 0 ? std::make_pair(t, -1) : std::make_pair(t.substr(0, best_at), idx);
  };
  StopStringMatcher m(stops);
  for (uint64_t trial = 0; trial < 2000; ++trial) {
    std::string t;
    const size_t len = 1 + static_cast<size_t>(sampler_uniform(trial, 0) * 30);
    for (size_t i = 0; i < len; ++i) t += static_cast<char>('a' + static_cast<int>(sampler_uniform(trial, i + 1) * 3));
    std::vector<std::string> pieces;
    for (size_t i = 0, j = 0; i < t.size(); ++j) {
      const size_t n = static_cast<size_t>(sampler_uniform(trial, 1000 + j) * 4);  // 0..3 bytes, empty pieces too
      pieces.push_back(t.substr(i, n));
      i += n;
    }
    m.reset();
    ASSERT_EQ(run_matcher(m, pieces), reference(t)) << t;
  }
}
