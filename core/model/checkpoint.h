// checkpoint.h - opens a checkpoint in any supported format and presents its
// weights under one set of canonical names, zero-copy from the mapped files:
//   embed [V, D], output [V, D] (absent when tied), norm [D], and per layer i
//   L<i>.attn_norm [D], L<i>.wq [H*d, D], L<i>.wk [Hkv*d, D], L<i>.wv [Hkv*d, D],
//   L<i>.wo [D, H*d], L<i>.ffn_norm [D], L<i>.w1 (gate) [F, D],
//   L<i>.w2 (down) [D, F], L<i>.w3 (up) [F, D].
#pragma once

#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/config.h"
#include "format/gguf.h"
#include "format/tensor.h"
#include "util/mmap.h"

namespace paca {

class Tokenizer;

struct Checkpoint {
  std::string path;                  // what was opened: a directory or a file
  ModelConfig config;
  std::unique_ptr<GgufFile> gguf;    // GGUF metadata (offsets into files[0]); null for other formats
  std::vector<std::unique_ptr<MappedFile>> files;
  MappedFile::Mode file_mode = MappedFile::Mode::map;  // how files are brought into memory
  // true when no weight lives in a file mapping: every file was read into
  // memory (a synthetic checkpoint has no files)
  bool weights_read() const {
    for (const auto& f : files)
      if (!f->was_read()) return false;
    return true;
  }
  std::map<std::string, TensorView> tensors;  // canonical name -> view
  // FP8 side tensors: "<canonical>.weight_scale" / "<canonical>.input_scale"
  std::map<std::string, TensorView> aux;
  // memory the checkpoint owns (converted scales, weights quantized at load);
  // deques keep element addresses stable as they grow
  std::deque<std::vector<float>> owned_f32;
  std::deque<std::vector<uint8_t>> owned_u8;
  std::vector<float> rope_divisors;           // GGUF rope_freqs.weight (empty when absent)
  std::shared_ptr<Tokenizer> tokenizer;       // null when the checkpoint has none (see tokenizer_note)
  int lm_head_rows = 0;  // 0: "output" has n_vocab rows; a tensor-parallel shard (parallel/shard.h):
                         // its LM-head slice holds at most this many (the last may hold fewer)
  std::string tokenizer_note;                 // why there is no tokenizer, or "" when there is one
  // A pipeline stage (parallel/shard.h) holds the embedding only on the
  // first stage and the final norm and LM head only on the last.
  bool has_embedding = true;
  bool has_head = true;

  const TensorView* find(const std::string& name) const;
};

std::string layer_tensor(int layer, const char* what);  // "L<layer>.<what>"

// Detects the format of path (see paca_model_load), parses and validates the
// configuration and the tensor table, and checks every tensor the model needs
// for presence, dtype and shape. Throws Error naming the first problem.
// tokenizer_path names the tokenizer file to use ("" = the checkpoint's own;
// llama2.c checkpoints look for tok<vocab>.bin or tokenizer.bin beside them).
// file_mode: map the weight files (default) or read them into memory.
std::unique_ptr<Checkpoint> open_checkpoint(const std::string& path, const std::string& tokenizer_path = "",
                                            MappedFile::Mode file_mode = MappedFile::Mode::map);

// Parsers of each format, on bytes in memory (exposed for tests and fuzzers).
// Each fills config and tensors (views into `file`) of `out`.
void read_gguf_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& out);
void read_llama2c_checkpoint(std::span<const uint8_t> file, const std::string& what, Checkpoint& out);

// Resolves the scales of every FP8 tensor (per row or per tensor, F32/BF16/F16,
// finite and >= 0) into owned f32 rows and sets each tensor's activation
// treatment from the quantization config. Throws on missing or bad scales.
void resolve_fp8_scales(Checkpoint& ckpt);

// Loads the checkpoint's tokenizer (tokenizer.json / tokenizer.model of an HF
// directory, the tokenizer.ggml.* keys of a GGUF, a llama2.c tokenizer .bin)
// or the file tokenizer_path, checks it against the model's vocabulary and
// joins its end-of-generation ids to config.eos_ids. A checkpoint without a
// usable tokenizer keeps tokenizer null and says why in tokenizer_note; a
// malformed tokenizer file throws. (checkpoint_tokenizer.cpp)
void attach_tokenizer(Checkpoint& ckpt, const std::string& tokenizer_path);

// Checks presence, dtype and [rows, cols] of every tensor the Llama forward
// pass needs against out.config (which it validates first).
void check_llama_tensors(const Checkpoint& ckpt);

}  // namespace paca
