// chat.cpp - see chat.h.
#include "chat/chat.h"

#include <algorithm>
#include <cstring>
#include <unordered_set>

#include "chat/jinja/jinja.h"
#include "model/checkpoint.h"
#include "util/error.h"
#include "util/file.h"
#include "util/mmap.h"

namespace paca {

using ojson = nlohmann::ordered_json;

// ---- styles ----------------------------------------------------------------

const char* chat_style_name(ChatStyle s) {
  switch (s) {
    case ChatStyle::llama2: return "llama2";
    case ChatStyle::llama3: return "llama3";
    case ChatStyle::llama31: return "llama3.1";
  }
  return "?";
}

ChatStyle detect_chat_style(const ModelConfig& c) {
  if (c.bos_id == 1) return ChatStyle::llama2;
  const bool has_eom = std::find(c.eos_ids.begin(), c.eos_ids.end(), 128008) != c.eos_ids.end();
  if (c.rope_scaling == RopeScaling::llama3 || has_eom) return ChatStyle::llama31;
  if (c.bos_id == 128000) return ChatStyle::llama3;
  return c.n_vocab >= 128000 ? ChatStyle::llama3 : ChatStyle::llama2;
}

ChatTokens builtin_chat_tokens(ChatStyle s) {
  ChatTokens t;
  if (s == ChatStyle::llama2) {
    t.bos = "<s>";
    t.eos = "</s>";
    t.unk = "<unk>";
  } else {
    t.bos = "<|begin_of_text|>";
    t.eos = "<|eot_id|>";
  }
  return t;
}

// ---- pieces for the tokenizer ---------------------------------------------

std::vector<ChatPiece> split_for_encoding(const RenderedChat& chat, const std::vector<std::string>& special_texts) {
  std::unordered_set<std::string_view> specials;
  std::vector<size_t> lengths;  // distinct lengths, longest first
  bool first_byte[256] = {};
  for (const std::string& s : special_texts) {
    if (s.empty()) continue;
    specials.insert(s);
    lengths.push_back(s.size());
    first_byte[static_cast<unsigned char>(s[0])] = true;
  }
  std::sort(lengths.begin(), lengths.end(), std::greater<>());
  lengths.erase(std::unique(lengths.begin(), lengths.end()), lengths.end());

  std::vector<ChatPiece> out;
  const std::string_view text = chat.text;
  size_t plain_start = 0;
  for (const ChatSegment& seg : chat.segments) {
    if (seg.user) continue;
    const size_t end = seg.offset + seg.length;
    for (size_t i = seg.offset; i < end;) {
      if (!first_byte[static_cast<unsigned char>(text[i])]) {
        ++i;
        continue;
      }
      size_t match = 0;
      for (size_t len : lengths) {
        if (len <= end - i && specials.count(text.substr(i, len))) {
          match = len;
          break;
        }
      }
      if (match == 0) {
        ++i;
        continue;
      }
      if (i > plain_start) out.push_back({text.substr(plain_start, i - plain_start), false});
      out.push_back({text.substr(i, match), true});
      i += match;
      plain_start = i;
    }
  }
  if (plain_start < text.size()) out.push_back({text.substr(plain_start), false});
  return out;
}

std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const RenderedChat& chat) {
  const Vocab& v = tokenizer.vocab();
  std::vector<std::string> specials;
  for (int32_t id : v.specials()) {
    const TokenType t = v.at(id).type;
    if (t == TokenType::control || t == TokenType::unknown) specials.push_back(v.at(id).text);
  }
  std::vector<int32_t> ids;
  tokenizer.encode_pieces(split_for_encoding(chat, specials), ids);
  return ids;
}

// ---- templates -------------------------------------------------------------

struct ChatTemplate::Impl {
  std::string origin;
  std::string source;
  ChatTokens tokens;
  jinja::Template tmpl;
  std::optional<jinja::Template> tool_use;
};

ChatTemplate ChatTemplate::from_source(const std::string& source, ChatTokens tokens, std::string origin,
                                       const std::string& tool_use_source) {
  auto impl = std::make_shared<Impl>();
  impl->origin = std::move(origin);
  impl->source = source;
  impl->tokens = std::move(tokens);
  impl->tmpl = jinja::Template::parse(source, "chat template (" + impl->origin + ")");
  if (!tool_use_source.empty())
    impl->tool_use = jinja::Template::parse(tool_use_source, "chat template (" + impl->origin + ", tool_use)");
  ChatTemplate t;
  t.impl_ = std::move(impl);
  return t;
}

ChatTemplate ChatTemplate::builtin(ChatStyle style) {
  return from_source(builtin_chat_template(style), builtin_chat_tokens(style), std::string("builtin:") + chat_style_name(style));
}

const std::string& ChatTemplate::origin() const { return impl_->origin; }
const std::string& ChatTemplate::source() const { return impl_->source; }
const ChatTokens& ChatTemplate::tokens() const { return impl_->tokens; }

namespace {

constexpr size_t kMaxConfigBytes = size_t{64} << 20;

// A token in tokenizer_config.json: "text" or {"content": "text", ...}.
std::optional<std::string> token_text(const ojson& cfg, const char* key) {
  auto it = cfg.find(key);
  if (it == cfg.end()) return std::nullopt;
  if (it->is_string()) return it->get<std::string>();
  if (it->is_object()) {
    auto c = it->find("content");
    if (c != it->end() && c->is_string()) return c->get<std::string>();
  }
  return std::nullopt;
}

// chat_template as a string or as named templates [{"name", "template"}].
void pick_templates(const ojson& t, std::string& def, std::string& tool_use) {
  if (t.is_string()) {
    def = t.get<std::string>();
    return;
  }
  if (!t.is_array()) return;
  for (const auto& e : t) {
    if (!e.is_object() || !e.contains("name") || !e.contains("template") || !e["name"].is_string() ||
        !e["template"].is_string())
      continue;
    const std::string name = e["name"].get<std::string>();
    if (name == "default") def = e["template"].get<std::string>();
    else if (name == "tool_use") tool_use = e["template"].get<std::string>();
  }
  if (def.empty() && !tool_use.empty()) std::swap(def, tool_use);
}

// The string at `index` of a GGUF string array (bounds-checked walk).
std::optional<std::string> gguf_array_string(const GgufFile& g, std::span<const uint8_t> bytes, const char* key, int64_t index) {
  const GgufValue* v = g.find(key);
  if (v == nullptr || v->type != GgufType::array || v->elem != GgufType::string || index < 0) return std::nullopt;
  if (static_cast<uint64_t>(index) >= v->count) return std::nullopt;
  uint64_t pos = v->offset;
  for (int64_t i = 0;; ++i) {
    if (pos > bytes.size() || bytes.size() - pos < 8) return std::nullopt;
    uint64_t n = 0;
    std::memcpy(&n, bytes.data() + pos, 8);
    pos += 8;
    if (n > bytes.size() - pos) return std::nullopt;
    if (i == index) return std::string(reinterpret_cast<const char*>(bytes.data() + pos), n);
    pos += n;
  }
}

// What detect_chat_style needs, from GGUF metadata alone.
ChatStyle gguf_style(const GgufFile& g) {
  ModelConfig c;
  c.bos_id = static_cast<int>(g.get_int("tokenizer.ggml.bos_token_id").value_or(-1));
  for (const char* k : {"tokenizer.ggml.eos_token_id", "tokenizer.ggml.eot_token_id", "tokenizer.ggml.eom_token_id"})
    if (auto id = g.get_int(k)) c.eos_ids.push_back(static_cast<int>(*id));
  if (const GgufValue* t = g.find("tokenizer.ggml.tokens"); t && t->type == GgufType::array)
    c.n_vocab = static_cast<int>(std::min<uint64_t>(t->count, 1u << 30));
  const bool rope_freqs = std::any_of(g.tensors.begin(), g.tensors.end(), [](const GgufTensorInfo& t) { return t.name == "rope_freqs.weight"; });
  if (g.get_string("llama.rope.scaling.type").value_or("") == "llama3" || rope_freqs) c.rope_scaling = RopeScaling::llama3;
  return detect_chat_style(c);
}

}  // namespace

ChatTemplate ChatTemplate::from_hf_directory(const std::string& dir, ChatStyle fallback) {
  ChatTokens tokens = builtin_chat_tokens(fallback);
  std::string def, tool_use, origin;
  ojson cfg;
  if (is_regular_file(dir + "/tokenizer_config.json")) {
    cfg = ojson::parse(read_text_file(dir + "/tokenizer_config.json", kMaxConfigBytes), nullptr, false);
    if (cfg.is_discarded() || !cfg.is_object()) fail(Status::format, "{}/tokenizer_config.json is not a JSON object", dir);
    if (auto t = token_text(cfg, "bos_token")) tokens.bos = t;
    if (auto t = token_text(cfg, "eos_token")) tokens.eos = t;
    if (auto t = token_text(cfg, "unk_token")) tokens.unk = t;
    if (auto t = token_text(cfg, "pad_token")) tokens.pad = t;
  }
  if (is_regular_file(dir + "/chat_template.jinja")) {
    def = read_text_file(dir + "/chat_template.jinja", kMaxConfigBytes);
    origin = "chat_template.jinja";
  } else if (cfg.is_object() && cfg.contains("chat_template")) {
    pick_templates(cfg["chat_template"], def, tool_use);
    origin = "tokenizer_config.json";
  } else if (is_regular_file(dir + "/chat_template.json")) {
    ojson j = ojson::parse(read_text_file(dir + "/chat_template.json", kMaxConfigBytes), nullptr, false);
    if (j.is_object() && j.contains("chat_template")) pick_templates(j["chat_template"], def, tool_use);
    origin = "chat_template.json";
  }
  if (def.empty()) return from_source(builtin_chat_template(fallback), tokens, std::string("builtin:") + chat_style_name(fallback));
  return from_source(def, tokens, origin, tool_use);
}

ChatTemplate ChatTemplate::from_gguf(const GgufFile& g, std::span<const uint8_t> file) {
  const ChatStyle style = gguf_style(g);
  ChatTokens tokens = builtin_chat_tokens(style);
  std::string def, tool_use;
  if (auto t = g.get_string("tokenizer.chat_template")) def = *t;
  if (auto t = g.get_string("tokenizer.chat_template.tool_use")) tool_use = *t;
  auto tok = [&](const char* id_key) -> std::optional<std::string> {
    auto id = g.get_int(id_key);
    return id ? gguf_array_string(g, file, "tokenizer.ggml.tokens", *id) : std::nullopt;
  };
  if (auto t = tok("tokenizer.ggml.bos_token_id")) tokens.bos = t;
  if (auto t = tok("tokenizer.ggml.eos_token_id")) tokens.eos = t;
  if (auto t = tok("tokenizer.ggml.unknown_token_id")) tokens.unk = t;
  if (auto t = tok("tokenizer.ggml.padding_token_id")) tokens.pad = t;
  if (def.empty()) return from_source(builtin_chat_template(style), tokens, std::string("builtin:") + chat_style_name(style));
  return from_source(def, tokens, "gguf", tool_use);
}

ChatTemplate ChatTemplate::for_checkpoint(const Checkpoint& ck) {
  if (ck.config.format == ModelFormat::hf_safetensors) return from_hf_directory(ck.path, detect_chat_style(ck.config));
  if (ck.gguf && !ck.files.empty()) return from_gguf(*ck.gguf, ck.files[0]->bytes());
  return builtin(detect_chat_style(ck.config));
}

ChatTemplate ChatTemplate::from_path(const std::string& path) {
  if (is_directory(path)) {
    const std::string gen = is_regular_file(path + "/generation_config.json")
                                ? read_text_file(path + "/generation_config.json", kMaxConfigBytes)
                                : std::string();
    const ModelConfig c = parse_hf_config(read_text_file(path + "/config.json", kMaxConfigBytes), gen);
    return from_hf_directory(path, detect_chat_style(c));
  }
  MappedFile f(path);
  const auto bytes = f.bytes();
  if (bytes.size() >= 4 && std::memcmp(bytes.data(), "GGUF", 4) == 0) return from_gguf(parse_gguf(bytes, path), bytes);
  return builtin(ChatStyle::llama2);  // llama2.c checkpoints: Llama 2 vocabulary
}

RenderedChat ChatTemplate::render(const ChatRequest& req) const {
  using jinja::Value;
  check(req.messages.is_array(), Status::invalid_argument, "chat: messages must be a JSON array");
  for (size_t i = 0; i < req.messages.size(); ++i) {
    const ojson& m = req.messages[i];
    check(m.is_object(), Status::invalid_argument, "chat: message {} is not a JSON object", i);
    auto r = m.find("role");
    check(r != m.end() && r->is_string() && !r->get<std::string>().empty(), Status::invalid_argument,
          "chat: message {} has no \"role\" string", i);
  }
  check(req.tools.is_null() || req.tools.is_array(), Status::invalid_argument, "chat: tools must be a JSON array or null");
  check(req.extra.is_null() || req.extra.is_object(), Status::invalid_argument, "chat: extra variables must be a JSON object");

  std::vector<std::pair<std::string, Value>> vars;
  // What transformers' apply_chat_template passes: the special tokens, messages,
  // tools (None when absent), documents (None), add_generation_prompt, and the
  // extra keyword arguments (builtin_tools, date_string, ...). Special tokens are
  // template text; everything from the request is user data.
  const ChatTokens& tk = impl_->tokens;
  if (tk.bos) vars.emplace_back("bos_token", Value::string(*tk.bos));
  if (tk.eos) vars.emplace_back("eos_token", Value::string(*tk.eos));
  if (tk.unk) vars.emplace_back("unk_token", Value::string(*tk.unk));
  if (tk.pad) vars.emplace_back("pad_token", Value::string(*tk.pad));
  vars.emplace_back("messages", Value::from_json(req.messages, true));
  vars.emplace_back("tools", req.tools.is_null() ? Value::none() : Value::from_json(req.tools, true));
  vars.emplace_back("documents", Value::none());
  vars.emplace_back("add_generation_prompt", Value::boolean(req.add_generation_prompt));
  if (req.builtin_tools) {
    std::vector<Value> names;
    for (const std::string& n : *req.builtin_tools) names.push_back(Value::string(n, true));
    vars.emplace_back("builtin_tools", Value::list(std::move(names)));
  }
  if (!req.date.empty()) vars.emplace_back("date_string", Value::string(req.date, true));
  if (req.extra.is_object())
    for (auto it = req.extra.begin(); it != req.extra.end(); ++it) vars.emplace_back(it.key(), Value::from_json(it.value(), true));

  // Limits grow with the request, so long conversations render while a
  // hostile template still cannot run away.
  size_t input = 0;
  for (const auto& m : req.messages) {
    auto c = m.find("content");
    if (c != m.end() && c->is_string()) input += c->get_ref<const std::string&>().size();
  }
  jinja::RenderOptions opt;
  opt.now = req.now;
  opt.limits.max_output = std::max(opt.limits.max_output, 4 * input);
  opt.limits.max_string = std::max(opt.limits.max_string, 4 * input);
  opt.limits.max_alloc = std::max<uint64_t>(opt.limits.max_alloc, uint64_t{64} * input);
  opt.limits.max_steps = std::max<uint64_t>(opt.limits.max_steps, uint64_t{200} * req.messages.size());

  const bool has_tools = req.tools.is_array() && !req.tools.empty();
  const jinja::Template& t = has_tools && impl_->tool_use ? *impl_->tool_use : impl_->tmpl;
  jinja::Rendered r;
  try {
    r = t.render(vars, opt);
  } catch (const Error& e) {
    if (std::strstr(e.what(), "raise_exception: ") != nullptr)
      throw Error(Status::invalid_argument, std::string("chat template rejected the conversation: ") + e.what());
    throw;
  }
  RenderedChat out;
  size_t pos = 0;
  for (const jinja::Span& s : r.user) {
    if (s.begin > pos) out.segments.push_back({pos, s.begin - pos, false});
    out.segments.push_back({s.begin, s.end - s.begin, true});
    pos = s.end;
  }
  if (pos < r.text.size()) out.segments.push_back({pos, r.text.size() - pos, false});
  out.text = std::move(r.text);
  return out;
}

}  // namespace paca
