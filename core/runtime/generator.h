// generator.h - one generation on a Session, pulled a token at a time:
//
//   logits -> Sampler -> token -> StopConditions (eos, stop ids, max tokens)
//                              -> TextStream (UTF-8-safe pieces)
//                              -> StopStringMatcher (stop strings) -> text to the caller
//
// This is the loop `paca run` runs, written once so that every binding gets
// the same tokens and the same text for the same request. Each next() samples
// one token from the session's last logits and reports it with the text it
// completes; when the generation goes on, the token is appended to the
// session (one decode step), so the next logits are ready. The token that
// ends the generation is reported but not run through the model (it is not
// appended to the session); a stop string's token is not either. The text of
// the step that ends the generation includes everything still held back by
// the detokenizer and the matcher, so nothing is lost.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "runtime/session.h"
#include "sample/sampler.h"
#include "sample/stop.h"
#include "tokenizer/detokenizer.h"

namespace paca {

struct GenerateOptions {
  std::vector<std::string> stop_strings;  // need a tokenizer
  bool logprobs = false;                  // compute each token's log-probability
  size_t n_top_logprobs = 0;              // and this many alternatives
  bool render_special = false;            // control tokens appear in the text as their text
};

class Generator {
 public:
  // session, sampler and stop must outlive the generator. tok may be null
  // (a model without a tokenizer): then every piece of text is empty and
  // stop strings are refused (Error(state)). bos_id decides whether the
  // session's tokens are a text to continue (any token that is not BOS):
  // then the first generated word keeps its leading space, as `paca run` does.
  Generator(Session& session, Sampler& sampler, const StopConditions& stop, const Tokenizer* tok, int32_t bos_id,
            GenerateOptions opt);

  struct Step {
    int32_t token;          // -1: the generation had already ended
    std::string_view text;  // valid until the next call
  };

  // The next token and its text. Throws on a failed decode step (the
  // generation then ends with the session as it was before that step).
  Step next();

  // The same without the decode step: when the generation goes on, the
  // caller must append the returned token to the session (e.g. in a batched
  // step with other sessions, Session::step_batch) before the next call.
  Step next_deferred();

  // next() for several generators (on distinct sessions of one model) at
  // once: each samples its token, and those that go on are appended to their
  // sessions in one batched forward step (Session::step_batch). A token gets
  // the same logits, so the same draw, as with next(). out[i] is gens[i]'s
  // step. If the batched step fails, every generator that was to take a
  // token fails as next() would.
  static void next_batch(std::span<Generator* const> gens, std::span<Step> out);

  StopReason stop_reason() const { return reason_; }
  bool done() const { return reason_ != StopReason::none; }
  size_t n_generated() const { return n_generated_; }
  // The last token's log-probabilities (only with GenerateOptions::logprobs).
  const Logprobs& logprobs() const { return logprobs_; }
  bool logprobs_enabled() const { return opt_.logprobs; }

 private:
  Step step(bool feed);
  void emit(std::string_view piece);
  void finish(StopReason why);

  Session& session_;
  Sampler& sampler_;
  const StopConditions& stop_;
  GenerateOptions opt_;
  std::unique_ptr<TextStream> detok_;  // null without a tokenizer
  StopStringMatcher matcher_;
  std::string text_;      // the text of the current step
  std::string scratch_;   // detokenizer output
  Logprobs logprobs_;
  size_t n_generated_ = 0;
  bool failed_ = false;  // a decode step threw: the generation cannot go on
  size_t fed_length_ = 0;  // after next_deferred: the session length once the token is appended
  int32_t pending_ = -1;   // next_batch: the token being appended
  StopReason reason_ = StopReason::none;
};

}  // namespace paca
