/*
 * paca_experimental.h - entry points of paca whose form may still change.
 *
 * What is declared here works and is tested like the rest of the C ABI, but
 * it is outside paca.h's compatibility promise: a minor version may change a
 * struct or a signature here (said in the release notes). Today: the
 * seeded-random test models (files and in-memory) with the named Llama
 * shapes, and the sharding planner's JSON.
 */
#ifndef PACA_PACA_EXPERIMENTAL_H
#define PACA_PACA_EXPERIMENTAL_H

#include "paca/paca.h"

#ifdef __cplusplus
extern "C" {
#endif

/* ---- test models ----------------------------------------------------------- */
typedef struct paca_test_model_params {
  uint32_t struct_size;  /* sizeof(paca_test_model_params) */
  uint64_t seed;
  int32_t dim;
  int32_t n_layers;
  int32_t n_heads;
  int32_t n_kv_heads;
  int32_t ffn_dim;
  int32_t n_vocab;
  int32_t max_context;
  float rope_theta;
  int32_t tied_embeddings;
} paca_test_model_params;

/**
 * Defaults: a ~1M-parameter Llama-3-shaped model (GQA, vocab 4096).
 * paca_test_model_params_init(&p, sizeof p) fills the first `size` bytes of
 * *p with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p
 * is NULL or size < sizeof(uint32_t). Since v0.4 (v0.1-v0.3:
 * paca_test_model_params_default()).
 */
PACA_API paca_status paca_test_model_params_init(paca_test_model_params* p, size_t size);

/**
 * Writes a seeded-random Llama checkpoint in Hugging Face layout (config.json,
 * generation_config.json, model.safetensors in BF16) into directory dir,
 * creating it if needed. The text such a model writes is meaningless; it exists
 * so that everything can be run without downloading weights. Since v0.1.
 */
PACA_API paca_status paca_make_test_model(const char* dir, const paca_test_model_params* params);

/**
 * Builds the model paca_make_test_model would write, in memory only (its
 * weights equal the written model's bit for bit), and loads it with params
 * (tokenizer_path must be NULL: it has no tokenizer). Meant for benchmarks of
 * shapes too large to write to disk: returns PACA_ERR_OUT_OF_MEMORY, naming
 * the sizes, when its BF16 weights would take more than 3/4 of physical
 * memory. Since v0.2.
 */
PACA_API paca_status paca_model_load_synthetic(const paca_test_model_params* shape, const paca_model_params* params,
                                               paca_model** out_model);

/**
 * Fills *out with a named Llama shape (head_dim = dim / n_heads in all of
 * them): "llama2-7b", "llama2-13b", "llama2-70b", "llama3-8b", "llama3-70b",
 * "llama3.1-8b", "llama3.1-70b", "llama3.1-405b", "llama3.2-1b",
 * "llama3.2-3b", and the test shapes "tiny" and "110m"; seed and the fields
 * not given by the shape keep their defaults. An unknown name is
 * PACA_ERR_INVALID_ARGUMENT listing the known ones. Since v0.2.
 */
PACA_API paca_status paca_test_model_params_for_shape(const char* name, paca_test_model_params* out);

/* ---- planning ------------------------------------------------------------ */
/**
 * The paper plan of a sharded deployment, as JSON. request_json:
 *   {"shape": "llama3.1-405b" | {"dim", "n_layers", "n_heads", "n_kv_heads",
 *             "head_dim", "ffn_dim", "n_vocab", "tied_embeddings"},
 *    "tp": 8, "pp": 1, "weights": "bf16" | "fp8", "fp8_attention": false,
 *    "fp8_keep_first_last": true, "kv_dtype": "bf16" | "f32" | "fp8",
 *    "context": 131072, "batch": 8, "prefill_chunk": 256,
 *    "device_memory_gb": 80, "reserve_gb": 1.07}
 * (only "shape" is required). The answer lists, per rank (stage-major), its
 * layers and the bytes of its weights, KV cache and workspace, and whether
 * the largest rank fits device memory minus the reserve:
 *   {"shape": {...}, "tp", "pp", "weights", "kv_dtype", "context", "batch",
 *    "kv_heads_per_rank", "kv_bytes_per_token_per_rank",
 *    "ranks": [{"tp_rank", "stage", "layers": [first, count], "weight_bytes",
 *               "kv_bytes", "workspace_bytes", "total_bytes"}],
 *    "max_rank_bytes", "fits"}
 * The split is that of paca's tensor/pipeline parallelism: q/k/v/gate/up by
 * output rows (whole heads; kv heads replicated when tp exceeds their count),
 * o/down by input columns, embedding and LM head by vocabulary, norms
 * replicated; FP8 weights carry one f32 scale per output row. A layout that
 * cannot be split (tp not dividing the heads or the FFN) is
 * PACA_ERR_INVALID_ARGUMENT naming why. Buffer rules as paca_chat_format.
 * Since v0.2.
 */
PACA_API paca_status paca_plan_json(const char* request_json, char* buf, size_t cap, size_t* out_needed);

#ifdef __cplusplus
}
#endif

#endif /* PACA_PACA_EXPERIMENTAL_H */
