// chat.h - chat formatting: a conversation (messages, tools, options) -> the
// prompt text a Llama model expects, rendered with the checkpoint's own Jinja
// chat template (jinja.h) or, when it has none, a built-in Llama 2, Llama 3 or
// Llama 3.1 format.
//
// Special tokens and user text. The rendered text is returned with a list of
// segments that say which bytes came from the caller's data (message
// contents, tool definitions, ...) and which from the template. A message
// that contains "<|eot_id|>" is rendered as that text, like every other
// character, but its segment is marked user. Encode the result as
//   split_for_encoding(rendered, special token texts)
// gives it: every special-token text that lies wholly inside a template
// segment becomes a control piece (encode it as its token id); everything
// between them is one plain piece, to be encoded with special-token
// recognition OFF (user content and template text alike) and without an
// extra BOS when the text already starts with the BOS text. Plain pieces span
// segment boundaries on purpose: splitting at every boundary would change the
// tokenization of ordinary text ("[INST] " + "hello" is not encoded like
// "[INST] hello"). For a conversation without special-token text in its data
// this gives exactly the ids of encoding the whole text with special tokens
// recognised, which is what transformers does.
#pragma once

#include <nlohmann/json.hpp>

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "tokenizer/tokenizer.h"

namespace paca {

struct Checkpoint;
struct GgufFile;
struct ModelConfig;

struct ChatRequest {
  // [{"role": "system"|"user"|"assistant"|"ipython"|"tool", "content": ...,
  //   optional "tool_calls": [{"type": "function", "function": {"name", "arguments"}}], ...}]
  // Passed to the template as they are (roles are the template's business).
  nlohmann::ordered_json messages = nlohmann::ordered_json::array();
  // null, or an array of tool definitions: {"type": "function", "function":
  // {"name", "description", "parameters"}} (JSON schema), as in transformers.
  nlohmann::ordered_json tools;
  // Llama 3.1 built-in tools ("brave_search", "wolfram_alpha",
  // "code_interpreter"); nullopt leaves the template variable undefined.
  std::optional<std::vector<std::string>> builtin_tools;
  bool add_generation_prompt = true;  // end with the assistant header
  std::string date;                   // date_string; "" = the template's default
  nlohmann::ordered_json extra = nlohmann::ordered_json::object();  // more variables (e.g. tools_in_user_message)
  std::optional<int64_t> now;         // clock of strftime_now (seconds since the epoch); default: now
};

struct ChatSegment {
  size_t offset = 0;
  size_t length = 0;
  bool user = false;  // from the request's data, not from the template
  bool operator==(const ChatSegment&) const = default;
};

struct RenderedChat {
  std::string text;
  std::vector<ChatSegment> segments;  // in order, covering text
};

using ChatPiece = TextPiece;  // a piece of rendered text for the tokenizer (tokenizer.h)
std::vector<ChatPiece> split_for_encoding(const RenderedChat& chat, const std::vector<std::string>& special_texts);
// The ids of a rendered chat: split_for_encoding with the tokenizer's control
// and unknown tokens as the special texts, then Tokenizer::encode_pieces. No
// BOS is added (the templates write it).
std::vector<int32_t> encode_chat(const Tokenizer& tokenizer, const RenderedChat& chat);

enum class ChatStyle { llama2, llama3, llama31 };
const char* chat_style_name(ChatStyle s);  // "llama2", "llama3", "llama3.1"
// bos 1 -> Llama 2; llama3 rope scaling or eos 128008 -> Llama 3.1; bos 128000 -> Llama 3;
// otherwise by vocabulary size.
ChatStyle detect_chat_style(const ModelConfig& c);
// The built-in templates (Meta's official chat templates of each family).
const char* builtin_chat_template(ChatStyle s);

// Special-token texts a template may use (bos_token, ...); unset ones stay undefined.
struct ChatTokens {
  std::optional<std::string> bos, eos, unk, pad;
};
ChatTokens builtin_chat_tokens(ChatStyle s);

class ChatTemplate {
 public:
  // A template from Jinja source; `tool_use_source` (may be empty) is used
  // instead when the request has tools. Throws Error(format/unsupported)
  // when the source does not parse.
  static ChatTemplate from_source(const std::string& source, ChatTokens tokens, std::string origin,
                                  const std::string& tool_use_source = {});
  static ChatTemplate builtin(ChatStyle style);
  // The checkpoint's own template: for a Hugging Face directory
  // chat_template.jinja, else tokenizer_config.json "chat_template" (a string,
  // or named templates: "default" and "tool_use"), else chat_template.json;
  // for GGUF tokenizer.chat_template (and tokenizer.chat_template.tool_use);
  // else the built-in format of detect_chat_style(). Special tokens from
  // tokenizer_config.json / the GGUF vocabulary.
  static ChatTemplate for_checkpoint(const Checkpoint& ck);
  // The template of a Hugging Face directory (as for_checkpoint), the built-in
  // `fallback` format when it has none.
  static ChatTemplate from_hf_directory(const std::string& dir, ChatStyle fallback);
  // The template of a GGUF file's metadata; `file` is the whole file (the
  // vocabulary gives the special-token texts). Fallback style from its
  // tokenizer ids and rope settings.
  static ChatTemplate from_gguf(const GgufFile& g, std::span<const uint8_t> file);
  // As for_checkpoint, without loading weights: a Hugging Face directory, a
  // GGUF file or a llama2.c checkpoint (which has no template: Llama 2 format).
  static ChatTemplate from_path(const std::string& path);

  // Renders a conversation. Throws Error(invalid_argument) for a malformed
  // request or when the template rejects the conversation (raise_exception),
  // Error(format) for a template error at run time.
  RenderedChat render(const ChatRequest& req) const;

  // Where the template came from: "builtin:llama3.1", "tokenizer_config.json", "gguf", ...
  const std::string& origin() const;
  const std::string& source() const;
  const ChatTokens& tokens() const;

 private:
  struct Impl;
  std::shared_ptr<const Impl> impl_;
};

}  // namespace paca
