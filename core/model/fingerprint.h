// fingerprint.h - a 64-bit identity of a loaded model, so that state computed
// with one model (a session snapshot) is never loaded into another.
#pragma once

#include <cstdint>

#include "model/checkpoint.h"

namespace paca {

// Hash of what decides the model's numbers: the normalized configuration
// (dims, rope, norm eps, special ids; not the name or the file format), the
// tokenizer (every token's text, piece, score and type, the special ids), the
// tensor table (canonical names, dtypes, shapes, FP8 activation treatment)
// and a sample of each tensor's bytes (its first, middle and last 64 bytes, so
// two random-weight models of one shape differ). Cheap: it never reads all
// weights. Stable across runs and machines of the same library version.
uint64_t model_fingerprint(const Checkpoint& ckpt);

}  // namespace paca
