// candidates.h - what the sampler and the backends agree on: the order of
// candidate tokens, the k best of a vocabulary's logits, and the integer
// masses that weigh them (sampler.h explains the masses; a device adds up a
// vocabulary's mass with the same rules, Backend::top_k). Defined in
// sampler.cpp. A leaf header: backends include it, never the sampler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

namespace paca {

// A token and its (adjusted) logit, the unit of the candidate list.
struct Candidate {
  int32_t id;
  float logit;
};

// Orders candidates by decreasing logit, ties by increasing id.
inline bool candidate_before(const Candidate& a, const Candidate& b) {
  return a.logit > b.logit || (a.logit == b.logit && a.id < b.id);
}

// Replaces `out` by the k best finite logits (fewer when fewer are finite;
// none for k = 0), sorted by candidate_before. One pass with a rising
// threshold; no vocabulary sort.
void select_top_k(std::span<const float> logits, size_t k, std::vector<Candidate>& out);

// The shift s of the masses of a list of n tokens: min(52, 62 - ceil(log2 n)),
// so that n masses of at most 2^s add up below 2^62.
int mass_shift(size_t n);
inline double mass_scale(size_t n) { return static_cast<double>(uint64_t{1} << mass_shift(n)); }
// floor(fast_exp((logit - max_logit) * inv_t) * scale) (0 for -inf and NaN).
// The product is exact in double (a float times a power of two).
uint64_t token_mass(float logit, float max_logit, float inv_t, double scale);
// The mass of a whole vocabulary at temperature 1: the sum of
// token_mass(l_i, max_logit, 1, mass_scale(n)). What a backend reports with
// the best candidates (Backend::top_k) for top-p without top-k.
uint64_t logit_mass(std::span<const float> logits, float max_logit);

}  // namespace paca
