// gguf_tokenizer.cpp - the tokenizer.ggml.* keys of a GGUF file:
//   model "llama" -> SentencePiece BPE (tokens with "▁", scores, token_type)
//   model "gpt2"  -> byte-level BPE (tokens in GPT-2's byte mapping, merges
//                    "A B"); pre "llama-bpe" (also "llama3", "llama-v3") is
//                    the Llama 3 split pattern
// Arrays are read in place from the file with every length checked; a key of
// the wrong type or length is Error(format) naming the key.
#include <cstring>

#include "format/config.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace paca {

namespace {

struct ArrayReader {
  std::span<const uint8_t> file;
  const std::string& what;
  const char* key;
  uint64_t pos;

  void need(uint64_t n) const {
    check(pos <= file.size() && n <= file.size() - pos, Status::format, "{}: array {} runs past the end of the file",
          what, key);
  }
  template <typename T>
  T get() {
    need(sizeof(T));
    T v;
    std::memcpy(&v, file.data() + pos, sizeof(T));
    pos += sizeof(T);
    return v;
  }
  std::string_view str() {
    auto n = get<uint64_t>();
    need(n);
    std::string_view s(reinterpret_cast<const char*>(file.data() + pos), n);
    pos += n;
    return s;
  }
};

// The array under key: checks its element type and (when want > 0) its length.
const GgufValue* array_of(const GgufFile& g, const char* key, GgufType elem, uint64_t want, bool required,
                          const std::string& what) {
  const GgufValue* v = g.find(key);
  if (!v) {
    check(!required, Status::format, "{}: GGUF key {} is missing", what, key);
    return nullptr;
  }
  check(v->type == GgufType::array, Status::format, "{}: GGUF key {} must be an array", what, key);
  check(v->elem == elem, Status::format, "{}: GGUF key {} must be an array of type {}, not {}", what, key,
        static_cast<uint32_t>(elem), static_cast<uint32_t>(v->elem));
  if (want > 0)
    check(v->count == want, Status::format, "{}: GGUF key {} has {} entries, expected {} (one per token)", what, key,
          v->count, want);
  return v;
}

int32_t token_id(const GgufFile& g, const char* key, int32_t dflt, const std::string& what) {
  const GgufValue* v = g.find(key);
  if (!v) return dflt;
  std::optional<int64_t> i;
  try {
    i = g.get_int(key);
  } catch (const Error&) {
    fail(Status::format, "{}: GGUF key {} must be an integer token id", what, key);
  }
  return *i >= 0 && *i < ConfigLimits::max_vocab ? static_cast<int32_t>(*i) : -1;  // u32 -1: none
}

bool flag(const GgufFile& g, const char* key, bool dflt, const std::string& what) {
  const GgufValue* v = g.find(key);
  if (!v) return dflt;
  check(v->type == GgufType::boolean, Status::format, "{}: GGUF key {} must be a bool", what, key);
  return v->u != 0;
}

}  // namespace

std::unique_ptr<Tokenizer> load_gguf_tokenizer(const GgufFile& g, std::span<const uint8_t> file,
                                               const std::string& what) {
  const GgufValue* mv = g.find("tokenizer.ggml.model");
  if (!mv) return nullptr;
  check(mv->type == GgufType::string, Status::format, "{}: GGUF key tokenizer.ggml.model must be a string", what);
  const std::string& model = mv->str;
  if (model == "none" || model == "no_vocab") return nullptr;
  if (model != "llama" && model != "gpt2")
    fail(Status::unsupported, "{}: GGUF tokenizer model '{}' is not supported (llama or gpt2)", what, model);
  const bool bpe = model == "gpt2";

  const GgufValue* tokens = array_of(g, "tokenizer.ggml.tokens", GgufType::string, 0, true, what);
  check(tokens->count >= 1 && tokens->count <= static_cast<uint64_t>(ConfigLimits::max_vocab), Status::format,
        "{}: tokenizer.ggml.tokens has {} entries", what, tokens->count);
  const uint64_t n = tokens->count;
  const GgufValue* scores = array_of(g, "tokenizer.ggml.scores", GgufType::f32, n, false, what);
  const GgufValue* types = array_of(g, "tokenizer.ggml.token_type", GgufType::i32, n, false, what);

  Vocab v;
  v.tokens.resize(n);
  std::vector<std::string_view> keys(n);  // the texts as stored (byte-level form for gpt2)
  ArrayReader tr{file, what, "tokenizer.ggml.tokens", tokens->offset};
  for (uint64_t i = 0; i < n; ++i) keys[i] = tr.str();
  if (scores) {
    ArrayReader sr{file, what, "tokenizer.ggml.scores", scores->offset};
    for (uint64_t i = 0; i < n; ++i) v.tokens[i].score = sr.get<float>();
  }
  if (types) {
    ArrayReader yr{file, what, "tokenizer.ggml.token_type", types->offset};
    for (uint64_t i = 0; i < n; ++i) {
      auto t = yr.get<int32_t>();
      check(t >= 0 && t <= 6, Status::format, "{}: token {} has unknown token_type {}", what, i, t);
      v.tokens[i].type = t == 0 ? TokenType::normal : static_cast<TokenType>(t);
    }
  }
  for (uint64_t i = 0; i < n; ++i) {
    Token& t = v.tokens[i];
    if (bpe && t.type == TokenType::normal) {
      check(byte_level_decode(keys[i], t.text), Status::format,
            "{}: token {} '{}' is not written in the byte-level alphabet", what, i, keys[i]);
    } else {
      t.text.assign(keys[i]);
    }
  }

  TokenizerOptions opt;
  PairTable pairs;
  if (bpe) {
    std::string pre = "llama-bpe";
    if (const GgufValue* p = g.find("tokenizer.ggml.pre")) {
      check(p->type == GgufType::string, Status::format, "{}: GGUF key tokenizer.ggml.pre must be a string", what);
      pre = p->str;
    }
    if (pre != "llama-bpe" && pre != "llama3" && pre != "llama-v3")
      fail(Status::unsupported, "{}: GGUF pre-tokenizer '{}' is not supported (llama-bpe)", what, pre);
    opt.kind = TokenizerKind::bpe;
    opt.byte_level = true;
    opt.ignore_merges = true;
    // Merges are written in the stored (byte-level) form: look tokens up by that.
    std::vector<Token> key_tokens(n);
    for (uint64_t i = 0; i < n; ++i) key_tokens[i].text.assign(keys[i]);
    TokenMap by_key;
    by_key.build(key_tokens, [](const Token& t) { return !t.text.empty(); });
    const GgufValue* merges = array_of(g, "tokenizer.ggml.merges", GgufType::string, 0, true, what);
    check(merges->count <= (1ull << 24), Status::format, "{}: tokenizer.ggml.merges has {} entries", what,
          merges->count);
    pairs.reserve(merges->count);
    ArrayReader mr{file, what, "tokenizer.ggml.merges", merges->offset};
    std::string joined;
    for (uint64_t i = 0; i < merges->count; ++i) {
      std::string_view m = mr.str();
      size_t sp = m.find(' ');
      check(sp != std::string_view::npos && sp > 0 && sp + 1 < m.size() && m.find(' ', sp + 1) == std::string_view::npos,
            Status::format, "{}: merge #{} '{}' is not two tokens separated by a space", what, i, m);
      joined.assign(m.substr(0, sp));
      joined.append(m.substr(sp + 1));
      int32_t a = by_key.find(m.substr(0, sp)), b = by_key.find(m.substr(sp + 1)), r = by_key.find(joined);
      check(a >= 0 && b >= 0 && r >= 0, Status::format, "{}: merge #{} '{}' names a token that is not in the vocabulary",
            what, i, m);
      if (v.tokens[a].type == TokenType::normal && v.tokens[b].type == TokenType::normal &&
          v.tokens[r].type == TokenType::normal)  // merges only ever join ordinary tokens
        pairs.add(a, b, static_cast<int32_t>(i), r);
    }
  } else {
    opt.kind = TokenizerKind::spm;
    opt.add_space_prefix = flag(g, "tokenizer.ggml.add_space_prefix", true, what);
  }
  v.bos = token_id(g, "tokenizer.ggml.bos_token_id", bpe ? -1 : 1, what);
  v.eos = token_id(g, "tokenizer.ggml.eos_token_id", bpe ? -1 : 2, what);
  v.unk = token_id(g, "tokenizer.ggml.unknown_token_id", bpe ? -1 : 0, what);
  v.pad = token_id(g, "tokenizer.ggml.padding_token_id", -1, what);
  v.eot = token_id(g, "tokenizer.ggml.eot_token_id", -1, what);
  v.eom = token_id(g, "tokenizer.ggml.eom_token_id", -1, what);
  opt.add_bos = flag(g, "tokenizer.ggml.add_bos_token", true, what);
  opt.add_eos = flag(g, "tokenizer.ggml.add_eos_token", false, what);
  return std::make_unique<Tokenizer>(std::move(v), std::move(pairs), opt,
                                     what + (bpe ? " (GGUF byte-level BPE)" : " (GGUF SentencePiece BPE)"));
}

}  // namespace paca
