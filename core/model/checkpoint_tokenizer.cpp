// checkpoint_tokenizer.cpp - finds and loads the tokenizer of a checkpoint
// (see attach_tokenizer in checkpoint.h):
//   HF directory  tokenizer.json, else tokenizer.model (SentencePiece or
//                 tiktoken), else original/tokenizer.model; tokenizer_config.json
//                 (add_bos_token, bos/eos tokens) applied on top
//   GGUF          the tokenizer.ggml.* keys
//   llama2.c      tok<vocab>.bin or tokenizer.bin in the same directory
// A tokenizer paca cannot run (Error unsupported), or a llama2.c candidate
// that does not fit, leaves the model without one and a note saying why.

#include <algorithm>

#include "model/checkpoint.h"
#include "tokenizer/tokenizer_files.h"
#include "util/error.h"
#include "util/file.h"
#include "util/mmap.h"

namespace paca {

namespace {

std::unique_ptr<Tokenizer> load_hf_dir(const std::string& dir) {
  for (const char* name : {"tokenizer.json", "tokenizer.model", "original/tokenizer.model"}) {
    std::string p = dir + "/" + name;
    if (!is_regular_file(p)) continue;
    auto tok = load_tokenizer_file(p);  // applies tokenizer_config.json beside p
    std::string config = dir + "/tokenizer_config.json";
    if (dir_of(p) != dir && is_regular_file(config)) {
      MappedFile c(config);
      apply_tokenizer_config(*tok, {reinterpret_cast<const char*>(c.data()), c.size()}, config);
    }
    return tok;
  }
  return nullptr;
}

std::unique_ptr<Tokenizer> load_llama2c_beside(const std::string& model_path, int n_vocab, std::string& note) {
  std::string dir = dir_of(model_path);
  for (std::string name : {"tok" + std::to_string(n_vocab) + ".bin", std::string("tokenizer.bin")}) {
    std::string p = dir + "/" + name;
    if (!is_regular_file(p)) continue;
    try {
      MappedFile f(p);
      return load_llama2c_tokenizer(f.bytes(), n_vocab, p);
    } catch (const Error& e) {
      note += std::string(note.empty() ? "" : "; ") + e.what();
    }
  }
  if (note.empty())
    note = "no tokenizer file beside the llama2.c checkpoint (tok" + std::to_string(n_vocab) +
           ".bin or tokenizer.bin; or pass tokenizer_path)";
  return nullptr;
}

}  // namespace

void attach_tokenizer(Checkpoint& ck, const std::string& tokenizer_path) {
  ModelConfig& c = ck.config;
  std::unique_ptr<Tokenizer> tok;
  std::string note;
  try {
    if (!tokenizer_path.empty()) {
      check(is_regular_file(tokenizer_path), Status::io, "tokenizer file '{}' does not exist", tokenizer_path);
      MappedFile f(tokenizer_path);
      auto kind = detect_tokenizer_file(f.bytes().first(std::min<size_t>(f.size(), 64)));
      tok = kind == TokenizerFileKind::llama2c ? load_llama2c_tokenizer(f.bytes(), c.n_vocab, tokenizer_path)
                                               : load_tokenizer_file(tokenizer_path);
    } else if (c.format == ModelFormat::hf_safetensors) {
      tok = load_hf_dir(ck.path);
      if (!tok) note = "the checkpoint directory has no tokenizer.json or tokenizer.model";
    } else if (c.format == ModelFormat::gguf) {
      if (ck.gguf && !ck.files.empty()) tok = load_gguf_tokenizer(*ck.gguf, ck.files[0]->bytes(), ck.path);
      if (!tok) note = "the GGUF file has no tokenizer.ggml.* vocabulary";
    } else {
      tok = load_llama2c_beside(ck.path, c.n_vocab, note);
    }
  } catch (const Error& e) {
    if (e.status() != Status::unsupported) throw;
    note = e.what();
  }
  if (!tok) {
    ck.tokenizer_note = note;
    return;
  }
  check(tok->n_tokens() <= c.n_vocab, Status::format,
        "{}: the tokenizer has {} tokens but the model's vocabulary has {}", tok->source(), tok->n_tokens(), c.n_vocab);
  tok->set_padded_size(c.n_vocab);
  if (c.bos_id < 0) c.bos_id = tok->bos_id();
  for (int id : c.eos_ids) tok->add_eog(id);
  for (int32_t id : tok->eog_ids())
    if (std::find(c.eos_ids.begin(), c.eos_ids.end(), id) == c.eos_ids.end()) c.eos_ids.push_back(id);
  ck.tokenizer = std::move(tok);
  ck.tokenizer_note.clear();
}

}  // namespace paca
