// load.h - the whole load path: open the checkpoint, page the weights in
// (reporting progress), pick the backend, build the model.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>

#include "model/llama_model.h"
#include "model/quantize.h"
#include "parallel/world.h"

namespace paca {

struct LoadOptions {
  ModelOptions model;
  std::string device = "cpu";
  BackendSettings backend;     // which kernels run (CPU ISA, CUDA graphs and FP8 paths)
  std::string tokenizer_path;  // "" = the checkpoint's own tokenizer (see attach_tokenizer)
  // how the weight files come into memory (see MappedFile); automatic maps
  // them for a GPU device, whose weights are copied to the device anyway
  MappedFile::Mode weights = MappedFile::Mode::map;
  bool quantize_fp8 = false;   // quantize linear weights to FP8 at load (see quantize.h)
  Fp8Options fp8;
  enum class Fp8Mode { automatic, w8a8, w8a16 } fp8_mode = Fp8Mode::automatic;
  // Called with progress in [0, 1]; return false to abort (Error(cancelled)).
  std::function<bool(float)> progress;
  // Sharding (load_runner): tensor parallel x pipeline parallel ranks, as
  // threads of this process, or (world.size > 1) this process as one rank of
  // a multi-process group.
  int tensor_parallel = 1;
  int pipeline_parallel = 1;
  WorldOptions world;
};

std::unique_ptr<LlamaModel> load_model(const std::string& path, const LoadOptions& opt);
// The same for a checkpoint already in memory (e.g. synthetic_checkpoint).
std::unique_ptr<LlamaModel> load_model(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt);

// The same, sharded as opt asks (a plain LlamaModel when it asks for one rank).
std::unique_ptr<ModelRunner> load_runner(const std::string& path, const LoadOptions& opt);
std::unique_ptr<ModelRunner> load_runner(std::unique_ptr<Checkpoint> ck, const LoadOptions& opt);

// JSON description of a loaded model (format, shapes, dtypes, special
// tokens, memory), as paca_model_describe_json and `paca info --json` print it.
std::string describe_model_json(const ModelRunner& model);

}  // namespace paca
