// tokenizer_capi.cpp - the tokenizer part of the C ABI: tokenize, detokenize,
// token pieces and attributes, the streaming detokenizer handle. Arguments
// are validated here; the work is paca::Tokenizer's (core/tokenizer/).
#include <memory>
#include <string>

#include "capi_internal.h"
#include "tokenizer/detokenizer.h"
#include "tokenizer/tokenizer.h"

using namespace paca::capi;

struct paca_detokenizer {
  std::shared_ptr<const paca::Tokenizer> tokenizer;  // keeps the tokenizer alive past the model handle
  std::unique_ptr<paca::TextStream> stream;
  std::string text;  // what the last push/flush returned
};

namespace {

constexpr size_t kMaxText = size_t{1} << 30;

// The model's tokenizer, or null after setting PACA_ERR_STATE.
const paca::Tokenizer* tokenizer_of(const paca_model* model, const char* fn) {
  const auto& ck = model->model->checkpoint();
  if (ck.tokenizer) return ck.tokenizer.get();
  set_error(PACA_ERR_STATE, std::string(fn) + ": the model has no tokenizer (" +
                                (ck.tokenizer_note.empty() ? std::string("none found") : ck.tokenizer_note) + ")");
  return nullptr;
}

paca::DecodeOptions decode_options(uint32_t flags) {
  paca::DecodeOptions o;
  o.render_special = (flags & PACA_DETOKENIZE_SPECIAL) != 0;
  o.keep_leading_space = (flags & PACA_DETOKENIZE_KEEP_LEADING_SPACE) != 0;
  return o;
}

}  // namespace

extern "C" {

PACA_API paca_status paca_tokenize(const paca_model* model, const char* text, size_t len, uint32_t flags,
                                   int32_t* buf, size_t cap, size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(model != nullptr, "paca_tokenize: model is NULL");
  PACA_REQUIRE(text != nullptr || len == 0, "paca_tokenize: text is NULL but len is not 0");
  PACA_REQUIRE(buf != nullptr || cap == 0, "paca_tokenize: buf is NULL but cap is not 0");
  PACA_REQUIRE(len <= kMaxText, "paca_tokenize: text is longer than 1 GiB");
  PACA_REQUIRE((flags & ~uint32_t{PACA_TOKENIZE_ADD_BOS | PACA_TOKENIZE_SPECIAL}) == 0,
               "paca_tokenize: unknown flags");
  const paca::Tokenizer* tok = tokenizer_of(model, "paca_tokenize");
  if (tok == nullptr) return PACA_ERR_STATE;
  std::vector<int32_t> ids;
  paca_status st = guarded([&] {
    paca::EncodeOptions o;
    o.add_special = (flags & PACA_TOKENIZE_ADD_BOS) != 0;
    o.parse_special = (flags & PACA_TOKENIZE_SPECIAL) != 0;
    ids = tok->encode(std::string_view(text != nullptr ? text : "", len), o);
  });
  if (st != PACA_OK) return st;
  return write_ids(ids, buf, cap, out_needed, "paca_tokenize");
}

PACA_API paca_status paca_detokenize(const paca_model* model, const int32_t* ids, size_t n, uint32_t flags,
                                     char* buf, size_t cap, size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(model != nullptr, "paca_detokenize: model is NULL");
  PACA_REQUIRE(ids != nullptr || n == 0, "paca_detokenize: ids is NULL but n is not 0");
  PACA_REQUIRE(buf != nullptr || cap == 0, "paca_detokenize: buf is NULL but cap is not 0");
  const paca::Tokenizer* tok = tokenizer_of(model, "paca_detokenize");
  if (tok == nullptr) return PACA_ERR_STATE;
  std::string text;
  paca_status st = guarded([&] {
    text = tok->decode(std::span<const int32_t>(ids, n), decode_options(flags));
  });
  if (st != PACA_OK) return st;
  return write_string(text, buf, cap, out_needed, "paca_detokenize");
}

PACA_API paca_status paca_token_to_piece(const paca_model* model, int32_t id, uint32_t flags, char* buf, size_t cap,
                                         size_t* out_needed) {
  if (out_needed != nullptr) *out_needed = 0;
  PACA_REQUIRE(model != nullptr, "paca_token_to_piece: model is NULL");
  PACA_REQUIRE(buf != nullptr || cap == 0, "paca_token_to_piece: buf is NULL but cap is not 0");
  const paca::Tokenizer* tok = tokenizer_of(model, "paca_token_to_piece");
  if (tok == nullptr) return PACA_ERR_STATE;
  std::string piece;
  paca_status st = guarded([&] { piece = tok->piece(id, (flags & PACA_DETOKENIZE_SPECIAL) != 0); });
  if (st != PACA_OK) return st;
  return write_string(piece, buf, cap, out_needed, "paca_token_to_piece");
}

PACA_API paca_status paca_token_attributes(const paca_model* model, int32_t id, uint32_t* out_attrs) {
  PACA_REQUIRE(out_attrs != nullptr, "paca_token_attributes: out_attrs is NULL");
  *out_attrs = 0;
  PACA_REQUIRE(model != nullptr, "paca_token_attributes: model is NULL");
  const paca::Tokenizer* tok = tokenizer_of(model, "paca_token_attributes");
  if (tok == nullptr) return PACA_ERR_STATE;
  return guarded([&] { *out_attrs = tok->attributes(id); });
}

PACA_API paca_status paca_detokenizer_create(const paca_model* model, uint32_t flags,
                                             paca_detokenizer** out_detokenizer) {
  PACA_REQUIRE(out_detokenizer != nullptr, "paca_detokenizer_create: out_detokenizer is NULL");
  *out_detokenizer = nullptr;
  PACA_REQUIRE(model != nullptr, "paca_detokenizer_create: model is NULL");
  if (tokenizer_of(model, "paca_detokenizer_create") == nullptr) return PACA_ERR_STATE;
  return guarded([&] {
    auto d = std::make_unique<paca_detokenizer>();
    d->tokenizer = model->model->checkpoint().tokenizer;
    d->stream = std::make_unique<paca::TextStream>(*d->tokenizer, decode_options(flags));
    *out_detokenizer = d.release();
  });
}

PACA_API void paca_detokenizer_free(paca_detokenizer* detokenizer) { delete detokenizer; }

PACA_API paca_status paca_detokenizer_push(paca_detokenizer* d, int32_t id, const char** out_text, size_t* out_len) {
  PACA_REQUIRE(out_text != nullptr, "paca_detokenizer_push: out_text is NULL");
  *out_text = "";
  if (out_len != nullptr) *out_len = 0;
  PACA_REQUIRE(d != nullptr, "paca_detokenizer_push: detokenizer is NULL");
  d->text.clear();
  paca_status st = guarded([&] { d->stream->push(id, d->text); });
  if (st != PACA_OK) return st;
  *out_text = d->text.c_str();
  if (out_len != nullptr) *out_len = d->text.size();
  return PACA_OK;
}

PACA_API paca_status paca_detokenizer_flush(paca_detokenizer* d, const char** out_text, size_t* out_len) {
  PACA_REQUIRE(out_text != nullptr, "paca_detokenizer_flush: out_text is NULL");
  *out_text = "";
  if (out_len != nullptr) *out_len = 0;
  PACA_REQUIRE(d != nullptr, "paca_detokenizer_flush: detokenizer is NULL");
  d->text.clear();
  paca_status st = guarded([&] { d->stream->flush(d->text); });
  if (st != PACA_OK) return st;
  *out_text = d->text.c_str();
  if (out_len != nullptr) *out_len = d->text.size();
  return PACA_OK;
}

}  // extern "C"
