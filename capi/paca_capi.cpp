// paca_capi.cpp - the C ABI over the core. No logic lives here: validate
// arguments, translate exceptions into paca_status + paca_last_error, own
// handle lifetimes.
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <new>
#include <string>
#include <vector>

#include "capi_internal.h"
#include "model/test_model.h"
#include "runtime/load.h"

using namespace paca::capi;

namespace {

// A caller's C string, at most max bytes: false when it has no NUL within them.
bool bounded_string(const char* s, size_t max, std::string& out) {
  const size_t n = strnlen(s, max + 1);
  if (n > max) return false;
  out.assign(s, n);
  return true;
}

// The sharding fields of model params into load options (the layout itself
// is checked against the model by the core).
paca_status parallel_options_of(const paca_model_params& p, const std::string& f, paca::LoadOptions& opt) {
  PACA_REQUIRE(p.tensor_parallel >= 0 && p.tensor_parallel <= 1024, f + ": tensor_parallel must be in 0..1024");
  PACA_REQUIRE(p.pipeline_parallel >= 0 && p.pipeline_parallel <= 1024, f + ": pipeline_parallel must be in 0..1024");
  PACA_REQUIRE(p.world_size >= 0 && p.world_size <= 1024, f + ": world_size must be in 0..1024");
  PACA_REQUIRE(p.rank >= -1 && p.rank < 1024, f + ": rank must be -1 (from mpirun) or in 0..1023");
  PACA_REQUIRE(p.comm_timeout_ms >= 0 && p.comm_timeout_ms <= 86400000, f + ": comm_timeout_ms must be in 0..86400000");
  opt.tensor_parallel = std::max(1, p.tensor_parallel);
  opt.pipeline_parallel = std::max(1, p.pipeline_parallel);
  opt.world.size = std::max(1, p.world_size);
  opt.world.rank = p.rank;
  opt.world.timeout = std::chrono::milliseconds(p.comm_timeout_ms == 0 ? 60000 : p.comm_timeout_ms);
  if (p.rendezvous != nullptr)
    PACA_REQUIRE(bounded_string(p.rendezvous, 300, opt.world.rendezvous), f + ": rendezvous is longer than 300 bytes");
  if (p.devices != nullptr) {
    std::string list;
    PACA_REQUIRE(bounded_string(p.devices, 4096, list), f + ": devices is longer than 4096 bytes");
    std::vector<std::string> devs;
    for (size_t at = 0;;) {
      const size_t comma = std::min(list.find(',', at), list.size());
      std::string d = list.substr(at, comma - at);
      while (!d.empty() && d.front() == ' ') d.erase(d.begin());
      while (!d.empty() && d.back() == ' ') d.pop_back();
      PACA_REQUIRE(!d.empty(), f + ": devices '" + list + "' has an empty entry");
      devs.push_back(d);
      if (comma == list.size()) break;
      at = comma + 1;
    }
    const size_t local = opt.world.size > 1 ? 1 : static_cast<size_t>(opt.tensor_parallel) * opt.pipeline_parallel;
    PACA_REQUIRE(devs.size() == 1 || devs.size() == local,
                 f + ": devices lists " + std::to_string(devs.size()) + " devices for " + std::to_string(local) +
                     " rank(s) in this process (give one for all, or one per rank)");
    for (const std::string& d : devs)
      if (d != devs[0])
        return set_error(PACA_ERR_UNSUPPORTED, f + ": ranks on different devices ('" + devs[0] + "', '" + d +
                                                   "') are not supported yet");
    PACA_REQUIRE(p.device == nullptr || devs[0] == p.device,
                 f + ": device '" + std::string(p.device != nullptr ? p.device : "") + "' and devices '" + list + "' disagree");
    opt.device = devs[0];
  }
  return PACA_OK;
}

// Validates model params (after read_params) into load options; a non-OK
// status after setting the error.
paca_status load_options_of(const paca_model_params& p, const char* fn, paca::LoadOptions& opt) {
  const std::string f = fn;
  PACA_REQUIRE(p.n_threads >= 0 && p.n_threads <= 4096, f + ": n_threads must be in 0..4096");
  PACA_REQUIRE(p.kv_dtype == PACA_KV_AUTO || p.kv_dtype == PACA_KV_F32 || p.kv_dtype == PACA_KV_BF16,
               f + ": unknown kv_dtype");
  PACA_REQUIRE(p.kv_block_tokens >= 0 && p.kv_block_tokens <= 4096, f + ": kv_block_tokens must be in 0..4096");
  PACA_REQUIRE(p.weight_dtype == PACA_WEIGHTS_AS_STORED || p.weight_dtype == PACA_WEIGHTS_FP8, f + ": unknown weight_dtype");
  PACA_REQUIRE((p.fp8_targets & ~(PACA_FP8_MLP | PACA_FP8_ATTENTION | PACA_FP8_KEEP_FIRST_LAST)) == 0,
               f + ": unknown bits in fp8_targets");
  PACA_REQUIRE(p.fp8_mode >= PACA_FP8_AUTO && p.fp8_mode <= PACA_FP8_W8A16, f + ": unknown fp8_mode");
  PACA_REQUIRE(p.kv_memory_fraction >= 0.0f && p.kv_memory_fraction <= 1.0f,  // false for NaN
               f + ": kv_memory_fraction must be 0 (no reservation) or in (0, 1]");
  PACA_REQUIRE(p.load_mode == PACA_LOAD_MMAP || p.load_mode == PACA_LOAD_READ || p.load_mode == PACA_LOAD_AUTO,
               f + ": unknown load_mode");
  for (const auto& [value, name] : {std::pair{p.cuda_graphs, "cuda_graphs"}, {p.cuda_fp8_decode_w8a16, "cuda_fp8_decode_w8a16"},
                                    {p.cuda_fp8_prefill_w8a8, "cuda_fp8_prefill_w8a8"},
                                    {p.cuda_fp8_fused_norm, "cuda_fp8_fused_norm"}})
    PACA_REQUIRE(value == 0 || value == 1, f + ": " + name + " must be 0 or 1");
  if (p.cpu_isa != nullptr) {
    const size_t n = strnlen(p.cpu_isa, 64);
    PACA_REQUIRE(n < 64, f + ": cpu_isa is not a kernel set's name");
    opt.backend.cpu_isa.assign(p.cpu_isa, n);
  }
  opt.backend.cuda_graphs = p.cuda_graphs == 1;
  opt.backend.cuda_fp8_decode_w8a16 = p.cuda_fp8_decode_w8a16 == 1;
  opt.backend.cuda_fp8_prefill_w8a8 = p.cuda_fp8_prefill_w8a8 == 1;
  opt.backend.cuda_fp8_fused_norm = p.cuda_fp8_fused_norm == 1;
  opt.quantize_fp8 = p.weight_dtype == PACA_WEIGHTS_FP8;
  if (p.fp8_targets != 0) {
    opt.fp8.mlp = (p.fp8_targets & PACA_FP8_MLP) != 0;
    opt.fp8.attention = (p.fp8_targets & PACA_FP8_ATTENTION) != 0;
    opt.fp8.keep_first_last = (p.fp8_targets & PACA_FP8_KEEP_FIRST_LAST) != 0;
  }
  opt.fp8_mode = p.fp8_mode == PACA_FP8_W8A8    ? paca::LoadOptions::Fp8Mode::w8a8
                 : p.fp8_mode == PACA_FP8_W8A16 ? paca::LoadOptions::Fp8Mode::w8a16
                                                : paca::LoadOptions::Fp8Mode::automatic;
  opt.device = p.device != nullptr ? p.device : "cpu";
  if (paca_status st = parallel_options_of(p, f, opt); st != PACA_OK) return st;
  opt.tokenizer_path = p.tokenizer_path != nullptr ? p.tokenizer_path : "";
  opt.weights = p.load_mode == PACA_LOAD_READ   ? paca::MappedFile::Mode::read
                : p.load_mode == PACA_LOAD_AUTO ? paca::MappedFile::Mode::automatic
                                                : paca::MappedFile::Mode::map;
  opt.model.n_threads = p.n_threads;
  // automatic: bf16 on a GPU (half the bytes each decode step reads), exact f32 on the CPU
  const bool bf16 = p.kv_dtype == PACA_KV_BF16 || (p.kv_dtype == PACA_KV_AUTO && paca::parse_cuda_device(opt.device) >= 0);
  opt.model.kv_dtype = bf16 ? paca::DType::bf16 : paca::DType::f32;
  opt.model.kv_block_tokens = p.kv_block_tokens == 0 ? 16 : p.kv_block_tokens;
  opt.model.log = paca::LogSink{p.log, p.log_user, p.log_level};
  if (p.progress != nullptr) {
    paca_progress_fn cb = p.progress;
    void* user = p.progress_user;
    opt.progress = [cb, user](float x) { return cb(user, x) == 0; };
  }
  return PACA_OK;
}

// The handle of a loaded model; its KV pool reserves kv_fraction of the
// device's free memory (0: unbounded, see paca_model_params).
paca_model* model_handle(std::unique_ptr<paca::ModelRunner> model, float kv_fraction) {
  auto st = std::make_shared<ModelState>();
  st->model = std::move(model);
  paca::Backend& kv = st->model->kv_backend();
  const size_t blocks =
      kv_fraction > 0 ? paca::kv_pool_blocks(kv_fraction, kv.memory(), st->model->kv_layout().block_bytes(), kv.name(),
                                             paca::kv_headroom_bytes(st->model->config()))
                      : 0;
  st->pool = std::make_unique<paca::BlockPool>(kv, st->model->kv_layout(), blocks);
  auto m = std::make_unique<paca_model>();
  m->model = st->model.get();
  m->state = std::move(st);
  return m.release();
}

paca::TestModelSpec test_spec_of(const paca_test_model_params& p) {
  paca::TestModelSpec s;
  s.seed = p.seed;
  s.dim = p.dim;
  s.n_layers = p.n_layers;
  s.n_heads = p.n_heads;
  s.n_kv_heads = p.n_kv_heads;
  s.ffn_dim = p.ffn_dim;
  s.n_vocab = p.n_vocab;
  s.max_context = p.max_context;
  s.rope_theta = p.rope_theta;
  s.tied_embeddings = p.tied_embeddings != 0;
  return s;
}

}  // namespace

namespace paca::capi {

paca_model_params default_model_params() {
  auto p = zeroed_params<paca_model_params>();
  p.n_threads = 0;
  p.device = nullptr;
  p.log_level = PACA_LOG_WARN;
  p.kv_dtype = PACA_KV_AUTO;
  p.kv_block_tokens = 16;
  p.load_mode = PACA_LOAD_AUTO;
  p.tensor_parallel = 1;
  p.pipeline_parallel = 1;
  p.rank = -1;
  p.world_size = 1;
  p.comm_timeout_ms = 60000;
  p.cpu_isa = nullptr;
  p.cuda_graphs = 1;
  p.cuda_fp8_decode_w8a16 = 0;
  p.cuda_fp8_prefill_w8a8 = 0;
  p.cuda_fp8_fused_norm = 1;
  return p;
}

paca_session_params default_session_params() {
  auto p = zeroed_params<paca_session_params>();
  p.n_ctx = 0;
  return p;
}

paca_test_model_params default_test_model_params() {
  auto p = zeroed_params<paca_test_model_params>();
  paca::TestModelSpec s;
  p.seed = s.seed;
  p.dim = s.dim;
  p.n_layers = s.n_layers;
  p.n_heads = s.n_heads;
  p.n_kv_heads = s.n_kv_heads;
  p.ffn_dim = s.ffn_dim;
  p.n_vocab = s.n_vocab;
  p.max_context = s.max_context;
  p.rope_theta = s.rope_theta;
  p.tied_embeddings = 0;
  return p;
}

}  // namespace paca::capi

extern "C" {

PACA_API const char* paca_version(void) { return PACA_VERSION_TEXT; }
PACA_API uint32_t paca_abi_version(void) { return PACA_ABI_VERSION; }

PACA_API const char* paca_status_name(paca_status s) {
  switch (s) {
    case PACA_OK: return "PACA_OK";
    case PACA_ERR_INVALID_ARGUMENT: return "PACA_ERR_INVALID_ARGUMENT";
    case PACA_ERR_IO: return "PACA_ERR_IO";
    case PACA_ERR_FORMAT: return "PACA_ERR_FORMAT";
    case PACA_ERR_UNSUPPORTED: return "PACA_ERR_UNSUPPORTED";
    case PACA_ERR_OUT_OF_MEMORY: return "PACA_ERR_OUT_OF_MEMORY";
    case PACA_ERR_CONTEXT_FULL: return "PACA_ERR_CONTEXT_FULL";
    case PACA_ERR_CANCELLED: return "PACA_ERR_CANCELLED";
    case PACA_ERR_DEVICE: return "PACA_ERR_DEVICE";
    case PACA_ERR_BUFFER_TOO_SMALL: return "PACA_ERR_BUFFER_TOO_SMALL";
    case PACA_ERR_STATE: return "PACA_ERR_STATE";
    case PACA_ERR_BUSY: return "PACA_ERR_BUSY";
    case PACA_ERR_TIMEOUT: return "PACA_ERR_TIMEOUT";
    case PACA_ERR_INTERNAL: return "PACA_ERR_INTERNAL";
  }
  return "PACA_ERR_UNKNOWN";
}

PACA_API const char* paca_last_error(void) { return t_last_error.c_str(); }

PACA_API void paca_set_log_callback(paca_log_fn fn, void* user, int32_t max_level) {
  paca::set_global_log_sink(fn, user, max_level);
}

PACA_API paca_status paca_model_params_init(paca_model_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_model_params(), "paca_model_params_init");
}


PACA_API paca_status paca_model_load(const char* path, const paca_model_params* params, paca_model** out_model) {
  PACA_REQUIRE(out_model != nullptr, "paca_model_load: out_model is NULL");
  *out_model = nullptr;
  PACA_REQUIRE(path != nullptr, "paca_model_load: path is NULL");
  paca_model_params p = paca::capi::default_model_params();
  if (!read_params(params, p, "paca_model_load")) return PACA_ERR_INVALID_ARGUMENT;
  paca::LoadOptions opt;
  if (paca_status st = load_options_of(p, "paca_model_load", opt); st != PACA_OK) return st;
  return guarded([&] { *out_model = model_handle(paca::load_runner(path, opt), p.kv_memory_fraction); });
}

PACA_API paca_status paca_model_load_synthetic(const paca_test_model_params* shape, const paca_model_params* params,
                                               paca_model** out_model) {
  PACA_REQUIRE(out_model != nullptr, "paca_model_load_synthetic: out_model is NULL");
  *out_model = nullptr;
  paca_test_model_params t = paca::capi::default_test_model_params();
  if (!read_params(shape, t, "paca_model_load_synthetic")) return PACA_ERR_INVALID_ARGUMENT;
  paca_model_params p = paca::capi::default_model_params();
  if (!read_params(params, p, "paca_model_load_synthetic")) return PACA_ERR_INVALID_ARGUMENT;
  paca::LoadOptions opt;
  if (paca_status st = load_options_of(p, "paca_model_load_synthetic", opt); st != PACA_OK) return st;
  PACA_REQUIRE(p.tokenizer_path == nullptr, "paca_model_load_synthetic: a synthetic model takes no tokenizer_path");
  return guarded([&] {
    const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
    const uint64_t ram = pages > 0 && page > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(page) : UINT64_MAX;
    // weights may take at most 3/4 of physical memory
    *out_model = model_handle(paca::load_runner(paca::synthetic_checkpoint(test_spec_of(t), ram / 4 * 3), opt),
                              p.kv_memory_fraction);
  });
}

PACA_API void paca_model_free(paca_model* model) { delete model; }

PACA_API paca_status paca_model_get_info(const paca_model* model, paca_model_info* out_info) {
  PACA_REQUIRE(model != nullptr, "paca_model_get_info: model is NULL");
  PACA_REQUIRE(out_info != nullptr, "paca_model_get_info: out_info is NULL");
  PACA_REQUIRE(out_info->struct_size >= sizeof(uint32_t), "paca_model_get_info: set out_info->struct_size");
  const paca::ModelConfig& c = model->model->config();
  paca_model_info i;
  std::memset(&i, 0, sizeof i);
  i.struct_size = sizeof i;
  i.format = static_cast<int32_t>(c.format);
  i.n_vocab = c.n_vocab;
  i.dim = c.dim;
  i.n_layers = c.n_layers;
  i.n_heads = c.n_heads;
  i.n_kv_heads = c.n_kv_heads;
  i.head_dim = c.head_dim;
  i.ffn_dim = c.ffn_dim;
  i.max_context = c.max_context;
  i.rope_theta = c.rope_theta;
  i.rope_scaling = c.rope_scaling == paca::RopeScaling::llama3 ? PACA_ROPE_SCALING_LLAMA3 : PACA_ROPE_SCALING_NONE;
  i.rope_factor = c.rope_factor;
  i.norm_eps = c.norm_eps;
  i.tied_embeddings = c.tied_embeddings ? 1 : 0;
  i.bos_id = c.bos_id;
  i.n_eos_ids = static_cast<int32_t>(std::min<size_t>(c.eos_ids.size(), PACA_MAX_EOS_IDS));
  for (int k = 0; k < i.n_eos_ids; ++k) i.eos_ids[k] = c.eos_ids[k];
  i.n_params = model->model->n_params();
  i.weight_bytes = model->model->weight_bytes();
  i.kv_bytes_per_token = model->model->kv_layout().block_bytes() / model->model->kv_layout().block_tokens;
  i.load_mode = model->model->checkpoint().weights_read() ? PACA_LOAD_READ : PACA_LOAD_MMAP;
  size_t n = std::min<size_t>(out_info->struct_size, sizeof i);
  uint32_t caller_size = out_info->struct_size;
  std::memcpy(out_info, &i, n);
  out_info->struct_size = caller_size;
  t_last_error.clear();
  return PACA_OK;
}

PACA_API paca_status paca_model_describe_json(const paca_model* model, char* buf, size_t cap, size_t* out_needed) {
  PACA_REQUIRE(model != nullptr, "paca_model_describe_json: model is NULL");
  PACA_REQUIRE(buf != nullptr || cap == 0, "paca_model_describe_json: buf is NULL but cap is not 0");
  std::string s;
  paca_status st = guarded([&] { s = paca::describe_model_json(*model->model); });
  if (st != PACA_OK) return st;
  return write_string(s, buf, cap, out_needed, "paca_model_describe_json");
}

PACA_API paca_status paca_session_params_init(paca_session_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_session_params(), "paca_session_params_init");
}

PACA_API paca_status paca_session_create(paca_model* model, const paca_session_params* params,
                                         paca_session** out_session) {
  PACA_REQUIRE(out_session != nullptr, "paca_session_create: out_session is NULL");
  *out_session = nullptr;
  PACA_REQUIRE(model != nullptr, "paca_session_create: model is NULL");
  paca_session_params p = paca::capi::default_session_params();
  if (!read_params(params, p, "paca_session_create")) return PACA_ERR_INVALID_ARGUMENT;
  PACA_REQUIRE(p.n_ctx >= 0, "paca_session_create: n_ctx must be >= 0");
  return guarded([&] {
    auto s = std::make_unique<paca_session>();
    s->state = model->state;
    s->session = std::make_unique<paca::Session>(*model->model, *model->state->pool, p.n_ctx);
    *out_session = s.release();
  });
}

PACA_API void paca_session_free(paca_session* session) { delete session; }

PACA_API paca_status paca_session_prefill(paca_session* session, const int32_t* tokens, size_t n) {
  PACA_REQUIRE(session != nullptr, "paca_session_prefill: session is NULL");
  PACA_REQUIRE(tokens != nullptr || n == 0, "paca_session_prefill: tokens is NULL");
  PACA_REQUIRE(n > 0, "paca_session_prefill: no tokens given (n = 0)");
  return guarded([&] { session->session->prefill(std::span<const int32_t>(tokens, n)); });
}

PACA_API paca_status paca_session_decode(paca_session* session, int32_t token) {
  PACA_REQUIRE(session != nullptr, "paca_session_decode: session is NULL");
  return guarded([&] { session->session->prefill(std::span<const int32_t>(&token, 1)); });
}

PACA_API paca_status paca_session_logits(const paca_session* session, const float** out_logits, size_t* out_n_vocab) {
  PACA_REQUIRE(session != nullptr, "paca_session_logits: session is NULL");
  PACA_REQUIRE(out_logits != nullptr, "paca_session_logits: out_logits is NULL");
  *out_logits = nullptr;
  if (out_n_vocab != nullptr) *out_n_vocab = 0;
  if (!session->session->has_logits())
    return set_error(PACA_ERR_STATE, "paca_session_logits: no logits (run prefill or decode first)");
  *out_logits = session->session->logits().data();
  if (out_n_vocab != nullptr) *out_n_vocab = session->session->logits().size();
  t_last_error.clear();
  return PACA_OK;
}

PACA_API paca_status paca_session_rewind(paca_session* session, size_t n_tokens) {
  PACA_REQUIRE(session != nullptr, "paca_session_rewind: session is NULL");
  return guarded([&] { session->session->rewind(n_tokens); });
}

PACA_API size_t paca_session_length(const paca_session* session) {
  return session != nullptr ? session->session->length() : 0;
}

PACA_API size_t paca_session_context_size(const paca_session* session) {
  return session != nullptr ? session->session->context_size() : 0;
}

PACA_API paca_status paca_session_tokens(const paca_session* session, int32_t* buf, size_t cap, size_t* out_needed) {
  PACA_REQUIRE(session != nullptr, "paca_session_tokens: session is NULL");
  PACA_REQUIRE(buf != nullptr || cap == 0, "paca_session_tokens: buf is NULL but cap is not 0");
  const auto& t = session->session->tokens();
  const paca_status st = write_ids(t, buf, cap, out_needed, "paca_session_tokens");
  if (st == PACA_OK) t_last_error.clear();
  return st;
}

PACA_API void paca_session_cancel(paca_session* session) {
  if (session != nullptr) session->session->cancel();
}

PACA_API paca_status paca_test_model_params_init(paca_test_model_params* p, size_t size) {
  return paca::capi::init_params(p, size, paca::capi::default_test_model_params(), "paca_test_model_params_init");
}

PACA_API paca_status paca_make_test_model(const char* dir, const paca_test_model_params* params) {
  PACA_REQUIRE(dir != nullptr && dir[0] != '\0', "paca_make_test_model: dir is NULL or empty");
  paca_test_model_params p = paca::capi::default_test_model_params();
  if (!read_params(params, p, "paca_make_test_model")) return PACA_ERR_INVALID_ARGUMENT;
  return guarded([&] { paca::write_test_model(dir, test_spec_of(p)); });
}

}  // extern "C"
