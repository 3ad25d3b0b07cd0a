// stop.h - when a generation ends: token-level stop conditions (the model's
// EOS/EOT/EOM ids, the caller's stop ids, a maximum number of new tokens) and
// the text-level stop-string matcher.
//
// The matcher works on text only (pieces of detokenized text in, text safe
// to show out), so it sits after the streaming detokenizer:
//
//   token -> detokenizer -> piece -> StopStringMatcher::feed -> text to the caller
//
// It holds back the longest suffix of the text seen so far that could be the
// start of a stop string, so a stop string split across any number of pieces
// is caught and none of its bytes is ever emitted. At the first point in the
// text where a stop string is complete (the earliest end; ties: the earliest
// start, then the lower index) it emits the text before that stop string and
// stops; everything after is dropped. So the result does not depend on how
// the text was cut into pieces. When the generation ends for another reason,
// flush() hands out what was held back.
//
// Matching is on bytes. When the pieces and the stop strings are valid UTF-8
// the emitted text never ends inside a code point: a held suffix starts where
// a stop string starts, i.e. on a code point boundary.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace paca {

// Values mirror paca_stop_reason in paca.h.
enum class StopReason : int {
  none = 0,
  eos = 1,           // the model's EOS / EOT / EOM token
  stop_token = 2,    // one of the caller's stop token ids
  stop_string = 3,   // one of the caller's stop strings
  max_tokens = 4,    // the maximum number of new tokens
  context_full = 5,  // the session's context is full
};

// "none", "eos", "stop_token", "stop_string", "length", "context_full".
const char* stop_reason_name(StopReason r);

struct StopConditions {
  std::vector<int32_t> eos_ids;   // the model's end ids (EOS, EOT, EOM)
  bool ignore_eos = false;        // generate past them
  std::vector<int32_t> stop_ids;  // the caller's stop ids
  uint64_t max_new_tokens = 0;    // 0: no limit

  // Why to stop after `token` was generated as new token number
  // n_generated (1-based), or none. Precedence: eos, stop_token, max_tokens.
  StopReason check(int32_t token, uint64_t n_generated) const;
};

class StopStringMatcher {
 public:
  // Throws Error(invalid_argument) for an empty stop string. No stop
  // strings: every piece passes straight through.
  explicit StopStringMatcher(std::vector<std::string> stops);

  struct Result {
    std::string_view text;  // emit this; valid until the next call on the matcher
    int stop_index;         // index of the stop string that matched, or -1
  };

  // Feeds the next piece of text. After a match every later feed returns no
  // text and the same stop_index, until reset().
  Result feed(std::string_view piece);
  // The generation ended without a stop string: returns the held-back text
  // (valid until the next call) and forgets it. After a match: empty.
  std::string_view flush();
  // Forgets the held text and the match; ready for a new generation.
  void reset();

  int stop_index() const { return stopped_; }
  size_t held_bytes() const { return pending_.size(); }
  const std::vector<std::string>& stops() const { return stops_; }

 private:
  std::vector<std::string> stops_;
  size_t max_len_ = 0;
  std::string pending_;  // the held suffix (could be the start of a stop string)
  std::string out_;      // the text of the last result
  int stopped_ = -1;
};

}  // namespace paca
