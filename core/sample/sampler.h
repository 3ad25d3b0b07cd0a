// sampler.h - the sampler chain: logits of one position -> one token id, and
// optionally log-probabilities.
//
// The chain, in this order (each stage sees only what the previous one kept):
//   0. grammar          with a grammar (set_grammar), the tokens it does not
//                       allow next get -inf (grammar/matcher.h); the chosen
//                       token then advances the grammar's state. No token
//                       allowed is Error(state) naming the grammar.
//   1. logit bias       l_i += bias_i for the ids given (bias -inf bans a token)
//   2. penalties        over the last repeat_last_n tokens of the sequence
//                       (-1: all of it, 0: none). For each distinct token t
//                       seen c_t times there: repetition (CTRL / llama.cpp
//                       style) l_t = l_t > 0 ? l_t / r : l_t * r, then
//                       frequency/presence (OpenAI style)
//                       l_t -= c_t * frequency_penalty + presence_penalty.
//   The result l' is "the adjusted logits". The candidates are the tokens
//   whose l' is finite and > -inf (NaN counts as -inf: never chosen).
//   3. top-k            keep the k largest l' (0: off; k >= size: no-op).
//   4. top-p (nucleus)  p_i = softmax(l') over the candidates left; keep the
//                       shortest run of most probable tokens (ties: lower id
//                       first) whose mass is >= top_p (1: off). At least one
//                       token stays.
//   5. min-p            keep p_i >= min_p * p_max, i.e. l'_i >= l'_max + ln(min_p)
//                       (0: off).
//   6. temperature T    q_i = exp((l'_i - l'_max) / T) / sum over the candidates left.
//   7. draw             u = sampler_uniform(seed, position) in [0, 1); the
//                       token is the first candidate at which the running sum
//                       of q passes u, walking in order of decreasing l' after
//                       top-k, in token id order otherwise. (Any fixed order
//                       gives the same distribution.)
//   T = 0 is greedy: the token with the largest l' (ties: the lowest id);
//   truncation cannot change that token, so stages 3-7 are skipped.
//
// Log-probabilities are those of the adjusted logits l' (after the grammar,
// bias and penalties, before truncation and temperature): log_softmax(l') over the
// whole vocabulary. They describe what the model (with the caller's bias and
// penalties) thinks, not the truncated distribution that was sampled, so a
// token outside the nucleus still has its finite log-probability.
//
// Cost per token, for a vocabulary of n (no stage sorts the vocabulary):
//   - greedy: one pass (argmax); top-k: one pass with a rising threshold,
//     then work on k candidates only;
//   - a bias or a penalty: one memcpy of the logits, then O(window) updates;
//   - top-p or min-p without top-k: one vectorized exp pass (the mass) and
//     one top-256 pass; when the truncated set is among those 256 (usual for
//     a model that is fairly sure), the rest works on them only. Otherwise a
//     histogram of the mass over 2048 logit bins (one pass), one pass
//     collecting the bin that holds the cut and a weighted quickselect
//     (expected linear) inside it; the cut becomes a floor on the logits for
//     the draw (one more exp pass);
//   - temperature without truncation: one vectorized exp pass;
//   - log-probabilities: one more vectorized exp pass (+ a top-k pass for
//     the alternatives).
//
// Weights. Every stage that weighs tokens (top-p, the draw) weighs token i of
// a list of n by the integer mass q_i = floor(w_i * 2^s), w_i =
// fast_exp((l'_i - l'_max) / T) (fast_exp: about 2 ulp, float, 1 at the
// maximum), s = mass_shift(n) (52 for n <= 1024, 45 for Llama 3's 128,256):
// sums of masses are exact in 64 bits whatever their order, so the nucleus
// and the draw are defined exactly (no rounding decides them), and a backend
// may add up a vocabulary's mass on a device (logit_mass) and let the host
// finish from the best few candidates (sample_best) with the same token. A
// token less likely than 2^-s of the most likely one weighs 0: for a 128,256
// vocabulary all such tokens together hold less than 4e-9 of the mass.
// Log-probabilities use the float weights summed in double.
//
// A Sampler has no random state: the draw depends only on (seed, position),
// position being the index the new token will have (history.size()). It
// keeps scratch buffers, so one Sampler is used by one thread at a time.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <utility>
#include <vector>

#include "grammar/matcher.h"
#include "sample/candidates.h"

namespace paca {

struct SamplerParams {
  float temperature = 0.0f;       // >= 0; 0 = greedy
  int32_t top_k = 0;              // >= 0; 0 = off
  float top_p = 1.0f;             // (0, 1]; 1 = off
  float min_p = 0.0f;             // [0, 1]; 0 = off
  float repeat_penalty = 1.0f;    // > 0; 1 = off
  float frequency_penalty = 0.0f; // finite; 0 = off
  float presence_penalty = 0.0f;  // finite; 0 = off
  int32_t repeat_last_n = 64;     // >= -1; -1 = the whole sequence, 0 = off
  uint64_t seed = 0;

  // Throws Error(invalid_argument) naming the first invalid field.
  void validate() const;
  bool penalties_active() const {
    return repeat_last_n != 0 && (repeat_penalty != 1.0f || frequency_penalty != 0.0f || presence_penalty != 0.0f);
  }
};

struct TokenLogprob {
  int32_t token = -1;
  float logprob = 0.0f;
};

// What sample() reports beside the token when asked.
struct Logprobs {
  float logprob = 0.0f;           // log p(chosen token) under log_softmax(l')
  std::vector<TokenLogprob> top;  // the most probable tokens, most probable first (ties: lower id)
};


// ---- the stages, exposed for tests and benchmarks --------------------------

// The index of the largest logit (ties: lowest index), or -1 when none is > -inf.
int32_t argmax_logit(std::span<const float> logits);


// Stage 0, fused with the copy of the logits the later stages change:
// dst[i] = src[i] (its bits) where bit i % 64 of word i / 64 of `mask` (as
// GrammarMatcher::fill_mask gives it) is set or i is past the mask's end,
// -inf where it is clear. One pass: words of 64 allowed tokens are copied,
// words of none filled, mixed ones taken a byte (8 logits) at a time.
// dst.size() must equal src.size().
void copy_with_grammar_mask(std::span<const float> src, std::span<const uint64_t> mask, std::span<float> dst);

// Applies bias (sorted by id, ids unique and in range) to `logits` in place.
void apply_logit_bias(std::span<float> logits, std::span<const std::pair<int32_t, float>> bias);

// Applies the repetition, frequency and presence penalties for the tokens in
// `window` (ids outside the vocabulary are ignored). `scratch` is reused.
void apply_penalties(std::span<float> logits, std::span<const int32_t> window, float repeat_penalty,
                     float frequency_penalty, float presence_penalty, std::vector<int32_t>& scratch);

// Scratch buffers of the stages below, reused across calls.
struct WeightedCandidate {
  float logit;
  int32_t id;
  uint64_t mass;  // token_mass(logit, max, 1, scale)
};
struct SampleScratch {
  std::vector<float> weights;        // [n] float softmax weights (log-probabilities)
  std::vector<uint64_t> mass;        // [n] the masses q_i
  std::vector<uint64_t> block_mass;  // [n / 256] the masses of each block, summed
  std::vector<float> logits;         // logits of a candidate list, contiguous
  std::vector<WeightedCandidate> weighted;
  std::vector<uint64_t> bins;        // mass histogram of top-p
};

// The mass the nucleus must reach: ceil(top_p * total), at least 1.
uint64_t nucleus_target(uint64_t total, float top_p);

// How many of `sorted` (by candidate_before, non-empty) top-p keeps.
size_t top_p_keep(std::span<const Candidate> sorted, float top_p);

// top-p over a whole vocabulary of logits (not sorted; max_logit is their
// maximum, finite), as a cut: the nucleus is every token with a logit above
// `threshold`, and those equal to it except `tied_out` (the ties that come
// after the last token kept, in id order). No sort of the vocabulary: see the
// cost notes above.
struct TopPCut {
  float threshold = 0.0f;
  std::vector<int32_t> tied_out;
};
void top_p_cut(std::span<const float> logits, float max_logit, float top_p, TopPCut& out, SampleScratch& scratch);

// The smallest float f with f >= max_logit + ln(min_p) computed in double
// (-inf for min_p 0): min-p keeps exactly the logits >= f.
float min_p_floor(float max_logit, float min_p);

// Index into `logits` drawn with the masses of exp((l - max_logit) /
// temperature) for l >= floor (0 below, and for -inf/NaN) by the uniform u
// in [0, 1): the first index, walking in index order, at which the running
// mass passes floor(u * total). max_logit is the maximum of logits (finite).
// Returns -1 when every mass is 0.
int64_t draw_index(std::span<const float> logits, float max_logit, float temperature, float floor, double u,
                   SampleScratch& scratch);

// ---- the chain -------------------------------------------------------------

class Sampler {
 public:
  // Throws Error(invalid_argument) for invalid params or n_vocab <= 0.
  Sampler(const SamplerParams& params, int32_t n_vocab);

  const SamplerParams& params() const { return params_; }
  // The bias table: (id, bias) sorted by id, unique.
  const std::vector<std::pair<int32_t, float>>& logit_bias() const { return bias_; }
  int32_t n_vocab() const { return n_vocab_; }

  // Replaces the whole bias table (empty clears it). ids in [0, n_vocab);
  // biases finite or -inf. A repeated id: the last entry wins. Throws
  // Error(invalid_argument) and leaves the table unchanged on bad input.
  void set_logit_bias(std::span<const int32_t> ids, std::span<const float> biases);

  // The grammar constraint (stage 0), or none (null). Its vocabulary must
  // have n_vocab tokens (else Error(invalid_argument)). Each sample() then
  // advances it by the token chosen: one sample() per token of the text.
  void set_grammar(std::unique_ptr<GrammarMatcher> grammar);
  GrammarMatcher* grammar() const { return grammar_.get(); }

  // Samples the token at position history.size() of a sequence whose tokens
  // so far are `history`, from `logits` (n_vocab floats). When `out` is not
  // null it receives the chosen token's log-probability and the n_top
  // (clamped to the number of finite logits) most probable tokens. Throws
  // Error(invalid_argument) when logits.size() != n_vocab or no token is
  // left with a finite adjusted logit.
  int32_t sample(std::span<const float> logits, std::span<const int32_t> history, Logprobs* out = nullptr,
                 size_t n_top = 0);

  // Sampling from the best candidates only, so that logits kept on a device
  // need not be read whole (a backend finds the k best; see Backend::top_k).
  // best_needed() is how many of the best adjusted logits the chain asks
  // for: 1 for greedy; top_k for top-k sampling with top_k <= kMaxBest;
  // kMaxBest for top-p or min-p without top-k, whose truncated set is
  // usually far smaller than the vocabulary (top-p then also needs the
  // vocabulary's mass: mass_needed()); 0 when the whole vocabulary is needed
  // (a grammar, a logit bias, active penalties, temperature without
  // truncation, log-probabilities, which normalise over every token).
  // sample_best(best, history, mass) then gives exactly the token sample()
  // gives for the same logits and history, or -1 when the best do not hold
  // the whole truncated set (top-p or min-p without top-k: the caller then
  // samples from all the logits). best must be select_top_k(logits,
  // best_needed()) (sorted by candidate_before, -inf and NaN left out) and
  // mass logit_mass(logits, best[0].logit) when mass_needed(). Throws
  // Error(invalid_argument) when best is empty (no finite logit) and
  // Error(internal) when best_needed() is 0 or best is longer.
  static constexpr size_t kMaxBest = 256;
  size_t best_needed(bool want_logprobs) const;
  bool mass_needed() const;
  int32_t sample_best(std::span<const Candidate> best, std::span<const int32_t> history, uint64_t mass = 0);

 private:
  SamplerParams params_;
  int32_t n_vocab_;
  std::vector<std::pair<int32_t, float>> bias_;  // sorted by id, unique
  std::unique_ptr<GrammarMatcher> grammar_;      // stage 0, or null
  std::vector<uint64_t> mask_;                   // [n_vocab / 64] the grammar's allowed tokens
  // scratch, reused across calls
  std::vector<float> adjusted_;        // [n_vocab] when a bias or a penalty is active
  std::vector<int32_t> window_;        // sorted copy of the penalty window
  std::vector<Candidate> cands_;       // the candidate list of the chain
  std::vector<Candidate> best_;        // the best kMaxBest (top-p or min-p without top-k)
  // stages 4-7 on cands_ (sorted, the top-k list): the token, or -1
  int32_t draw_top_k(double u);
  // stages 4-7 without top-k from the best candidates and the mass (see
  // sample_best): the token, or -1 when they do not hold the truncated set
  int32_t draw_truncated_best(std::span<const Candidate> best, uint64_t mass, double u);
  // stages 4-7 without top-k over the whole vocabulary (l's maximum m is
  // finite): from the best when the truncated set is among them, else by
  // floors on the logits; the token, or -1
  int32_t draw_vocabulary(std::span<const float> l, float m, double u);
  SampleScratch scratch_;
  TopPCut topp_;
};

}  // namespace paca
