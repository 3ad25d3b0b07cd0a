// tokenizer_fuzz_common.h - what every tokenizer fuzz target does with a
// tokenizer that loaded: encode a few texts and decode ids, checking the
// invariants (ids in range, decoded text valid UTF-8, streaming equals
// whole decoding). A violation traps (libFuzzer reports a crash).
#pragma once

#include <span>
#include <string>
#include <string_view>

#include "fuzz_common.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"
#include "tokenizer/utf8.h"

namespace paca::fuzz {

inline void exercise(const Tokenizer& t, std::string_view text) {
  for (int mode = 0; mode < 4; ++mode) {
    EncodeOptions eo;
    eo.add_special = mode & 1;
    eo.parse_special = mode & 2;
    std::vector<int32_t> ids = t.encode(text, eo);
    for (int32_t id : ids) require(id >= 0 && id < t.n_tokens());
    DecodeOptions dopt;
    dopt.render_special = eo.parse_special;
    std::string whole = t.decode(ids, dopt);
    require(utf8_valid(whole));
    TextStream stream(t, dopt);
    std::string streamed, piece;
    for (int32_t id : ids) {
      piece.clear();
      stream.push(id, piece);
      require(utf8_valid(piece));
      streamed += piece;
    }
    stream.flush(streamed);
    require(streamed == whole);
    if (t.options().byte_level && eo.parse_special && !eo.add_special) require(whole == utf8_sanitize(text));
  }
}

inline void exercise(const Tokenizer& t) {
  exercise(t, "Hello world! I'm 12345 \xE4\xBD\xA0\xE5\xA5\xBD  \n\n <s><|eot_id|>\xFF");
  std::vector<int32_t> all;
  for (int32_t id = 0; id < t.n_tokens() && id < 4096; ++id) all.push_back(id);
  require(utf8_valid(t.decode(all, {.render_special = true})));
}

}  // namespace paca::fuzz
