// sampler.cpp - see sampler.h for the chain, its order and its distributions.
#include "sample/sampler.h"

#include <algorithm>
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
// -inf and NaN), summed per block of kSumBlock in 8 float lanes and across
// blocks in double. Returns the total; fills scratch.weights/block_sums.
// The loops vectorize (this file is built with -fno-trapping-math, which lets
// the compiler turn the float compares into selects); on x86-64 an AVX2 clone
// is chosen at load time. Without FMA contraction (ISO C++ mode) both clones
// compute bit-identical weights and sums.
#if defined(__x86_64__) && defined(__ELF__) && defined(__GNUC__)
#define PACA_SAMPLER_CLONES __attribute__((target_clones("avx2", "default")))
#else
#define PACA_SAMPLER_CLONES
#endif
constexpr size_t kSumBlock = 256;
PACA_SAMPLER_CLONES double exp_weights_into(const float* x, size_t n, float m, float inv_t, float floor, float* w,
                                            double* block_sums) {
  double total = 0;
  for (size_t b = 0; b < n; b += kSumBlock) {
    const size_t e = std::min(n, b + kSumBlock);
    for (size_t i = b; i < e; ++i) {
      const float v = fast_exp((x[i] - m) * inv_t);
      w[i] = x[i] >= floor ? v : 0.0f;
    }
    float lanes[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    size_t i = b;
    for (; i + 8 <= e; i += 8)
      for (size_t j = 0; j < 8; ++j) lanes[j] += w[i + j];
    double sum = 0;
    for (; i < e; ++i) sum += w[i];
    for (float v : lanes) sum += v;
    block_sums[b / kSumBlock] = sum;
    total += sum;
  }
  return total;
}

double exp_weights(std::span<const float> l, float m, float inv_t, float floor, SampleScratch& s) {
  s.weights.resize(l.size());
  s.block_sums.resize((l.size() + kSumBlock - 1) / kSumBlock);
  return exp_weights_into(l.data(), l.size(), m, inv_t, floor, s.weights.data(), s.block_sums.data());
}

// Walks the weights of exp_weights to the index where the running sum passes
// u * total: whole blocks first, then one block element by element.
int64_t pick(const SampleScratch& s, double total, double u) {
  const size_t n = s.weights.size();
  if (!(total > 0)) return -1;
  const double target = u * total;
  double cum = 0;
  size_t b = 0;
  while (b + 1 < s.block_sums.size() && cum + s.block_sums[b] <= target) cum += s.block_sums[b++];
  int64_t last = -1;
  for (size_t i = b * kSumBlock; i < n; ++i) {
    if (!(s.weights[i] > 0.0f)) continue;
    cum += s.weights[i];
    last = static_cast<int64_t>(i);
    if (cum > target) return last;
  }
  if (last >= 0) return last;  // rounding left the target at the very end
  for (size_t i = n; i-- > 0;)
    if (s.weights[i] > 0.0f) return static_cast<int64_t>(i);
  return -1;
}

// Sets the weights of `ids` to 0 and recomputes the sums of their blocks;
// returns the new total.
double remove_weights(std::span<const int32_t> ids, SampleScratch& s) {
  for (int32_t id : ids) s.weights[static_cast<size_t>(id)] = 0.0f;
  for (int32_t id : ids) {
    const size_t b = static_cast<size_t>(id) / kSumBlock;
    const size_t e = std::min(s.weights.size(), (b + 1) * kSumBlock);
    double sum = 0;
    for (size_t i = b * kSumBlock; i < e; ++i) sum += s.weights[i];
    s.block_sums[b] = sum;
  }
  double total = 0;
  for (double v : s.block_sums) total += v;
  return total;
}

// 1/T, bounded so that (l - max) * inv_t is 0 (weight 1) at the maximum
// instead of 0 * inf.
float inverse_temperature(float t) { return static_cast<float>(std::min(1.0 / static_cast<double>(t), 1e30)); }

bool weighted_before(const WeightedCandidate& a, const WeightedCandidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Reorders v so that v[0, k) are its k best (weighted_before), k the
// smallest with weight sum >= target (v.size() when the sum never gets
// there), and returns k. Quickselect on weights: partition around a
// median-of-three pivot, keep the side that holds the cut. Expected linear.
size_t weighted_select(std::vector<WeightedCandidate>& v, double target) {
  size_t lo = 0, hi = v.size();  // v[0, lo) are kept (mass acc); the cut is in (lo, hi]
  double acc = 0;
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
    double s = 0;
    for (size_t i = lo; i < j; ++i) s += v[i].weight;
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
    acc += v[j].weight;
    if (acc >= target) return j + 1;
    lo = j + 1;
  }
  std::sort(v.begin() + static_cast<ptrdiff_t>(lo), v.begin() + static_cast<ptrdiff_t>(hi), weighted_before);
  for (size_t i = lo; i < hi; ++i) {
    acc += v[i].weight;
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

size_t top_p_keep(std::span<const Candidate> sorted, float top_p) {
  const size_t n = sorted.size();
  if (top_p >= 1.0f || n <= 1) return n;
  const double m = sorted[0].logit;
  double z = 0;
  for (const Candidate& c : sorted) z += std::exp(static_cast<double>(c.logit) - m);
  const double target = static_cast<double>(top_p) * z;
  double cum = 0;
  for (size_t i = 0; i < n; ++i) {
    cum += std::exp(static_cast<double>(sorted[i].logit) - m);
    if (cum >= target) return i + 1;
  }
  return n;
}

void top_p_cut(std::span<const float> logits, float max_logit, float top_p, TopPCut& out, SampleScratch& scratch) {
  out.tied_out.clear();
  const size_t n = logits.size();
  const float* x = logits.data();
  const double target = static_cast<double>(top_p) * exp_weights(logits, max_logit, 1.0f, kNegInf, scratch);
  const float* w = scratch.weights.data();
  // A histogram of the mass over kBins equal bins of logit, from the maximum
  // down to the smallest logit with weight: the bins above the one where the
  // running mass reaches the target are kept whole; only the tokens of that
  // bin need ordering (a weighted quickselect).
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
  std::vector<double>& mass = scratch.bins;
  mass.assign(kBins, 0.0);
  for (size_t i = 0; i < n; ++i)
    if (w[i] > 0.0f) mass[bin_of(x[i])] += w[i];
  size_t cut = 0;
  double acc = 0;
  while (cut + 1 < kBins && acc + mass[cut] < target) acc += mass[cut++];
  // the tokens of the cut's bin, ordered just enough to find the last one kept
  std::vector<WeightedCandidate>& v = scratch.weighted;
  v.clear();
  auto take = [&](size_t i) {
    if (w[i] > 0.0f && bin_of(x[i]) == cut) v.push_back({x[i], static_cast<int32_t>(i), w[i]});
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
  if (v.empty()) {  // only when rounding left the target beyond the last bin: keep every token with weight
    out.threshold = lo;
    return;
  }
  const size_t keep = std::max<size_t>(1, weighted_select(v, target - acc));
  const WeightedCandidate last = *std::max_element(v.begin(), v.begin() + static_cast<ptrdiff_t>(keep), weighted_before);
  out.threshold = last.logit;
  for (size_t i = keep; i < v.size(); ++i)
    if (v[i].logit == last.logit) out.tied_out.push_back(v[i].id);  // ties after the last one kept
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
  const double total = exp_weights(logits, max_logit, inverse_temperature(temperature), floor, scratch);
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
  if (want_logprobs || !bias_.empty() || p.penalties_active()) return 0;
  if (p.temperature == 0.0f) return 1;
  return p.top_k > 0 && static_cast<size_t>(p.top_k) <= kMaxBest ? static_cast<size_t>(p.top_k) : 0;
}

int32_t Sampler::sample_best(std::span<const Candidate> best, std::span<const int32_t> history) {
  const size_t k = best_needed(false);
  check(k > 0 && best.size() <= k, Status::internal, "sampler: {} best candidates given where {} are needed",
        best.size(), k);
  int32_t token = -1;
  if (params_.temperature == 0.0f) {
    if (!best.empty()) token = best[0].id;
  } else {
    cands_.assign(best.begin(), best.end());
    token = draw_top_k(sampler_uniform(params_.seed, history.size()));
  }
  check_sampled(token);
  return token;
}

int32_t Sampler::sample(std::span<const float> logits, std::span<const int32_t> history, Logprobs* out,
                        size_t n_top) {
  check(logits.size() == static_cast<size_t>(n_vocab_), Status::invalid_argument,
        "sampler: {} logits given for a vocabulary of {}", logits.size(), n_vocab_);
  const SamplerParams& p = params_;

  // 1-2: the adjusted logits l' (a copy only when something changes them)
  std::span<const float> l = logits;
  const bool penalize = p.penalties_active() && !history.empty();
  if (!bias_.empty() || penalize) {
    adjusted_.resize(logits.size());
    std::memcpy(adjusted_.data(), logits.data(), logits.size() * sizeof(float));
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
      // 4: top-p over the whole vocabulary as a floor on the logits (plus
      // the ties at the floor that fall outside); 5-7: min-p (another
      // floor), temperature and the draw, in token id order
      float floor = min_p_floor(m, p.min_p);
      bool cut_ties = false;
      if (p.top_p < 1.0f) {
        top_p_cut(l, m, p.top_p, topp_, scratch_);
        cut_ties = topp_.threshold >= floor;
        floor = std::max(floor, topp_.threshold);
      }
      double total = exp_weights(l, m, inverse_temperature(p.temperature), floor, scratch_);
      if (cut_ties && !topp_.tied_out.empty()) total = remove_weights(topp_.tied_out, scratch_);
      const int64_t i = pick(scratch_, total, u);
      if (i >= 0) token = static_cast<int32_t>(i);
    }
  }
  check_sampled(token);

  if (out != nullptr) {
    // log_softmax(l') over the whole vocabulary
    const float m = max_logit(l);
    const double lse = static_cast<double>(m) + std::log(exp_weights(l, m, 1.0f, kNegInf, scratch_));
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
