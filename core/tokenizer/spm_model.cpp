// spm_model.cpp - SentencePiece's tokenizer.model, a protobuf ModelProto.
// A minimal wire-format reader (bounds-checked varints, lengths and fixed32)
// pulls out only what encoding needs:
//   ModelProto      1 pieces (repeated SentencePiece), 2 trainer_spec, 3 normalizer_spec
//   SentencePiece   1 piece (string), 2 score (float), 3 type (enum, default NORMAL)
//   TrainerSpec     3 model_type (BPE = 2), 35 byte_fallback, 40 unk_id, 41 bos_id, 42 eos_id, 43 pad_id
//   NormalizerSpec  1 name, 3 add_dummy_prefix (default true)
// Everything else is skipped. The normalizer is taken as identity (Llama 2's;
// like llama.cpp, remove_extra_whitespaces is not applied).
#include <cstring>

#include "format/config.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace paca {

namespace {

class Proto {
 public:
  Proto(std::span<const uint8_t> b, const std::string& what, const char* msg) : b_(b), what_(what), msg_(msg) {}
  bool done() const { return pos_ >= b_.size(); }

  uint64_t varint() {
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
      check(pos_ < b_.size(), Status::format, "{}: truncated varint in {}", what_, msg_);
      uint8_t c = b_[pos_++];
      v |= static_cast<uint64_t>(c & 0x7F) << shift;
      if (c < 0x80) return v;
    }
    fail(Status::format, "{}: varint longer than 10 bytes in {}", what_, msg_);
  }
  // Next field: returns false at the end; sets field number and wire type.
  bool next(uint32_t* field, uint32_t* wire) {
    if (done()) return false;
    uint64_t key = varint();
    *field = static_cast<uint32_t>(key >> 3);
    *wire = static_cast<uint32_t>(key & 7);
    check(*field != 0 && key >> 3 <= 0x1FFFFFFF, Status::format, "{}: invalid field number in {}", what_, msg_);
    return true;
  }
  std::span<const uint8_t> bytes() {
    uint64_t n = varint();
    check(n <= b_.size() - pos_, Status::format, "{}: a field of {} bytes runs past the end of {}", what_, n, msg_);
    auto s = b_.subspan(pos_, n);
    pos_ += n;
    return s;
  }
  float fixed32_float() {
    check(b_.size() - pos_ >= 4, Status::format, "{}: truncated float in {}", what_, msg_);
    float f;
    std::memcpy(&f, b_.data() + pos_, 4);
    pos_ += 4;
    return f;
  }
  void skip(uint32_t wire) {
    switch (wire) {
      case 0: varint(); break;
      case 1: advance(8); break;
      case 2: bytes(); break;
      case 5: advance(4); break;
      default: fail(Status::format, "{}: unsupported protobuf wire type {} in {}", what_, wire, msg_);
    }
  }
  void expect(uint32_t wire, uint32_t want, const char* field) {
    check(wire == want, Status::format, "{}: {}.{} has wire type {}, expected {}", what_, msg_, field, wire, want);
  }

 private:
  void advance(size_t n) {
    check(b_.size() - pos_ >= n, Status::format, "{}: truncated field in {}", what_, msg_);
    pos_ += n;
  }
  std::span<const uint8_t> b_;
  const std::string& what_;
  const char* msg_;
  size_t pos_ = 0;
};

int32_t as_int32(uint64_t v) { return static_cast<int32_t>(static_cast<uint32_t>(v & 0xFFFFFFFFu)); }

}  // namespace

std::unique_ptr<Tokenizer> load_spm_tokenizer(std::span<const uint8_t> file, const std::string& what) {
  Vocab v;
  int64_t model_type = 1;  // UNIGRAM is the protobuf default
  int32_t unk = 0, bos = 1, eos = 2, pad = -1;
  bool dummy_prefix = true;
  std::string normalizer = "identity";
  Proto top(file, what, "ModelProto");
  uint32_t f, w;
  while (top.next(&f, &w)) {
    if (f == 1) {
      top.expect(w, 2, "pieces");
      check(v.tokens.size() < static_cast<size_t>(ConfigLimits::max_vocab), Status::format, "{}: too many pieces", what);
      Proto p(top.bytes(), what, "SentencePiece");
      Token t;
      bool have_piece = false;
      while (p.next(&f, &w)) {
        if (f == 1) {
          p.expect(w, 2, "piece");
          auto s = p.bytes();
          t.text.assign(reinterpret_cast<const char*>(s.data()), s.size());
          have_piece = true;
        } else if (f == 2) {
          p.expect(w, 5, "score");
          t.score = p.fixed32_float();
        } else if (f == 3) {
          p.expect(w, 0, "type");
          uint64_t type = p.varint();
          check(type >= 1 && type <= 6, Status::format, "{}: piece {} has unknown type {}", what, v.tokens.size(), type);
          t.type = static_cast<TokenType>(type);
        } else {
          p.skip(w);
        }
      }
      check(have_piece, Status::format, "{}: piece {} has no text", what, v.tokens.size());
      v.tokens.push_back(std::move(t));
    } else if (f == 2) {
      top.expect(w, 2, "trainer_spec");
      Proto p(top.bytes(), what, "TrainerSpec");
      while (p.next(&f, &w)) {
        if (f == 3 || f == 40 || f == 41 || f == 42 || f == 43) {
          p.expect(w, 0, "model_type/ids");
          uint64_t x = p.varint();
          if (f == 3) model_type = static_cast<int64_t>(x & 0xFF);
          else (f == 40 ? unk : f == 41 ? bos : f == 42 ? eos : pad) = as_int32(x);
        } else {
          p.skip(w);
        }
      }
    } else if (f == 3) {
      top.expect(w, 2, "normalizer_spec");
      Proto p(top.bytes(), what, "NormalizerSpec");
      while (p.next(&f, &w)) {
        if (f == 1) {
          p.expect(w, 2, "name");
          auto s = p.bytes();
          normalizer.assign(reinterpret_cast<const char*>(s.data()), s.size());
        } else if (f == 3) {
          p.expect(w, 0, "add_dummy_prefix");
          dummy_prefix = p.varint() != 0;
        } else {
          p.skip(w);
        }
      }
    } else {
      top.skip(w);
    }
  }
  check(!v.tokens.empty(), Status::format, "{}: not a SentencePiece model (no pieces)", what);
  if (model_type != 2)
    fail(Status::unsupported, "{}: SentencePiece model type {} is not supported (only BPE)", what,
         model_type == 1 ? "UNIGRAM" : std::to_string(model_type));
  v.unk = unk;
  v.bos = bos;
  v.eos = eos;
  v.pad = pad;
  TokenizerOptions opt;
  opt.kind = TokenizerKind::spm;
  opt.add_space_prefix = dummy_prefix;
  return std::make_unique<Tokenizer>(std::move(v), PairTable(), opt,
                                     what + " (SentencePiece BPE, normalizer " + normalizer + ")");
}

}  // namespace paca
