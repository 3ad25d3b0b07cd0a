// sampler.cpp - see sampler.h for the chain, its order and its distributions.
#include "sample/sampler.h"

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstring>
#include <limits>

#include "util/fast_exp.h"
#include "sample/rng.h"
#include "util/error.h"

namespace paca {

namespace {

constexpr float kNegInf = -std::numeric_limits<float>::infinity();

// True when any of x[0..16) is > thr (false for NaN). Written as a flat
// reduction so that the compiler vectorizes it; the scans below test 16
// logits at a time and look at single elements only in a block that passed.
constexpr size_t kScanBlock = 16;
inline bool any_greater(const float* x, float thr) {
  int any = 0;
  for (size_t j = 0; j < kScanBlock; ++j) any |= static_cast<int>(x[j] > thr);
  return any != 0;
}

// The largest logit (NaN ignored; -inf when none is finite). 8 lanes, so
// that the loop vectorizes.
float max_logit(std::span<const float> l) {
  float m[8] = {kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf, kNegInf};
  const size_t n = l.size();
  size_t i = 0;
  for (; i + 8 <= n; i += 8)
    for (size_t j = 0; j < 8; ++j) m[j] = l[i + j] > m[j] ? l[i + j] : m[j];
  for (; i < n; ++i) m[0] = l[i] > m[0] ? l[i] : m[0];
  float r = m[0];
  for (size_t j = 1; j < 8; ++j) r = m[j] > r ? m[j] : r;
  return r;
}

// Weights w[i] = exp((l[i] - m) * inv_t) for l[i] >= floor, else 0 (also for
// -inf and NaN). The loops vectorize (this file is built with
// -fno-trapping-math, which lets the compiler turn the float compares into
// selects); on x86-64 an AVX2 clone is chosen at load time. Without FMA
// contraction (ISO C++ mode, and -ffp-contract=off for this file) both clones
// compute bit-identical weights, and so does a device that evaluates
// fast_exp with correctly rounded operations in the same order.
#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__)
#define PACA_SAMPLER_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PACA_SAMPLER_CLONES
#endif
constexpr size_t kSumBlock = 256;

// floor(w * scale) for a weight w in [0, 1] and scale = 2^s, s <= 52. The
// product d is an exact double in [0, 2^52]; d + 2^52 rounds it to an integer
// held in the low mantissa bits, one less when that rounded up. Plain adds,
// compares and bit moves: no libm call, and loops of it vectorize.
inline uint64_t mass_of(float w, double scale) {
  const double d = static_cast<double>(w) * scale;
  double t = d + 0x1p52;
  t = t - 0x1p52 > d ? t - 1.0 : t;
  return std::bit_cast<uint64_t>(t) - std::bit_cast<uint64_t>(0x1p52);
}

// The masses into q and, per block of kSumBlock, their sums into
// block_mass. Returns the total mass.
PACA_SAMPLER_CLONES uint64_t mass_weights_into(const float* x, size_t n, float m, float inv_t, float floor,
                                               double scale, uint64_t* q, uint64_t* block_mass) {
  float w[kSumBlock];
  uint64_t total = 0;
  for (size_t b = 0; b < n; b += kSumBlock) {
    const size_t e = std::min(n, b + kSumBlock) - b;
    for (size_t i = 0; i < e; ++i) {
      const float v = fast_exp((x[b + i] - m) * inv_t);
      w[i] = x[b + i] >= floor ? v : 0.0f;
    }
    uint64_t sum = 0;
    for (size_t i = 0; i < e; ++i) sum += q[b + i] = mass_of(w[i], scale);
    block_mass[b / kSumBlock] = sum;
    total += sum;
  }
  return total;
}

// The sum of the masses at temperature 1 (logit_mass), block by block in a
// small buffer so that both loops vectorize.
PACA_SAMPLER_CLONES uint64_t mass_into(const float* x, size_t n, float m, double scale) {
  float w[kSumBlock];
  uint64_t total = 0;
  for (size_t b = 0; b < n; b += kSumBlock) {
    const size_t e = std::min(n, b + kSumBlock) - b;
    for (size_t i = 0; i < e; ++i) w[i] = fast_exp(x[b + i] - m);
    for (size_t i = 0; i < e; ++i) total += mass_of(w[i], scale);
  }
  return total;
}

uint64_t mass_weights(std::span<const float> l, float m, float inv_t, float floor, double scale, SampleScratch& s) {
  s.mass.resize(l.size());
  s.block_mass.resize((l.size() + kSumBlock - 1) / kSumBlock);
  return mass_weights_into(l.data(), l.size(), m, inv_t, floor, scale, s.mass.data(), s.block_mass.data());
}

// The sum of exp(l[i] - m) in float weights, summed per block of kSumBlock in
// 8 float lanes and across blocks in double (log-probabilities).
PACA_SAMPLER_CLONES double sum_exp_into(const float* x, size_t n, float m, float* w) {
  double total = 0;
  for (size_t b = 0; b < n; b += kSumBlock) {
    const size_t e = std::min(n, b + kSumBlock);
    for (size_t i = b; i < e; ++i) w[i] = fast_exp(x[i] - m);
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = b;
    for (; i + 8 <= e; i += 8)
      for (size_t j = 0; j < 8; ++j) lanes[j] += w[i + j];
    double sum = 0;
    for (; i < e; ++i) sum += w[i];
    for (float v : lanes) sum += v;
    total += sum;
  }
  return total;
}

double sum_exp(std::span<const float> l, float m, SampleScratch& s) {
  s.weights.resize(l.size());
  return sum_exp_into(l.data(), l.size(), m, s.weights.data());
}

// The draw's target mass for u in [0, 1): floor(u * total), below total.
uint64_t draw_target(double u, uint64_t total) {
  const auto t = static_cast<uint64_t>(u * static_cast<double>(total));
  return t < total ? t : total - 1;
}

// Walks the masses of mass_weights to the first index where the running sum
// passes draw_target(u, total): whole blocks first, then one block element
// by element.
int64_t pick(const SampleScratch& s, uint64_t total, double u) {
  if (total == 0) return -1;
  const uint64_t target = draw_target(u, total);
  const size_t n = s.mass.size();
  uint64_t cum = 0;
  size_t b = 0;
  while (b + 1 < s.block_mass.size() && cum + s.block_mass[b] <= target) cum += s.block_mass[b++];
  for (size_t i = b * kSumBlock; i < n; ++i) {
    cum += s.mass[i];
    if (cum > target) return static_cast<int64_t>(i);
  }
  return -1;  // not reached: the masses add up to total > target
}

// Sets the masses of `ids` (distinct) to 0 and takes them off their blocks;
// returns the new total.
uint64_t remove_weights(std::span<const int32_t> ids, uint64_t total, SampleScratch& s) {
  for (int32_t id : ids) {
    uint64_t& q = s.mass[static_cast<size_t>(id)];
    s.block_mass[static_cast<size_t>(id) / kSumBlock] -= q;
    total -= q;
    q = 0;
  }
  return total;
}

// 1/T, bounded so that (l - max) * inv_t is 0 (weight 1) at the maximum
// instead of 0 * inf.
float inverse_temperature(float t) { return static_cast<float>(std::min(1.0 / static_cast<double>(t), 1e30)); }

bool weighted_before(const WeightedCandidate& a, const WeightedCandidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Reorders v so that v[0, k) are its k best (weighted_before), k the
// smallest with mass sum >= target (v.size() when the sum never gets
// there), and returns k. Quickselect on masses: partition around a
// median-of-three pivot, keep the side that holds the cut. Expected linear.
size_t weighted_select(std::vector<WeightedCandidate>& v, uint64_t target) {
  size_t lo = 0, hi = v.size();  // v[0, lo) are kept (mass acc); the cut is in (lo, hi]
  uint64_t acc = 0;
  while (hi - lo > 16) {
    const WeightedCandidate& a = v[lo];
    const WeightedCandidate& b = v[lo + (hi - lo) / 2];
    const WeightedCandidate& c = v[hi - 1];
    const WeightedCandidate pivot = weighted_before(a, b) ? (weighted_before(b, c) ? b : (weighted_before(a, c) ? c : a))
                                                          : (weighted_before(a, c) ? a : (weighted_before(b, c) ? c : b));
    const auto first = v.begin() + static_cast<ptrdiff_t>(lo);
    const auto mid = std::partition(first, v.begin() + static_cast<ptrdiff_t>(hi),
                                    [&](const WeightedCandidate& x) { return weighted_before(x, pivot); });
    const size_t j = static_cast<size_t>(mid - v.begin());
    uint64_t s = 0;
    for (size_t i = lo; i < j; ++i) s += v[i].mass;
    if (acc + s >= target) {  // the cut lies among the better ones (j > lo, since acc < target)
      hi = j;
      continue;
    }
    acc += s;
    // the pivot is the best of [j, hi): put it at j and keep it
    for (size_t i = j; i < hi; ++i)
      if (v[i].id == pivot.id) {
        std::swap(v[i], v[j]);
        break;
      }
    acc += v[j].mass;
    if (acc >= target) return j + 1;
    lo = j + 1;
  }
  std::sort(v.begin() + static_cast<ptrdiff_t>(lo), v.begin() + static_cast<ptrdiff_t>(hi), weighted_before);
  for (size_t i = lo; i < hi; ++i) {
    acc += v[i].mass;
    if (acc >= target) return i + 1;
  }
  return hi;
}

}  // namespace

void SamplerParams::validate() const {
  check(std::isfinite(temperature) && temperature >= 0.0f, Status::invalid_argument,
        "sampler: temperature must be finite and >= 0 (0 = greedy), got {}", temperature);
  check(top_k >= 0, Status::invalid_argument, "sampler: top_k must be >= 0 (0 = off), got {}", top_k);
  check(top_p > 0.0f && top_p <= 1.0f, Status::invalid_argument,
        "sampler: top_p must be in (0, 1] (1 = off), got {}", top_p);
  check(min_p >= 0.0f && min_p <= 1.0f, Status::invalid_argument,
        "sampler: min_p must be in [0, 1] (0 = off), got {}", min_p);
  check(std::isfinite(repeat_penalty) && repeat_penalty > 0.0f, Status::invalid_argument,
        "sampler: repeat_penalty must be finite and > 0 (1 = off), got {}", repeat_penalty);
  check(std::isfinite(frequency_penalty), Status::invalid_argument,
        "sampler: frequency_penalty must be finite (0 = off), got {}", frequency_penalty);
  check(std::isfinite(presence_penalty), Status::invalid_argument,
        "sampler: presence_penalty must be finite (0 = off), got {}", presence_penalty);
  check(repeat_last_n >= -1, Status::invalid_argument,
        "sampler: repeat_last_n must be >= -1 (-1 = whole sequence, 0 = off), got {}", repeat_last_n);
}

int32_t argmax_logit(std::span<const float> logits) {
  const float* x = logits.data();
  const size_t n = logits.size();
  float best = kNegInf;
  int32_t arg = -1;
  size_t i = 0;
  for (; i + kScanBlock <= n; i += kScanBlock) {
    if (!any_greater(x + i, best)) continue;
    for (size_t j = i; j < i + kScanBlock; ++j)
      if (x[j] > best) {
        best = x[j];
        arg = static_cast<int32_t>(j);
      }
  }
  for (; i < n; ++i)
    if (x[i] > best) {
      best = x[i];
      arg = static_cast<int32_t>(i);
    }
  return arg;
}

void select_top_k(std::span<const float> logits, size_t k, std::vector<Candidate>& out) {
  out.clear();
  if (k == 0) return;
  if (k == 1) {  // the argmax scan skips whole blocks below the best so far
    const int32_t i = argmax_logit(logits);
    if (i >= 0) out.push_back({i, logits[static_cast<size_t>(i)]});
    return;
  }
  const size_t n = logits.size();
  const float* x = logits.data();
  if (k >= n) {
    for (size_t i = 0; i < n; ++i)
      if (x[i] > kNegInf) out.push_back({static_cast<int32_t>(i), x[i]});
    std::sort(out.begin(), out.end(), candidate_before);
    return;
  }
  // Candidates better than the threshold go into a buffer of `cap`; when it
  // is full, the k best are kept and the threshold rises to the k-th logit.
  // A later logit equal to the threshold has a higher id, so it loses the
  // tie: the threshold test is strict. -inf and NaN never pass.
  const size_t cap = 2 * k + 64;
  out.reserve(cap);
  float thr = kNegInf;
  auto consider = [&](size_t j) {
    if (!(x[j] > thr)) return;
    out.push_back({static_cast<int32_t>(j), x[j]});
    if (out.size() == cap) {
      std::nth_element(out.begin(), out.begin() + static_cast<ptrdiff_t>(k - 1), out.end(), candidate_before);
      out.resize(k);
      thr = out[k - 1].logit;
    }
  };
  size_t i = 0;
  for (; i + kScanBlock <= n; i += kScanBlock) {
    if (!any_greater(x + i, thr)) continue;
    for (size_t j = i; j < i + kScanBlock; ++j) consider(j);
  }
  for (; i < n; ++i) consider(i);
  if (out.size() > k) {
    std::nth_element(out.begin(), out.begin() + static_cast<ptrdiff_t>(k - 1), out.end(), candidate_before);
    out.resize(k);
  }
  std::sort(out.begin(), out.end(), candidate_before);
}

void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias) {
  for (const auto& [id, b] : bias) logits[static_cast<size_t>(id)] += b;
}

void apply_penalties(std::span<float> logits, std::span<const int32_t> window, float repeat_penalty,
                     float frequency_penalty, float presence_penalty, std::vector<int32_t>& scratch) {
  scratch.assign(window.begin(), window.end());
  std::sort(scratch.begin(), scratch.end());
  for (size_t i = 0; i < scratch.size();) {
    const int32_t t = scratch[i];
    size_t j = i + 1;
    while (j < scratch.size() && scratch[j] == t) ++j;
    const size_t count = j - i;
    i = j;
    if (t < 0 || static_cast<size_t>(t) >= logits.size()) continue;
    float& l = logits[static_cast<size_t>(t)];
    if (repeat_penalty != 1.0f) l = l > 0.0f ? l / repeat_penalty : l * repeat_penalty;
    l -= static_cast<float>(count) * frequency_penalty + presence_penalty;
  }
}

int mass_shift(size_t n) {
  const int log2n = n <= 1 ? 0 : static_cast<int>(std::bit_width(n - 1));  // ceil(log2 n)
  return std::min(52, 62 - log2n);
}

uint64_t token_mass(float logit, float max_logit, float inv_t, double scale) {
  return mass_of(fast_exp((logit - max_logit) * inv_t), scale);
}

uint64_t logit_mass(std::span<const float> logits, float max_logit) {
  return mass_into(logits.data(), logits.size(), max_logit, mass_scale(logits.size()));
}

uint64_t nucleus_target(uint64_t total, float top_p) {
  const double t = static_cast<double>(top_p) * static_cast<double>(total);
  auto r = static_cast<uint64_t>(t);
  if (static_cast<double>(r) < t) ++r;
  return std::max<uint64_t>(1, std::min(r, total));
}

size_t top_p_keep(std::span<const Candidate> sorted, float top_p) {
  const size_t n = sorted.size();
  if (top_p >= 1.0f || n <= 1) return n;
  const float m = sorted[0].logit;
  const double scale = mass_scale(n);
  uint64_t total = 0;
  for (const Candidate& c : sorted) total += token_mass(c.logit, m, 1.0f, scale);
  const uint64_t target = nucleus_target(total, top_p);
  uint64_t cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += token_mass(sorted[i].logit, m, 1.0f, scale);
    if (cum >= target) return i + 1;
  }
  return n;
}

namespace {
// top_p_cut given the masses and their total mass_weights left in scratch at
// temperature 1 (the sampler weighs once for its two paths).
void top_p_cut_weighed(std::span<const float> logits, float max_logit, float top_p, uint64_t total, TopPCut& out,
                       SampleScratch& scratch) {
  out.tied_out.clear();
  const size_t n = logits.size();
  const float* x = logits.data();
  const uint64_t target = nucleus_target(total, top_p);
  const uint64_t* q = scratch.mass.data();
  // A histogram of the mass over kBins equal bins of logit, from the maximum
  // down to the smallest logit with weight: the bins above the one where the
  // running mass reaches the target are kept whole; only the tokens of that
  // bin need ordering (a weighted quickselect). The masses are integers, so
  // the nucleus does not depend on the order they are added in.
  constexpr size_t kBins = 2048;
  float lo = max_logit;  // the smallest logit with weight (8 lanes: vectorized)
  {
    const float min_w = max_logit - 87.0f;  // fast_exp(x - max) > 0 exactly for x - max >= -87
    float lanes[8] = {lo, lo, lo, lo, lo, lo, lo, lo};
    size_t i = 0;
    for (; i + 8 <= n; i += 8)
      for (size_t j = 0; j < 8; ++j) lanes[j] = x[i + j] >= min_w && x[i + j] < lanes[j] ? x[i + j] : lanes[j];
    for (; i < n; ++i) lo = x[i] >= min_w && x[i] < lo ? x[i] : lo;
    for (float v : lanes) lo = std::min(lo, v);
  }
  const float range = max_logit - lo;
  const float scale = range > 1e-30f ? static_cast<float>(kBins) / range : 0.0f;
  auto bin_of = [&](float v) { return std::min(kBins - 1, static_cast<size_t>((max_logit - v) * scale)); };
  std::vector<uint64_t>& mass = scratch.bins;
  mass.assign(kBins, 0);
  for (size_t i = 0; i < n; ++i)
    if (q[i] > 0) mass[bin_of(x[i])] += q[i];
  size_t cut = 0;
  uint64_t acc = 0;
  while (cut + 1 < kBins && acc + mass[cut] < target) acc += mass[cut++];
  // the tokens of the cut's bin, ordered just enough to find the last one kept
  std::vector<WeightedCandidate>& v = scratch.weighted;
  v.clear();
  auto take = [&](size_t i) {
    if (q[i] > 0 && bin_of(x[i]) == cut) v.push_back({x[i], static_cast<int32_t>(i), q[i]});
  };
  if (scale == 0.0f) {
    for (size_t i = 0; i < n; ++i) take(i);
  } else {
    // blocks of 16 with no logit near the cut's bin are skipped (vectorized test)
    const float near_hi = max_logit - (static_cast<float>(cut) - 0.5f) / scale;
    const float near_lo = max_logit - (static_cast<float>(cut) + 1.5f) / scale;
    size_t i = 0;
    for (; i + kScanBlock <= n; i += kScanBlock) {
      int any = 0;
      for (size_t j = 0; j < kScanBlock; ++j) any |= static_cast<int>(x[i + j] >= near_lo && x[i + j] <= near_hi);
      if (any != 0)
        for (size_t j = i; j < i + kScanBlock; ++j) take(j);
    }
    for (; i < n; ++i) take(i);
  }
  if (v.empty()) {  // not reached (the masses add up to the target): keep every token with weight
    out.threshold = lo;
    return;
  }
  const size_t keep = std::max<size_t>(1, weighted_select(v, target - acc));
  const WeightedCandidate last = *std::max_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(keep), weighted_before);
  out.threshold = last.logit;
  for (size_t i = keep; i < v.size(); ++i)
    if (v[i].logit == last.logit) out.tied_out.push_back(v[i].id);  // ties after the last one kept
}
}  // namespace

void top_p_cut(std::span<const float> logits, float max_logit, float top_p, TopPCut& out, SampleScratch& scratch) {
  const uint64_t total = mass_weights(logits, max_logit, 1.0f, kNegInf, mass_scale(logits.size()), scratch);
  top_p_cut_weighed(logits, max_logit, top_p, total, out, scratch);
}

float min_p_floor(float max_logit, float min_p) {
  if (min_p <= 0.0f) return kNegInf;
  const double thr = static_cast<double>(max_logit) + std::log(static_cast<double>(min_p));
  float f = static_cast<float>(thr);
  if (static_cast<double>(f) < thr) f = std::nextafter(f, std::numeric_limits<float>::infinity());
  return f;
}

int64_t draw_index(std::span<const float> logits, float max_logit, float temperature, float floor, double u,
                   SampleScratch& scratch) {
  const double scale = mass_scale(logits.size());
  const uint64_t total = mass_weights(logits, max_logit, inverse_temperature(temperature), floor, scale, scratch);
  return pick(scratch, total, u);
}

Sampler::Sampler(const SamplerParams& params, int32_t n_vocab) : params_(params), n_vocab_(n_vocab) {
  params_.validate();
  check(n_vocab > 0, Status::invalid_argument, "sampler: the vocabulary size must be > 0, got {}", n_vocab);
}

void Sampler::set_logit_bias(std::span<const int32_t> ids, std::span<const float> biases) {
  check(ids.size() == biases.size(), Status::invalid_argument, "logit bias: {} ids but {} biases", ids.size(),
        biases.size());
  std::vector<std::pair<int32_t, float>> b;
  b.reserve(ids.size());
  for (size_t i = 0; i < ids.size(); ++i) {
    check(ids[i] >= 0 && ids[i] < n_vocab_, Status::invalid_argument,
          "logit bias: token id {} at index {} is outside the vocabulary [0, {})", ids[i], i, n_vocab_);
    check(std::isfinite(biases[i]) || biases[i] == kNegInf, Status::invalid_argument,
          "logit bias: the bias of token {} must be finite or -inf, got {}", ids[i], biases[i]);
    b.emplace_back(ids[i], biases[i]);
  }
  // sort by id keeping the input order among equal ids, then keep the last of each
  std::stable_sort(b.begin(), b.end(), [](const auto& x, const auto& y) { return x.first < y.first; });
  std::vector<std::pair<int32_t, float>> unique;
  unique.reserve(b.size());
  for (size_t i = 0; i < b.size(); ++i)
    if (i + 1 == b.size() || b[i + 1].first != b[i].first) unique.push_back(b[i]);
  bias_ = std::move(unique);
}

void Sampler::set_grammar(std::unique_ptr<GrammarMatcher> grammar) {
  check(grammar == nullptr || grammar->vocab().n_vocab() == n_vocab_, Status::invalid_argument,
        "sampler: the grammar's vocabulary has {} tokens, the sampler's {}",
        grammar != nullptr ? grammar->vocab().n_vocab() : 0, n_vocab_);
  grammar_ = std::move(grammar);
}

namespace {

// For each byte of a mask, its 8 tokens' lanes: all ones where the bit is set
// (the logit is kept), zero where it is clear (the logit becomes -inf).
struct MaskLanes {
  uint32_t keep[256][8];
  constexpr MaskLanes() : keep{} {
    for (int b = 0; b < 256; ++b)
      for (int j = 0; j < 8; ++j) keep[b][j] = (b >> j) & 1 ? 0xFFFFFFFFu : 0u;
  }
};
constexpr MaskLanes kMaskLanes;
constexpr uint32_t kNegInfBits = 0xFF800000u;

// Eight logits copied through one byte of the mask, branch-free (the
// compiler makes this a few vector ands and ors).
inline void copy_eight(const float* src, float* dst, uint8_t byte) {
  uint32_t x[8];
  std::memcpy(x, src, sizeof x);
  const uint32_t* keep = kMaskLanes.keep[byte];
  for (int j = 0; j < 8; ++j) x[j] = (x[j] & keep[j]) | (kNegInfBits & ~keep[j]);
  std::memcpy(dst, x, sizeof x);
}

}  // namespace

void copy_with_grammar_mask(std::span<const float> src, std::span<const uint64_t> mask, std::span<float> dst) {
  check(dst.size() == src.size(), Status::internal, "grammar mask: {} logits copied into {}", src.size(), dst.size());
  const size_t n = src.size();
  for (size_t b = 0; b < n; b += 64) {
    const size_t w = b / 64, e = std::min(n, b + 64);
    const uint64_t m = w < mask.size() ? mask[w] : ~uint64_t{0};
    if (m == ~uint64_t{0}) {
      std::memcpy(dst.data() + b, src.data() + b, (e - b) * sizeof(float));
      continue;
    }
    if (m == 0) {
      std::fill(dst.begin() + static_cast<ptrdiff_t>(b), dst.begin() + static_cast<ptrdiff_t>(e), kNegInf);
      continue;
    }
    size_t i = b;
    for (int k = 0; k < 8 && i + 8 <= e; ++k, i += 8)  // a mixed word, a byte (8 logits) at a time
      copy_eight(src.data() + i, dst.data() + i, static_cast<uint8_t>(m >> (8 * k)));
    for (; i < e; ++i)  // the vocabulary's end inside a byte
      dst[i] = ((m >> (i - b)) & 1) != 0 ? src[i] : kNegInf;
  }
}

namespace {
void check_sampled(int32_t token) {
  check(token >= 0, Status::invalid_argument,
        "sampler: no token can be sampled: every logit is -inf or NaN after the logit bias and penalties");
}
}  // namespace

int32_t Sampler::draw_top_k(double u) {
  const SamplerParams& p = params_;
  // 4: top-p on the sorted list
  cands_.resize(top_p_keep(cands_, p.top_p));
  if (cands_.empty()) return -1;
  // 5-7: min-p as a floor on the logits, temperature, the draw
  const float m = cands_[0].logit;
  scratch_.logits.resize(cands_.size());
  for (size_t i = 0; i < cands_.size(); ++i) scratch_.logits[i] = cands_[i].logit;
  const int64_t i = draw_index(scratch_.logits, m, p.temperature, min_p_floor(m, p.min_p), u, scratch_);
  return i >= 0 ? cands_[static_cast<size_t>(i)].id : -1;
}

size_t Sampler::best_needed(bool want_logprobs) const {
  const SamplerParams& p = params_;
  if (want_logprobs || grammar_ != nullptr || !bias_.empty() || p.penalties_active()) return 0;
  if (p.temperature == 0.0f) return 1;
  if (p.top_k > 0) return static_cast<size_t>(p.top_k) <= kMaxBest ? static_cast<size_t>(p.top_k) : 0;
  return p.top_p < 1.0f || p.min_p > 0.0f ? kMaxBest : 0;
}

bool Sampler::mass_needed() const {
  const SamplerParams& p = params_;
  return p.temperature > 0.0f && p.top_k == 0 && p.top_p < 1.0f;
}

int32_t Sampler::draw_truncated_best(std::span<const Candidate> best, uint64_t mass, double u) {
  const SamplerParams& p = params_;
  const float m = best[0].logit;
  if (!std::isfinite(m)) return -1;  // +inf: the whole-vocabulary path decides
  const double scale = mass_scale(static_cast<size_t>(n_vocab_));
  const float floor = min_p_floor(m, p.min_p);
  size_t keep = best.size();
  if (p.top_p < 1.0f) {
    // the nucleus: the shortest run of the best whose mass reaches the target
    if (mass == 0) return -1;  // not given (the maximum alone weighs 2^s)
    const uint64_t target = nucleus_target(mass, p.top_p);
    uint64_t cum = 0;
    keep = 0;
    for (size_t i = 0; i < best.size() && keep == 0; ++i) {
      cum += token_mass(best[i].logit, m, 1.0f, scale);
      if (cum >= target) keep = i + 1;
    }
    if (keep == 0) return -1;  // the nucleus goes on beyond the best
  } else if (best.size() == kMaxBest && best.back().logit >= floor) {
    return -1;  // the min-p set may go on beyond the best
  }
  // 5-7: min-p, temperature and the draw over the kept set in id order, as
  // the whole-vocabulary path walks it (its other tokens weigh 0 there)
  const float inv_t = inverse_temperature(p.temperature);
  std::vector<WeightedCandidate>& v = scratch_.weighted;
  v.clear();
  for (size_t i = 0; i < keep; ++i)
    if (best[i].logit >= floor) v.push_back({best[i].logit, best[i].id, token_mass(best[i].logit, m, inv_t, scale)});
  std::sort(v.begin(), v.end(), [](const WeightedCandidate& a, const WeightedCandidate& b) { return a.id < b.id; });
  uint64_t total = 0;
  for (const WeightedCandidate& c : v) total += c.mass;
  if (total == 0) return -1;
  const uint64_t target = draw_target(u, total);
  uint64_t cum = 0;
  for (const WeightedCandidate& c : v) {
    cum += c.mass;
    if (cum > target) return c.id;
  }
  return -1;
}

int32_t Sampler::sample_best(std::span<const Candidate> best, std::span<const int32_t> history, uint64_t mass) {
  const size_t k = best_needed(false);
  check(k > 0 && best.size() <= k, Status::internal, "sampler: {} best candidates given where {} are needed",
        best.size(), k);
  int32_t token = -1;
  const double u = sampler_uniform(params_.seed, history.size());
  if (params_.temperature == 0.0f) {
    if (!best.empty()) token = best[0].id;
  } else if (params_.top_k > 0) {
    cands_.assign(best.begin(), best.end());
    token = draw_top_k(u);
  } else {
    check_sampled(best.empty() ? -1 : 0);
    return draw_truncated_best(best, mass, u);
  }
  check_sampled(token);
  return token;
}

int32_t Sampler::draw_vocabulary(std::span<const float> l, float m, double u) {
  const SamplerParams& p = params_;
  // 4-7 from the best kMaxBest and the mass, when the truncated set is among
  // them (as with a device: see sample_best)
  const double scale = mass_scale(l.size());
  uint64_t mass = 0;  // at temperature 1 (top-p), each token's in scratch_
  if (p.top_p < 1.0f) mass = mass_weights(l, m, 1.0f, kNegInf, scale, scratch_);
  if (p.top_p < 1.0f || p.min_p > 0.0f) {
    select_top_k(l, kMaxBest, best_);
    const int32_t token = draw_truncated_best(best_, mass, u);
    if (token >= 0) return token;
  }
  // else 4: top-p over the whole vocabulary as a floor on the logits (plus
  // the ties at the floor that fall outside); 5-7: min-p (another floor),
  // temperature and the draw, in token id order
  float floor = min_p_floor(m, p.min_p);
  bool cut_ties = false;
  if (p.top_p < 1.0f) {
    top_p_cut_weighed(l, m, p.top_p, mass, topp_, scratch_);
    cut_ties = topp_.threshold >= floor;
    floor = std::max(floor, topp_.threshold);
  }
  uint64_t total = mass_weights(l, m, inverse_temperature(p.temperature), floor, scale, scratch_);
  if (cut_ties && !topp_.tied_out.empty()) total = remove_weights(topp_.tied_out, total, scratch_);
  return static_cast<int32_t>(pick(scratch_, total, u));
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history, Logprobs* out,
                        size_t n_top) {
  check(logits.size() == static_cast<size_t>(n_vocab_), Status::invalid_argument,
        "sampler: {} logits given for a vocabulary of {}", logits.size(), n_vocab_);
  const SamplerParams& p = params_;

  // 0-2: the adjusted logits l' (a copy only when something changes them)
  std::span<const float> l = logits;
  const bool penalize = p.penalties_active() && !history.empty();
  if (grammar_ != nullptr || !bias_.empty() || penalize) {
    adjusted_.resize(logits.size());
    if (grammar_ != nullptr) {  // the copy and the mask in one pass
      check(!grammar_->ended(), Status::state, "grammar: the text is complete (an end token was accepted)");
      check(grammar_->fill_mask(mask_) > 0, Status::state,
            "grammar: no token of the vocabulary can continue the text after its {} bytes (the grammar "
            "asks for something no token spells, or is complete and the model has no end token)",
            grammar_->n_bytes());
      copy_with_grammar_mask(logits, mask_, adjusted_);
    } else {
      std::memcpy(adjusted_.data(), logits.data(), logits.size() * sizeof(float));
    }
    apply_logit_bias(adjusted_, bias_);
    if (penalize) {
      const size_t w = p.repeat_last_n < 0 ? history.size()
                                           : std::min(history.size(), static_cast<size_t>(p.repeat_last_n));
      apply_penalties(adjusted_, history.last(w), p.repeat_penalty, p.frequency_penalty, p.presence_penalty,
                      window_);
    }
    l = adjusted_;
  }

  int32_t token = -1;
  if (p.temperature == 0.0f) {
    token = argmax_logit(l);  // greedy: truncation cannot change the argmax
  } else {
    const double u = sampler_uniform(p.seed, history.size());
    if (p.top_k > 0) {
      // 3: the top-k candidate list (sorted); 4-7 on it
      select_top_k(l, static_cast<size_t>(p.top_k), cands_);
      token = draw_top_k(u);
    } else if (const float m = max_logit(l); m > kNegInf) {
      token = draw_vocabulary(l, m, u);
    }
  }
  check_sampled(token);
  if (grammar_ != nullptr) grammar_->accept(token);

  if (out != nullptr) {
    // log_softmax(l') over the whole vocabulary
    const float m = max_logit(l);
    const double lse = static_cast<double>(m) + std::log(sum_exp(l, m, scratch_));
    out->logprob = static_cast<float>(static_cast<double>(l[static_cast<size_t>(token)]) - lse);
    out->top.clear();
    if (n_top > 0) {
      select_top_k(l, n_top, cands_);
      for (const Candidate& c : cands_)
        out->top.push_back({c.id, static_cast<float>(static_cast<double>(c.logit) - lse)});
    }
  }
  return token;
}

}  // namespace paca
