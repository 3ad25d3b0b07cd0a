/*
 * paca.h - the public C ABI of paca, an embeddable runtime for Llama models.
 *
 * This header is the contract. Everything not declared here is private.
 *
 * Conventions
 *  - Every symbol is prefixed paca_ / PACA_. C99, no C++ types.
 *  - Opaque handles with create/free pairs; every free accepts NULL.
 *  - Every fallible call returns paca_status. On failure the message of the
 *    last error on the calling thread is available from paca_last_error().
 *    No exception, abort() or exit() ever crosses this boundary.
 *  - Output parameters come last and are named out_*.
 *  - Parameter structs start with uint32_t struct_size; obtain defaults from
 *    paca_X_params_default(); pass NULL for defaults. Fields are only ever
 *    appended, so a caller compiled against an older header keeps working.
 *  - Strings are UTF-8 and NUL-terminated unless a length is given.
 *
 * Thread safety
 *  - paca_model: may be shared by any number of threads. Forward passes of
 *    sessions that share a model are serialised on the model's thread pool.
 *  - paca_session: used by one thread at a time, except
 *    paca_session_cancel(), which any thread may call at any time.
 *  - paca_last_error(): per thread.
 */
#ifndef PACA_PACA_H
#define PACA_PACA_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* ---- export macro -------------------------------------------------------- */
#if defined(PACA_STATIC_DEFINE)
#define PACA_API
#elif defined(_WIN32)
#ifdef PACA_BUILDING_LIBRARY
#define PACA_API __declspec(dllexport)
#else
#define PACA_API __declspec(dllimport)
#endif
#else
#define PACA_API __attribute__((visibility("default")))
#endif

/* ---- versions ------------------------------------------------------------ */
#define PACA_VERSION_MAJOR 0
#define PACA_VERSION_MINOR 1
#define PACA_VERSION_PATCH 0
/* Bumped on any incompatible ABI change; equals the shared library SOVERSION. */
#define PACA_ABI_VERSION 0

/** Library version as "MAJOR.MINOR.PATCH". Since v0.1. */
PACA_API const char* paca_version(void);
/** ABI version of the loaded library; compare with PACA_ABI_VERSION. Since v0.1. */
PACA_API uint32_t paca_abi_version(void);

/* ---- status and errors --------------------------------------------------- */
/* Values are pinned: they never change meaning. */
typedef enum paca_status {
  PACA_OK = 0,
  PACA_ERR_INVALID_ARGUMENT = 1, /* a NULL or out-of-range argument */
  PACA_ERR_IO = 2,               /* file missing, unreadable, mmap failed */
  PACA_ERR_FORMAT = 3,           /* a file is malformed or inconsistent */
  PACA_ERR_UNSUPPORTED = 4,      /* well-formed, but not supported (arch, dtype) */
  PACA_ERR_OUT_OF_MEMORY = 5,
  PACA_ERR_CONTEXT_FULL = 6,     /* the session's context cannot hold the tokens */
  PACA_ERR_CANCELLED = 7,        /* paca_session_cancel() or a progress callback */
  PACA_ERR_DEVICE = 8,           /* a device is unavailable or failed */
  PACA_ERR_BUFFER_TOO_SMALL = 9, /* a caller buffer is too small; see *out_needed */
  PACA_ERR_STATE = 10,           /* the call is not valid in the object's state */
  PACA_ERR_INTERNAL = 99
} paca_status;

/** Static English name of a status, e.g. "PACA_ERR_FORMAT". Never NULL. Since v0.1. */
PACA_API const char* paca_status_name(paca_status status);
/**
 * Message of the last failed call on this thread ("" if none). The pointer is
 * owned by the library and valid until the next paca_ call on this thread.
 * Since v0.1.
 */
PACA_API const char* paca_last_error(void);

/* ---- logging ------------------------------------------------------------- */
typedef enum paca_log_level {
  PACA_LOG_ERROR = 0,
  PACA_LOG_WARN = 1,
  PACA_LOG_INFO = 2,
  PACA_LOG_DEBUG = 3
} paca_log_level;

/** Receives one log line (no trailing newline). May be called from any thread. */
typedef void (*paca_log_fn)(void* user, int32_t level, const char* message);

/**
 * Sets the process-wide log sink used when a model has none of its own.
 * fn NULL restores the default (stderr, WARN and above). Messages above
 * max_level are dropped. Since v0.1.
 */
PACA_API void paca_set_log_callback(paca_log_fn fn, void* user, int32_t max_level);

/* ---- models -------------------------------------------------------------- */
typedef struct paca_model paca_model;

/**
 * Called during loading with progress in [0, 1]. Return 0 to continue,
 * non-zero to abort the load (paca_model_load then returns PACA_ERR_CANCELLED).
 */
typedef int32_t (*paca_progress_fn)(void* user, float progress);

typedef enum paca_kv_dtype {
  PACA_KV_F32 = 0, /* exact; the default on the CPU */
  PACA_KV_BF16 = 1 /* half the memory, about 1e-3 relative error */
} paca_kv_dtype;

typedef struct paca_model_params {
  uint32_t struct_size;       /* sizeof(paca_model_params) */
  int32_t n_threads;          /* compute threads; 0 = all hardware threads */
  const char* device;         /* "cpu" (NULL = "cpu") */
  paca_progress_fn progress;  /* optional load progress callback */
  void* progress_user;
  paca_log_fn log;            /* optional per-model log sink */
  void* log_user;
  int32_t log_level;          /* max level for log (paca_log_level) */
  int32_t kv_dtype;           /* paca_kv_dtype */
  int32_t kv_block_tokens;    /* tokens per KV-cache block; 0 = 16 */
} paca_model_params;

/** Default model parameters. Since v0.1. */
PACA_API paca_model_params paca_model_params_default(void);

/**
 * Loads a model. The format is detected from the path's contents:
 *   - a directory with config.json: Hugging Face safetensors (single or sharded)
 *   - a file starting with "GGUF": GGUF v3, architecture llama
 *   - any other file: a llama2.c checkpoint (.bin, legacy or version 1)
 * params may be NULL. On success *out_model owns the model; free it with
 * paca_model_free. On failure *out_model is NULL. Since v0.1.
 */
PACA_API paca_status paca_model_load(const char* path, const paca_model_params* params,
                                     paca_model** out_model);

/**
 * Frees a model handle. NULL is a no-op. Sessions created from the model keep
 * its memory alive until they are freed, so the order does not matter.
 * Since v0.1.
 */
PACA_API void paca_model_free(paca_model* model);

typedef enum paca_model_format {
  PACA_FORMAT_HF_SAFETENSORS = 0,
  PACA_FORMAT_GGUF = 1,
  PACA_FORMAT_LLAMA2C = 2
} paca_model_format;

typedef enum paca_rope_scaling {
  PACA_ROPE_SCALING_NONE = 0,
  PACA_ROPE_SCALING_LLAMA3 = 1
} paca_rope_scaling;

#define PACA_MAX_EOS_IDS 8

typedef struct paca_model_info {
  uint32_t struct_size;     /* set by the caller to sizeof(paca_model_info) */
  int32_t format;           /* paca_model_format */
  int32_t n_vocab;
  int32_t dim;              /* hidden size */
  int32_t n_layers;
  int32_t n_heads;
  int32_t n_kv_heads;
  int32_t head_dim;
  int32_t ffn_dim;          /* SwiGLU hidden size */
  int32_t max_context;      /* trained context length */
  float rope_theta;
  int32_t rope_scaling;     /* paca_rope_scaling */
  float rope_factor;        /* llama3 scaling factor (1 when none) */
  float norm_eps;
  int32_t tied_embeddings;  /* 1 when the LM head reuses the embedding */
  int32_t bos_id;           /* -1 when none */
  int32_t n_eos_ids;        /* entries used in eos_ids */
  int32_t eos_ids[PACA_MAX_EOS_IDS];
  uint64_t n_params;        /* parameter count */
  uint64_t weight_bytes;    /* bytes of weights as stored */
  uint64_t kv_bytes_per_token; /* KV-cache bytes per token of context */
} paca_model_info;

/**
 * Fills *out_info. Set out_info->struct_size first; fields past it are left
 * alone, so older callers keep working. Since v0.1.
 */
PACA_API paca_status paca_model_get_info(const paca_model* model, paca_model_info* out_info);

/**
 * Writes a JSON description of the model (format, architecture, sizes,
 * dtypes, special tokens, memory) into buf as a NUL-terminated string.
 * *out_needed receives the size needed including the NUL. If cap is too
 * small, returns PACA_ERR_BUFFER_TOO_SMALL and writes nothing; buf may be
 * NULL with cap 0 to query the size. Since v0.1.
 */
PACA_API paca_status paca_model_describe_json(const paca_model* model, char* buf, size_t cap,
                                              size_t* out_needed);

/* ---- sessions ------------------------------------------------------------ */
typedef struct paca_session paca_session;

typedef struct paca_session_params {
  uint32_t struct_size;   /* sizeof(paca_session_params) */
  int32_t n_ctx;          /* context length in tokens; 0 = the model's max_context */
} paca_session_params;

/** Default session parameters. Since v0.1. */
PACA_API paca_session_params paca_session_params_default(void);

/**
 * Creates a session: one sequence with its own KV cache (allocated block by
 * block as it grows). params may be NULL. Since v0.1.
 */
PACA_API paca_status paca_session_create(paca_model* model, const paca_session_params* params,
                                         paca_session** out_session);

/** Frees a session. NULL is a no-op. Since v0.1. */
PACA_API void paca_session_free(paca_session* session);

/**
 * Appends n tokens to the sequence and runs them through the model as one
 * batch; afterwards the logits of the last token are available. n = 0 is an
 * error. Returns PACA_ERR_INVALID_ARGUMENT for an id outside the vocabulary,
 * PACA_ERR_CONTEXT_FULL when the tokens do not fit; in both cases the
 * session is unchanged. Since v0.1.
 */
PACA_API paca_status paca_session_prefill(paca_session* session, const int32_t* tokens, size_t n);

/** Appends one token and computes its logits (a prefill of one). Since v0.1. */
PACA_API paca_status paca_session_decode(paca_session* session, int32_t token);

/**
 * Last position's logits (n_vocab floats). The pointer is owned by the
 * session and valid until the next call that changes it. Returns
 * PACA_ERR_STATE when no logits exist (nothing run yet, or after a rewind).
 * Since v0.1.
 */
PACA_API paca_status paca_session_logits(const paca_session* session, const float** out_logits,
                                         size_t* out_n_vocab);

/**
 * Truncates the sequence to its first n_tokens tokens (n_tokens <= length);
 * the KV blocks past it are released. The logits become unavailable until the
 * next prefill/decode. Since v0.1.
 */
PACA_API paca_status paca_session_rewind(paca_session* session, size_t n_tokens);

/** Number of tokens in the sequence (0 for NULL). Since v0.1. */
PACA_API size_t paca_session_length(const paca_session* session);

/** Context length of the session in tokens (0 for NULL). Since v0.1. */
PACA_API size_t paca_session_context_size(const paca_session* session);

/**
 * Copies the sequence's token ids into buf (cap entries). *out_needed gets the
 * length. PACA_ERR_BUFFER_TOO_SMALL if cap is too small. Since v0.1.
 */
PACA_API paca_status paca_session_tokens(const paca_session* session, int32_t* buf, size_t cap,
                                         size_t* out_needed);

/**
 * Asks a running prefill/decode on this session to stop at the next layer
 * boundary; it then returns PACA_ERR_CANCELLED and leaves the session as it
 * was before the call. Safe from any thread. The request is cleared when the
 * next prefill/decode starts. Since v0.1.
 */
PACA_API void paca_session_cancel(paca_session* session);

/* ---- tools --------------------------------------------------------------- */
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

/** Defaults: a ~1M-parameter Llama-3-shaped model (GQA, vocab 4096). Since v0.1. */
PACA_API paca_test_model_params paca_test_model_params_default(void);

/**
 * Writes a seeded-random Llama checkpoint in Hugging Face layout (config.json,
 * generation_config.json, model.safetensors in BF16) into directory dir,
 * creating it if needed. The text such a model writes is meaningless; it exists
 * so that everything can be run without downloading weights. Since v0.1.
 */
PACA_API paca_status paca_make_test_model(const char* dir, const paca_test_model_params* params);

/* ---- tokenizer ---------------------------------------------------------- */

/* ---- chat formats and tool calls ------------------------------------------ */

/* ---- sampling -------------------------------------------------------------- */

#ifdef __cplusplus
}
#endif

#endif /* PACA_PACA_H */
