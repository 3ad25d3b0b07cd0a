// hf_tokenizer.cpp - Hugging Face tokenizer.json and tokenizer_config.json.
// Every field is type-checked before use: a wrong type is Error(format)
// naming the field, never an exception of the JSON library.
#include <nlohmann/json.hpp>
#include <unordered_map>

#include "format/config.h"
#include "tokenizer/byte_level.h"
#include "tokenizer/pretokenize.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"

namespace paca {

namespace {

using nlohmann::json;

const json* member(const json& obj, const char* key) {
  if (!obj.is_object()) return nullptr;
  auto it = obj.find(key);
  return it == obj.end() || it->is_null() ? nullptr : &*it;
}

const std::string& need_string(const json& j, const std::string& what, const std::string& field) {
  check(j.is_string(), Status::format, "{}: {} must be a string", what, field);
  return j.get_ref<const std::string&>();
}

bool get_bool(const json& obj, const char* key, bool dflt, const std::string& what, const std::string& field) {
  const json* v = member(obj, key);
  if (!v) return dflt;
  check(v->is_boolean(), Status::format, "{}: {}.{} must be true or false", what, field, key);
  return v->get<bool>();
}

std::string type_of(const json& j) {
  const json* t = member(j, "type");
  return t && t->is_string() ? t->get<std::string>() : "";
}

// Calls fn on j and, for a "Sequence", on each of its elements (key list_key).
template <typename Fn>
void for_each_step(const json* j, const char* list_key, const std::string& what, Fn fn) {
  if (!j) return;
  if (type_of(*j) == "Sequence") {
    const json* list = member(*j, list_key);
    check(list && list->is_array(), Status::format, "{}: a Sequence must hold a '{}' array", what, list_key);
    for (const json& step : *list) fn(step);
  } else {
    fn(*j);
  }
}

// A token's text or the content of an added token, as bytes: the tokens of a
// byte-level vocabulary are written in GPT-2's byte mapping.
std::string vocab_text(const std::string& key, bool byte_level, const std::string& what) {
  if (!byte_level) return key;
  std::string bytes;
  check(byte_level_decode(key, bytes), Status::format,
        "{}: vocabulary entry '{}' is not written in the byte-level alphabet", what, key);
  return bytes;
}

// Which of the two Llama designs this is (byte-level BPE with Llama 3's
// split, or SentencePiece-style "▁" spaces), from the pre-tokenizer, the
// decoder and the normalizer; anything else is Error(unsupported).
TokenizerOptions hf_design(const json& j, const json& model, const std::string& what) {
  bool byte_level = false, split_ok = false, other_split = false;
  for_each_step(member(j, "pre_tokenizer"), "pretokenizers", what, [&](const json& step) {
    std::string t = type_of(step);
    if (t == "ByteLevel") {
      byte_level = true;
      if (get_bool(step, "use_regex", true, what, "pre_tokenizer.ByteLevel")) other_split = true;  // GPT-2's own split
    } else if (t == "Split") {
      const json* pat = member(step, "pattern");
      const json* re = pat ? member(*pat, "Regex") : nullptr;
      if (re && re->is_string() && re->get<std::string>() == kLlama3SplitPattern) split_ok = true;
      else other_split = true;
    }
  });
  if (const json* dec = member(j, "decoder"); dec && type_of(*dec) == "ByteLevel") byte_level = true;

  TokenizerOptions opt;
  opt.kind = TokenizerKind::bpe;
  opt.byte_level = byte_level;
  opt.ignore_merges = get_bool(model, "ignore_merges", false, what, "model");
  if (byte_level) {
    if (!split_ok || other_split)
      fail(Status::unsupported, "{}: byte-level BPE with a pre-tokenizer other than Llama 3's split pattern is not supported",
           what);
  } else {
    // Llama 2 style: "▁" for spaces, by normalizer (Prepend + Replace) or Metaspace pre-tokenizer.
    bool prepend = false, replace = false, metaspace = false;
    for_each_step(member(j, "normalizer"), "normalizers", what, [&](const json& step) {
      std::string t = type_of(step);
      if (t == "Prepend") prepend = true;
      if (t == "Replace") replace = true;
    });
    for_each_step(member(j, "pre_tokenizer"), "pretokenizers", what, [&](const json& step) {
      if (type_of(step) != "Metaspace") return;
      metaspace = true;
      std::string scheme = "always";
      if (const json* s = member(step, "prepend_scheme")) scheme = need_string(*s, what, "Metaspace.prepend_scheme");
      else if (!get_bool(step, "add_prefix_space", true, what, "Metaspace")) scheme = "never";
      opt.add_space_prefix = scheme != "never";
      opt.space_prefix_after_special = scheme == "always";
    });
    if (!metaspace) {
      check(replace, Status::unsupported,
            "{}: BPE without byte-level encoding or '▁' spaces (Metaspace / Replace normalizer) is not supported", what);
      opt.add_space_prefix = prepend;
      opt.space_prefix_after_special = prepend;
    }
  }
  return opt;
}

// model.vocab and added_tokens -> the vocabulary (ids checked, each once);
// by_key maps each model.vocab key (as written, byte-mapped) to its id.
Vocab hf_vocab(const json& j, const json& model, bool byte_level, bool byte_fallback, const std::string& what,
               std::unordered_map<std::string_view, int32_t>& by_key) {
  const json* vocab_j = member(model, "vocab");
  check(vocab_j && vocab_j->is_object(), Status::format, "{}: model.vocab must be an object", what);
  int64_t max_id = -1;
  auto check_id = [&](const json& v, const std::string& field) {
    check(v.is_number_integer(), Status::format, "{}: {} must be an integer id", what, field);
    int64_t id = v.get<int64_t>();
    check(id >= 0 && id < ConfigLimits::max_vocab, Status::format, "{}: {} = {} is not a valid id", what, field, id);
    max_id = std::max(max_id, id);
    return static_cast<int32_t>(id);
  };
  for (auto it = vocab_j->begin(); it != vocab_j->end(); ++it) check_id(it.value(), "model.vocab['" + it.key() + "']");
  const json* added = member(j, "added_tokens");
  if (added) {
    check(added->is_array(), Status::format, "{}: added_tokens must be an array", what);
    for (const json& a : *added) {
      check(a.is_object(), Status::format, "{}: each added_tokens entry must be an object", what);
      const json* id = member(a, "id");
      check(id != nullptr, Status::format, "{}: an added_tokens entry has no id", what);
      check_id(*id, "added_tokens[].id");
    }
  }
  check(max_id >= 0, Status::format, "{}: the vocabulary is empty", what);

  Vocab v;
  v.tokens.resize(static_cast<size_t>(max_id + 1));
  for (Token& t : v.tokens) t.type = TokenType::unused;
  by_key.clear();
  by_key.reserve(vocab_j->size() * 2);
  for (auto it = vocab_j->begin(); it != vocab_j->end(); ++it) {
    auto id = static_cast<int32_t>(it.value().get<int64_t>());
    Token& t = v.tokens[static_cast<size_t>(id)];
    check(t.type == TokenType::unused, Status::format, "{}: id {} appears twice in model.vocab", what, id);
    t.text = vocab_text(it.key(), byte_level, what);
    t.type = byte_fallback && parse_byte_token(it.key()) >= 0 ? TokenType::byte : TokenType::normal;
    t.score = -static_cast<float>(id);
    by_key.emplace(it.key(), id);
  }
  if (const json* unk = member(model, "unk_token")) {
    auto it = by_key.find(need_string(*unk, what, "model.unk_token"));
    check(it != by_key.end(), Status::format, "{}: model.unk_token is not in the vocabulary", what);
    v.unk = it->second;
    v.tokens[static_cast<size_t>(v.unk)].type = TokenType::unknown;
  }
  if (added) {
    for (const json& a : *added) {
      auto id = static_cast<int32_t>((*member(a, "id")).get<int64_t>());
      const json* content = member(a, "content");
      check(content != nullptr, Status::format, "{}: added token {} has no content", what, id);
      Token& t = v.tokens[static_cast<size_t>(id)];
      t.text = need_string(*content, what, "added_tokens[].content");  // literal text, not byte-mapped
      t.type = get_bool(a, "special", false, what, "added_tokens[]") ? TokenType::control : TokenType::user_defined;
      if (id == v.unk) t.type = TokenType::unknown;
    }
  }
  return v;
}

// model.merges: "A B" strings or ["A", "B"] pairs; priority = index.
PairTable hf_merges(const json& model, const Vocab& v, const std::unordered_map<std::string_view, int32_t>& by_key,
                    const std::string& what) {
  PairTable pairs;
  const json* merges = member(model, "merges");
  check(merges && merges->is_array(), Status::format, "{}: model.merges must be an array", what);
  pairs.reserve(merges->size());
  int32_t index = 0;
  std::string joined;
  for (const json& m : *merges) {
    std::string_view a, b;
    if (m.is_string()) {
      const std::string& s = m.get_ref<const std::string&>();
      size_t sp = s.find(' ');
      check(sp != std::string::npos && sp > 0 && sp + 1 < s.size() && s.find(' ', sp + 1) == std::string::npos,
            Status::format, "{}: merge #{} '{}' is not two tokens separated by a space", what, index, s);
      a = std::string_view(s).substr(0, sp);
      b = std::string_view(s).substr(sp + 1);
    } else {
      check(m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string(), Status::format,
            "{}: merge #{} must be a string \"A B\" or a pair of strings", what, index);
      a = m[0].get_ref<const std::string&>();
      b = m[1].get_ref<const std::string&>();
    }
    joined.assign(a);
    joined.append(b);
    auto ia = by_key.find(a), ib = by_key.find(b), ir = by_key.find(joined);
    check(ia != by_key.end() && ib != by_key.end() && ir != by_key.end(), Status::format,
          "{}: merge #{} ('{}' + '{}') names a token that is not in the vocabulary", what, index, a, b);
    auto normal = [&](int32_t id) { return v.tokens[static_cast<size_t>(id)].type == TokenType::normal; };
    if (normal(ia->second) && normal(ib->second) && normal(ir->second))  // merges only ever join ordinary tokens
      pairs.add(ia->second, ib->second, index, ir->second);
    ++index;
  }
  return pairs;
}

// Default BOS/EOS by the Llama names; tokenizer_config.json may override them.
void default_bos_eos(Vocab& v) {
  for (const char* name : {"<|begin_of_text|>", "<s>"})
    for (size_t id = 0; id < v.tokens.size() && v.bos < 0; ++id)
      if (v.tokens[id].text == name && v.tokens[id].type == TokenType::control) v.bos = static_cast<int32_t>(id);
  for (const char* name : {"<|end_of_text|>", "</s>"})
    for (size_t id = 0; id < v.tokens.size() && v.eos < 0; ++id)
      if (v.tokens[id].text == name && v.tokens[id].type == TokenType::control) v.eos = static_cast<int32_t>(id);
}

}  // namespace

std::unique_ptr<Tokenizer> load_hf_tokenizer(std::string_view text, const std::string& what) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  check(!j.is_discarded(), Status::format, "{}: not valid JSON", what);
  check(j.is_object(), Status::format, "{}: not a JSON object", what);
  const json* model = member(j, "model");
  check(model && model->is_object(), Status::format, "{}: missing the 'model' object", what);
  std::string mtype = type_of(*model);
  if (mtype.empty() && member(*model, "merges")) mtype = "BPE";  // old files omit the type
  if (mtype != "BPE")
    fail(Status::unsupported, "{}: tokenizer model type '{}' is not supported (only BPE)", what, mtype);
  const TokenizerOptions opt = hf_design(j, *model, what);
  const bool byte_fallback = get_bool(*model, "byte_fallback", false, what, "model");
  std::unordered_map<std::string_view, int32_t> by_key;
  Vocab v = hf_vocab(j, *model, opt.byte_level, byte_fallback, what, by_key);
  PairTable pairs = hf_merges(*model, v, by_key, what);
  default_bos_eos(v);
  return std::make_unique<Tokenizer>(std::move(v), std::move(pairs), opt,
                                     what + (opt.byte_level ? " (byte-level BPE)" : " (BPE with byte fallback)"));
}

void apply_tokenizer_config(Tokenizer& tok, std::string_view text, const std::string& what) {
  json j = json::parse(text.begin(), text.end(), nullptr, false);
  check(!j.is_discarded() && j.is_object(), Status::format, "{}: not a valid JSON object", what);
  tok.set_add_bos(get_bool(j, "add_bos_token", tok.options().add_bos, what, "tokenizer_config"));
  tok.set_add_eos(get_bool(j, "add_eos_token", tok.options().add_eos, what, "tokenizer_config"));
  auto token_id = [&](const char* key) -> int32_t {
    const json* v = member(j, key);
    if (!v) return -1;
    if (v->is_object()) v = member(*v, "content");  // {"content": "<s>", ...}
    if (!v) return -1;
    const std::string& s = need_string(*v, what, key);
    int32_t id = tok.find_token(s);
    check(id >= 0, Status::format, "{}: {} '{}' is not a token of the vocabulary", what, key, s);
    return id;
  };
  if (int32_t id = token_id("bos_token"); id >= 0) tok.set_bos(id);
  if (int32_t id = token_id("eos_token"); id >= 0) tok.set_eos(id);
}

}  // namespace paca
