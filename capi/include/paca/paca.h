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
 *  - Parameter structs start with uint32_t struct_size. Fill one with its
 *    defaults by pointer and size, paca_X_params_init(&p, sizeof p), then set
 *    the fields you want; or pass NULL for all defaults. Fields are only ever
 *    appended, each after the previous version's sizeof (tail padding is
 *    never reused), so a caller compiled against an older header keeps
 *    working, and a struct_size larger than the library knows is accepted
 *    when the bytes it does not know are zero. (v0.1's by-value
 *    paca_X_params_default() functions stay exported for binaries built
 *    against v0.1, returning v0.1's layouts; they are not declared here.)
 *  - Entry points whose form may still change are in paca/paca_experimental.h
 *    and outside the guarantees above.
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
/* The one place the version is written: CMake, pkg-config, paca_version()
   and the bindings take it from here. */
#define PACA_VERSION_MAJOR 0
#define PACA_VERSION_MINOR 5
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
  PACA_ERR_BUSY = 11,            /* a queue is full: try again later (since v0.4) */
  PACA_ERR_TIMEOUT = 12,         /* nothing happened within the time asked for (since v0.4) */
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
  PACA_KV_AUTO = -1, /* the default (since v0.2): f32 on the CPU, bf16 on a CUDA device */
  PACA_KV_F32 = 0,   /* exact */
  PACA_KV_BF16 = 1   /* half the memory, about 1e-3 relative error */
} paca_kv_dtype;

typedef enum paca_weight_dtype {
  PACA_WEIGHTS_AS_STORED = 0, /* use the checkpoint's dtypes */
  PACA_WEIGHTS_FP8 = 1        /* quantize BF16/F16/F32 linear weights to FP8 E4M3 at load,
                                 one f32 scale per output row */
} paca_weight_dtype;

/* Which linear weights PACA_WEIGHTS_FP8 quantizes (flags). 0 means Meta's
   recipe for Llama 3.1 405B: the MLP only, first and last layer kept. */
#define PACA_FP8_MLP 1
#define PACA_FP8_ATTENTION 2
#define PACA_FP8_KEEP_FIRST_LAST 4

typedef enum paca_fp8_mode {
  PACA_FP8_AUTO = 0,  /* the checkpoint's recipe; quantize-at-load uses W8A8 with bound 1200 */
  PACA_FP8_W8A8 = 1,  /* activations rounded to E4M3 per token (scale max|x| / 448) */
  PACA_FP8_W8A16 = 2  /* weight-only: FP8 weights widened against full-precision activations */
} paca_fp8_mode;

typedef enum paca_load_mode {
  PACA_LOAD_MMAP = 0, /* map the weight files: quick to load, pages shared with the page cache
                         and with other processes mapping the same file */
  PACA_LOAD_READ = 1, /* read them into anonymous memory that asks for transparent huge pages:
                         the load reads every byte, memory is private to the process, and CPU
                         decode streams the weights faster (fewer TLB misses) */
  PACA_LOAD_AUTO = 2  /* the default of paca_model_params_init (since v0.2): on the CPU, read
                         each weight file that takes at most half of the memory available
                         (MemAvailable) at load time and map larger ones; map for a GPU device.
                         paca_model_info.load_mode tells what was done. */
} paca_load_mode;

typedef struct paca_model_params {
  uint32_t struct_size;       /* sizeof(paca_model_params) */
  int32_t n_threads;          /* compute threads; 0 = all hardware threads */
  const char* device;         /* "cpu" (NULL = "cpu"), "cuda" (= "cuda:0") or "cuda:N" */
  paca_progress_fn progress;  /* optional load progress callback */
  void* progress_user;
  paca_log_fn log;            /* optional per-model log sink */
  void* log_user;
  int32_t log_level;          /* max level for log (paca_log_level) */
  int32_t kv_dtype;           /* paca_kv_dtype */
  int32_t kv_block_tokens;    /* tokens per KV-cache block; 0 = 16 */
  /* Since v0.1: tokenizer file to use instead of the checkpoint's own (NULL =
     the checkpoint's: tokenizer.json / tokenizer.model of a directory, the
     vocabulary of a GGUF, tok<vocab>.bin or tokenizer.bin beside a llama2.c
     .bin). Any tokenizer file kind is accepted. */
  const char* tokenizer_path;
  /* Since v0.1: FP8 (see paca_weight_dtype, PACA_FP8_*, paca_fp8_mode). */
  int32_t weight_dtype;       /* paca_weight_dtype: quantize linear weights at load */
  int32_t fp8_targets;        /* PACA_FP8_* flags for quantizing at load; 0 = Meta's recipe */
  int32_t fp8_mode;           /* paca_fp8_mode: how FP8 matmuls treat activations */
  /* Since v0.2. load_mode lies in v0.1's tail padding (v0.1's sizeof is 88
     on LP64): a struct_size of exactly v0.1's size reads as v0.1, leaving
     load_mode at its default. Later fields never reuse padding. */
  int32_t load_mode;          /* paca_load_mode */
  /* Since v0.2: sharding. With tensor_parallel x pipeline_parallel > 1 and
     world_size <= 1, every rank runs in this process (on the CPU: as threads,
     n_threads split among them). With world_size > 1 this process is one
     rank of a group of world_size = tensor_parallel x pipeline_parallel
     processes, joined over MPI (started by mpirun) or the TCP rendezvous;
     every process must then make the same calls (load, prefill, decode,
     generate) in the same order, and every one gets the same logits. A
     sharded model gives the logits of the unsharded one within float
     rounding (1e-5 relative). A rank that loses a peer fails with
     PACA_ERR_IO within comm_timeout_ms; a multi-process model that failed a
     step refuses further steps (PACA_ERR_STATE). */
  int32_t tensor_parallel;    /* ranks per layer (heads, FFN and vocabulary split); 0 or 1 = none.
                                 Must divide the heads and the FFN width, and divide or be a
                                 multiple of the kv heads (replicated above that count) */
  int32_t pipeline_parallel;  /* stages, each holding a balanced range of layers; 0 or 1 = none */
  const char* devices;        /* comma-separated devices of this process's ranks, e.g. "cpu,cpu",
                                 or one for all; NULL = device */
  int32_t rank;               /* this process's rank (0 .. world_size - 1) when world_size > 1;
                                 -1 = from mpirun (required with a rendezvous) */
  int32_t world_size;         /* processes in the group; 0 or 1 = this process runs every rank */
  const char* rendezvous;     /* "host:port" where rank 0 listens and the others connect
                                 (world_size > 1); NULL = MPI (the process was started by mpirun) */
  int32_t comm_timeout_ms;    /* connecting, collectives and messages give up after this; 0 = 60000 */
  /* Since v0.2: the KV cache. 0 (the default): blocks are allocated one by
     one as sessions grow, with no limit but the memory. In (0, 1]: at load,
     after the weights, the model reserves this fraction of the device's free
     memory (the host's available memory for "cpu"), less room for the steps'
     activations and the backend's scratch (two 256-token workspaces and 96
     MiB; so 1 leaves the steps their room), as a pool of KV blocks
     shared by all its sessions; a session that needs a block when all are in
     use fails with PACA_ERR_OUT_OF_MEMORY ("the KV cache is full ...") and is
     left unchanged. A fraction too small for one block fails the load with
     PACA_ERR_OUT_OF_MEMORY ("too little memory for the KV cache ...: need X
     bytes, have Y"). Other values are PACA_ERR_INVALID_ARGUMENT. */
  float kv_memory_fraction;
  /* Since v0.4: which kernels run. Each choice can change the last bits of
     the logits (not their meaning), so it is a parameter. The paca command
     and paca-bench read PACA_CPU_ISA, PACA_CUDA_GRAPHS and
     PACA_CUDA_FP8_DECODE/_PREFILL/_FUSED_NORM into these as developer
     overrides; the library itself reads none of them. */
  const char* cpu_isa;        /* CPU kernels: NULL or "auto" = the widest this CPU runs; "scalar",
                                 "avx2" or "avx512"; one this build or CPU cannot run is
                                 PACA_ERR_INVALID_ARGUMENT naming those it can */
  int32_t cuda_graphs;        /* CUDA: 1 = record decode steps as CUDA graphs and replay them
                                 (default), 0 = launch kernel by kernel */
  int32_t cuda_fp8_decode_w8a16;  /* CUDA FP8: 1 = w8a8 weights run weight-only at decode; 0 = as
                                     each tensor says (default) */
  int32_t cuda_fp8_prefill_w8a8;  /* CUDA FP8: 1 = weight-only weights quantize activations at
                                     prefill; 0 = as each tensor says (default) */
  int32_t cuda_fp8_fused_norm;    /* CUDA FP8: 1 = a norm quantizes its output for its first w8a8
                                     reader (default); 0 = every matmul quantizes for itself */
} paca_model_params;

/**
 * Default model parameters.
 * paca_model_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4 (v0.1-v0.3: by-value _default()).
 */
PACA_API paca_status paca_model_params_init(paca_model_params* p, size_t size);

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
  /* Since v0.2. */
  int32_t load_mode;        /* PACA_LOAD_READ when every weight file was read into memory, else
                               PACA_LOAD_MMAP */
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

/**
 * Default session parameters.
 * paca_session_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4 (v0.1-v0.3: by-value _default()).
 */
PACA_API paca_status paca_session_params_init(paca_session_params* p, size_t size);

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

/* ---- quantization ------------------------------------------------------- */
/**
 * Writes out_path: the GGUF file in_path with its weights re-encoded as the
 * block-quantization mix `mix` (any case): "q4_0", "q4_1", "q5_0", "q5_1",
 * "q8_0", "q4_k_s", "q4_k_m", "q5_k_s", "q5_k_m" or "q6_k". Every key/value of
 * in_path (its tokenizer included) is kept but general.file_type and
 * general.quantization_version, which are set for the mix; norms and tensors
 * paca does not use are copied byte for byte. The *_m mixes give the value
 * and MLP-down projections of the first and last eighth of the layers (and
 * every third between) Q6_K; all but q8_0 give the LM head (or a tied
 * embedding) Q6_K; a row that does not hold whole 256-element super-blocks
 * falls back to Q5_0 (Q4_K), Q5_1 (Q5_K) or Q8_0 (Q6_K), and to F16 when not
 * a multiple of 32. Scales are chosen per block by least squared error.
 * The file is written under out_path + ".tmp" and renamed: a failure leaves
 * no partial out_path. n_threads <= 0 uses every core. progress (may be
 * NULL) is called with the fraction done; non-zero cancels
 * (PACA_ERR_CANCELLED). On success a summary goes to buf (buffer rules as
 * paca_chat_format; buf may be NULL with cap 0):
 *   {"mix", "tensors", "converted", "bytes_in", "bytes_out", "types": {"Q4_K": n, ...}}
 * Errors: PACA_ERR_INVALID_ARGUMENT (unknown mix, NULL path),
 * PACA_ERR_UNSUPPORTED (not a GGUF file), PACA_ERR_FORMAT (a malformed file or
 * a non-finite weight, named), PACA_ERR_IO.
 * Since v0.3.
 */
PACA_API paca_status paca_quantize_gguf(const char* in_path, const char* out_path, const char* mix, int32_t n_threads,
                                        paca_progress_fn progress, void* progress_user, char* buf, size_t cap,
                                        size_t* out_needed);

/* ---- tokenizer ---------------------------------------------------------- */
/*
 * A model has a tokenizer when its checkpoint has one (Llama 2 SentencePiece
 * BPE or Llama 3 byte-level BPE, from tokenizer.json, tokenizer.model, GGUF or
 * a llama2.c tokenizer .bin). On a model without one, every call below returns
 * PACA_ERR_STATE and paca_last_error() says why there is none.
 *
 * Text is UTF-8 given as (pointer, length); it may contain NUL bytes. Invalid
 * UTF-8 in input text is replaced by U+FFFD (one per maximal ill-formed
 * subsequence, as WHATWG's TextDecoder and Python's errors="replace" do)
 * before it is tokenized. Text written by the library is always valid UTF-8,
 * with U+FFFD for byte sequences the tokens do not complete.
 *
 * The tokenizer of a model may be used by any number of threads at once.
 */

/* Flags of paca_tokenize. */
typedef enum paca_tokenize_flags {
  /* Add the start-of-text tokens the model's tokenizer config asks for: BOS
     for every Llama model (none when its tokenizer_config.json sets
     add_bos_token false; EOS at the end where it sets add_eos_token true). */
  PACA_TOKENIZE_ADD_BOS = 1,
  /* Recognise special-token text ("<|eot_id|>", "<s>") in the input as those
     control tokens. Leave it off for text that comes from users: without it
     such text is tokenized as ordinary characters. */
  PACA_TOKENIZE_SPECIAL = 2
} paca_tokenize_flags;

/* Flags of paca_detokenize, paca_token_to_piece and paca_detokenizer_create. */
typedef enum paca_detokenize_flags {
  /* Render control tokens (BOS, EOS, <|eot_id|>, ...) as their text; by
     default they produce no text. */
  PACA_DETOKENIZE_SPECIAL = 1,
  /* Keep the leading space of the first token. Llama 2 (SentencePiece)
     tokenization puts a space before the text, which decoding normally drops;
     set this when the ids continue an earlier text, e.g. tokens generated
     after a prompt. No effect for Llama 3. */
  PACA_DETOKENIZE_KEEP_LEADING_SPACE = 2
} paca_detokenize_flags;

/* Token attribute bits (paca_token_attributes). Values are pinned. */
typedef enum paca_token_attr {
  PACA_TOKEN_ATTR_NORMAL = 1,        /* an ordinary vocabulary entry */
  PACA_TOKEN_ATTR_UNKNOWN = 2,       /* the unknown token (<unk>) */
  PACA_TOKEN_ATTR_CONTROL = 4,       /* a control (special) token: BOS, EOS, <|eot_id|>, reserved ... */
  PACA_TOKEN_ATTR_USER_DEFINED = 8,  /* always matched as a whole in text */
  PACA_TOKEN_ATTR_UNUSED = 16,       /* unused, or a padding id past the tokenizer's vocabulary */
  PACA_TOKEN_ATTR_BYTE = 32,         /* a byte-fallback token <0xNN>: one raw byte */
  PACA_TOKEN_ATTR_BOS = 64,          /* the beginning-of-text token */
  PACA_TOKEN_ATTR_EOG = 128          /* ends generation (EOS, EOT, EOM: the model's stop set) */
} paca_token_attr;

/**
 * Tokenizes text[0, len) (text may be NULL when len is 0) with flags
 * (paca_tokenize_flags). Writes the ids into buf (cap entries) and their
 * count into *out_needed (optional). If cap is too small, returns
 * PACA_ERR_BUFFER_TOO_SMALL and writes no ids; buf may be NULL with cap 0 to
 * query the count. len is at most 1 GiB. Since v0.1.
 */
PACA_API paca_status paca_tokenize(const paca_model* model, const char* text, size_t len, uint32_t flags,
                                   int32_t* buf, size_t cap, size_t* out_needed);

/**
 * Turns n ids into text (flags: paca_detokenize_flags) and writes it into
 * buf as a NUL-terminated string. *out_needed (optional) receives the text's
 * length in bytes plus one for the NUL. If cap is too small, returns
 * PACA_ERR_BUFFER_TOO_SMALL and writes nothing; buf may be NULL with cap 0 to
 * query the size. An id outside the model's vocabulary is
 * PACA_ERR_INVALID_ARGUMENT. Since v0.1.
 */
PACA_API paca_status paca_detokenize(const paca_model* model, const int32_t* ids, size_t n, uint32_t flags,
                                     char* buf, size_t cap, size_t* out_needed);

/**
 * The raw bytes of one token, NUL-terminated in buf; *out_needed (optional)
 * receives their length plus one. A piece may be part of a UTF-8 character
 * (a byte token is a single byte, a Llama 3 token may split a character), so
 * concatenate pieces before decoding them, or use paca_detokenizer. Llama 2
 * pieces have their word-start marker as a space (" world"); control tokens
 * give their text only with PACA_DETOKENIZE_SPECIAL, otherwise nothing.
 * Buffer rules as paca_detokenize. Since v0.1.
 */
PACA_API paca_status paca_token_to_piece(const paca_model* model, int32_t id, uint32_t flags, char* buf, size_t cap,
                                         size_t* out_needed);

/**
 * Stores the paca_token_attr bits of id in *out_attrs. Ids past the
 * tokenizer's vocabulary but inside the model's (padding) are
 * PACA_TOKEN_ATTR_UNUSED. Since v0.1.
 */
PACA_API paca_status paca_token_attributes(const paca_model* model, int32_t id, uint32_t* out_attrs);

/*
 * Streaming detokenizer: push the ids of a generation one at a time and get
 * back the text each one completes. The text never ends inside a UTF-8
 * character (bytes are held back until their character is whole), so
 * bindings can hand each piece to their string type directly. One
 * detokenizer serves one text and one thread at a time; it keeps its model's
 * tokenizer alive, so it may outlive the model handle.
 */
typedef struct paca_detokenizer paca_detokenizer;

/**
 * Creates a detokenizer for model's tokenizer (flags: paca_detokenize_flags).
 * Free it with paca_detokenizer_free. Since v0.1.
 */
PACA_API paca_status paca_detokenizer_create(const paca_model* model, uint32_t flags,
                                             paca_detokenizer** out_detokenizer);

/** Frees a detokenizer. NULL is a no-op. Since v0.1. */
PACA_API void paca_detokenizer_free(paca_detokenizer* detokenizer);

/**
 * Feeds one id. *out_text points to the text this id completed and *out_len
 * (optional) receives its length (often 0). The text is NUL-terminated, owned
 * by the detokenizer and valid until its next call. An id outside the model's
 * vocabulary is PACA_ERR_INVALID_ARGUMENT and changes nothing. Since v0.1.
 */
PACA_API paca_status paca_detokenizer_push(paca_detokenizer* detokenizer, int32_t id, const char** out_text,
                                           size_t* out_len);

/**
 * Ends the text: returns what is still held back (an unfinished character
 * becomes U+FFFD) like paca_detokenizer_push, and resets the detokenizer so
 * that the next push starts a new text. Since v0.1.
 */
PACA_API paca_status paca_detokenizer_flush(paca_detokenizer* detokenizer, const char** out_text, size_t* out_len);

/* ---- chat formats and tool calls ------------------------------------------ */
/*
 * Conversations and tools are JSON, the form every binding already handles:
 *   messages: [{"role": "system"|"user"|"assistant"|"ipython"|"tool",
 *               "content": "...",
 *               "tool_calls": [{"type": "function", "function":
 *                               {"name": "...", "arguments": {...}}}]}, ...]
 *             (tool_calls only on assistant turns that called a tool; a tool
 *             result is a "tool" or "ipython" message whose content is text
 *             or JSON)
 *   tools:    [{"type": "function", "function": {"name": "...",
 *               "description": "...", "parameters": {JSON schema}}}, ...]
 * The model's own chat template renders them (tokenizer_config.json
 * "chat_template", chat_template.jinja, or GGUF tokenizer.chat_template),
 * exactly as Hugging Face transformers' apply_chat_template does; a model
 * without one gets the built-in Llama 2, Llama 3 or Llama 3.1 format chosen
 * from its vocabulary and configuration.
 *
 * Special-token text inside messages (a user writing "<|eot_id|>") is
 * rendered as text. To tokenize a rendered chat without letting such text
 * become control tokens, use paca_chat_format_json: its "segments" mark the
 * bytes that came from the messages ("user": true); recognise special tokens
 * only where they lie wholly inside a template segment and encode everything
 * between them (both kinds) as plain text with special-token recognition off.
 */
typedef struct paca_chat_params {
  uint32_t struct_size;            /* sizeof(paca_chat_params) */
  int32_t add_generation_prompt;   /* 1 (default): end with the assistant header */
  const char* tools_json;          /* NULL, or a JSON array of tool definitions */
  const char* builtin_tools_json;  /* NULL, or a JSON array of Llama 3.1 built-in tool names:
                                      "brave_search", "wolfram_alpha", "code_interpreter" */
  const char* date;                /* NULL: the template's default ("26 Jul 2024"; Llama 3.2: today);
                                      else the "Today Date" text, e.g. "05 Mar 2025" */
  const char* extra_json;          /* NULL, or a JSON object of more template variables,
                                      e.g. {"tools_in_user_message": false} */
  const char* chat_template;       /* NULL: the model's template; else Jinja source to use instead,
                                      or "builtin:llama2" / "builtin:llama3" / "builtin:llama3.1" */
  const char* special_tokens_json; /* NULL: the model's (or the built-in format's); else
                                      {"bos_token": "...", "eos_token": "...", ...} */
  int64_t now;                     /* 0: the clock; else seconds since the epoch for the
                                      template's strftime_now (reproducible dates) */
} paca_chat_params;

/**
 * Default chat parameters (add_generation_prompt 1, everything else unset).
 * paca_chat_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4 (v0.1-v0.3: by-value _default()).
 */
PACA_API paca_status paca_chat_params_init(paca_chat_params* p, size_t size);

/**
 * Renders a conversation (messages_json, see above) into prompt text with the
 * model's chat format, written into buf as a NUL-terminated string of
 * *out_needed - 1 bytes (a message containing U+0000 makes an embedded NUL).
 * *out_needed receives the size needed including the NUL; if cap is too
 * small, returns PACA_ERR_BUFFER_TOO_SMALL and writes nothing (buf NULL with
 * cap 0 queries the size). model may be NULL when params->chat_template is
 * set. params may be NULL. Returns PACA_ERR_INVALID_ARGUMENT for malformed
 * JSON or when the template rejects the conversation (its raise_exception
 * message, e.g. "Conversation roles must alternate", is in paca_last_error()),
 * PACA_ERR_FORMAT / PACA_ERR_UNSUPPORTED for a template that does not parse
 * or fails, naming the construct and its line. Since v0.1.
 */
PACA_API paca_status paca_chat_format(const paca_model* model, const char* messages_json,
                                      const paca_chat_params* params, char* buf, size_t cap,
                                      size_t* out_needed);

/**
 * As paca_chat_format, but writes JSON:
 *   {"text": "...", "segments": [{"offset": 0, "length": 57, "user": false}, ...],
 *    "template": "tokenizer_config.json" | "chat_template.jinja" | "gguf" | "builtin:llama3.1" | ...}
 * Segments cover the text in order; offsets and lengths are in bytes of the
 * UTF-8 text; "user" marks bytes that came from the messages, tools or other
 * caller data (see the section comment for how to tokenize). Since v0.1.
 */
PACA_API paca_status paca_chat_format_json(const paca_model* model, const char* messages_json,
                                           const paca_chat_params* params, char* buf, size_t cap,
                                           size_t* out_needed);

/**
 * Renders a conversation as paca_chat_format does and tokenizes it for the
 * model, following the rule in the section comment: special-token text is a
 * control token only where the template wrote it; the same text inside a
 * message stays ordinary text. No BOS is added beyond what the template
 * writes (every Llama template writes it). Writes the ids into buf (cap
 * entries) and their count into *out_needed (optional); if cap is too small,
 * returns PACA_ERR_BUFFER_TOO_SMALL and writes nothing (buf NULL with cap 0
 * queries the count). model is required; PACA_ERR_STATE when it has no
 * tokenizer. Other errors as paca_chat_format. Since v0.2.
 */
PACA_API paca_status paca_chat_tokenize(const paca_model* model, const char* messages_json,
                                        const paca_chat_params* params, int32_t* buf, size_t cap,
                                        size_t* out_needed);

/**
 * Describes the model's chat format as JSON: {"origin": as "template" above,
 * "style": "llama2" | "llama3" | "llama3.1" (what the configuration looks
 * like), "bos_token", "eos_token", "unk_token", "pad_token" (strings or null),
 * "source": the Jinja source}. Buffer rules as paca_chat_format. Since v0.1.
 */
PACA_API paca_status paca_chat_template_json(const paca_model* model, char* buf, size_t cap,
                                             size_t* out_needed);

/* How a generated reply ended, when its text does not say (see paca_chat_parse_tool_calls). */
typedef enum paca_reply_end {
  PACA_REPLY_END_NONE = 0, /* unknown, or max tokens */
  PACA_REPLY_END_EOT = 1,  /* <|eot_id|>: the turn is over */
  PACA_REPLY_END_EOM = 2,  /* <|eom_id|>: the model waits for a tool result */
  PACA_REPLY_END_EOS = 3   /* <|end_of_text|> or </s> */
} paca_reply_end;

/**
 * Recovers tool calls from a generated reply: text/len is the reply with
 * special tokens as their text (<|python_tag|>, and the stop token's text at
 * the end if the caller kept it; otherwise pass how generation stopped in
 * stop, a paca_reply_end). Recognises built-in calls
 * (<|python_tag|>brave_search.call(query="...")), code_interpreter code (any
 * other text after <|python_tag|>), JSON calls ({"name": ..., "parameters" or
 * "arguments": {...}}, also a list of them), <function=name>{...}</function>
 * and Llama 3.2 pythonic lists ([f(a=1), g(b="x")]). Writes JSON:
 *   {"content": "text that is not a call",
 *    "tool_calls": [{"type": "builtin"|"code_interpreter"|"function",
 *                    "name": "...", "arguments": {...}}],
 *    "python_tag": bool, "malformed": bool, "error": "why" (when malformed),
 *    "end": "eot"|"eom"|"eos"|"none", "awaiting_tool_result": bool}
 * A call that does not parse comes back as content with "malformed": true,
 * never as a failure. "awaiting_tool_result" is true when the reply ended
 * with <|eom_id|> or holds calls: run them, append the assistant turn (with
 * "tool_calls") and one "ipython"/"tool" message per result, and generate
 * again. Buffer rules as paca_chat_format. Since v0.1.
 */
PACA_API paca_status paca_chat_parse_tool_calls(const char* text, size_t len, int32_t stop, char* buf,
                                                size_t cap, size_t* out_needed);


/* ---- sampling -------------------------------------------------------------- */
/*
 * A paca_sampler turns the logits of a session's last position into the next
 * token. The chain, in this order (each stage sees what the previous kept):
 *   1. logit bias     l_i += bias_i (paca_sampler_set_logit_bias; -inf bans)
 *   2. penalties      over the last repeat_last_n tokens of the sequence, for
 *                     each distinct token t seen c_t times there:
 *                     l_t = l_t > 0 ? l_t / repeat_penalty : l_t * repeat_penalty,
 *                     then l_t -= c_t * frequency_penalty + presence_penalty.
 *                     The result l' is called the adjusted logits.
 *   3. top-k          keep the top_k largest l'
 *   4. top-p          keep the shortest run of most probable tokens whose
 *                     probability (softmax of l' over the tokens left) is
 *                     >= top_p
 *   5. min-p          keep tokens with probability >= min_p * the largest
 *   6. temperature    q_i proportional to exp(l'_i / temperature)
 *   7. draw           one uniform number u in [0, 1) from a counter-based
 *                     generator (Philox4x32-10) keyed by (seed, position),
 *                     position being the index the new token takes in the
 *                     sequence; the token is where the running sum of q
 *                     passes u (walking by decreasing l' after top-k, by
 *                     token id otherwise).
 * temperature 0 is greedy decoding: the largest l' wins (stages 3-7 skipped).
 * Ties are always broken toward the lower token id. Tokens whose l' is -inf
 * (or NaN) are never chosen.
 *
 * Stages 4-7 weigh tokens in integers: floor(weight * 2^s) with the largest
 * weight 1 and 2^s near 2^62 / the number of tokens weighed (2^45 for a
 * 128,256-token vocabulary), so no rounding decides a boundary and the token
 * is the same whether a device or the host adds the weights up. A token less
 * likely than 2^-s times the most likely one weighs nothing. On a GPU, greedy,
 * top-k and (usually) top-p/min-p sampling read only the best candidates, not
 * the whole vocabulary.
 *
 * Reproducibility: a draw depends only on (seed, position) and the logits, so
 * the same seed gives the same tokens for any thread count, alone or beside
 * other sessions, and after a rewind to the same position. The sampler keeps
 * no random state.
 *
 * Log-probabilities (paca_token_logprobs) are those of the adjusted logits:
 * log_softmax(l') over the whole vocabulary, after bias and penalties but
 * before truncation (top-k/top-p/min-p) and temperature.
 *
 * Thread safety: a sampler is used by one thread at a time (it keeps scratch
 * buffers); any number of samplers may be used at once.
 */
typedef struct paca_sampler paca_sampler;

/* Why a generation stopped. Values are pinned. */
typedef enum paca_stop_reason {
  PACA_STOP_NONE = 0,        /* not stopped: keep generating */
  PACA_STOP_EOS = 1,         /* the model's end token (EOS / EOT / EOM) */
  PACA_STOP_TOKEN = 2,       /* one of the caller's stop_ids */
  PACA_STOP_STRING = 3,      /* one of the caller's stop strings (paca_stop_matcher) */
  PACA_STOP_MAX_TOKENS = 4,  /* max_new_tokens were generated */
  PACA_STOP_CONTEXT_FULL = 5 /* the session's context is full */
} paca_stop_reason;

typedef struct paca_sampler_params {
  uint32_t struct_size;      /* sizeof(paca_sampler_params) */
  float temperature;         /* >= 0; 0 = greedy (default) */
  uint64_t seed;             /* seed of the draws (default 0) */
  int32_t top_k;             /* >= 0; 0 = off (default) */
  float top_p;               /* in (0, 1]; 1 = off (default) */
  float min_p;               /* in [0, 1]; 0 = off (default) */
  float repeat_penalty;      /* > 0; 1 = off (default) */
  float frequency_penalty;   /* finite; 0 = off (default) */
  float presence_penalty;    /* finite; 0 = off (default) */
  int32_t repeat_last_n;     /* penalty window in tokens; -1 = whole sequence, 0 = off; default 64 */
  int32_t n_top_logprobs;    /* alternatives reported in paca_token_logprobs, 0..PACA_MAX_TOP_LOGPROBS; default 0 */
  int32_t max_new_tokens;    /* >= 0; 0 = no limit (default); see paca_sampler_stop_reason */
  int32_t ignore_eos;        /* 1: the model's end tokens do not stop (default 0) */
  const int32_t* stop_ids;   /* n_stop_ids token ids that stop the generation; copied at create */
  int32_t n_stop_ids;        /* >= 0 (default 0) */
  /* Since v0.3 (appended after the v0.2 struct, not in its tail padding: a
   * v0.2 caller's struct_size of 72 leaves both NULL). */
  const char* grammar;       /* GBNF text (NUL-terminated), or NULL / "": no grammar (default); copied at create */
  const char* json_schema;   /* JSON Schema text (NUL-terminated), or NULL / "" (default); at most one of the two */
} paca_sampler_params;

/**
 * Default sampler parameters: greedy, no penalties, no limits.
 * paca_sampler_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4 (v0.1-v0.3: by-value _default()).
 */
PACA_API paca_status paca_sampler_params_init(paca_sampler_params* p, size_t size);

/**
 * Creates a sampler for the model's vocabulary; it copies what it needs from
 * the model (vocabulary size, end-token ids), so the model may be freed first.
 * params may be NULL (greedy). Returns PACA_ERR_INVALID_ARGUMENT, with a
 * message naming the field, for a value out of range or NaN (e.g. a negative
 * temperature, top_p outside (0, 1], min_p outside [0, 1], a stop id outside
 * the vocabulary). On failure *out_sampler is NULL. Since v0.1.
 *
 * Constrained decoding (since v0.3): with params->grammar (GBNF, llama.cpp's
 * grammar format, start rule `root`) or params->json_schema (compiled to such
 * a grammar; see docs/design-notes.md for the keywords supported), every
 * sampled token keeps the generated text a prefix of a sentence of the
 * grammar: tokens that would leave it get -inf before every other stage, and
 * the model's end tokens are allowed exactly when the text is complete. Each
 * paca_sampler_sample / _sample_logits call advances the grammar by the token
 * it returns, so call it once per token of the text (as paca_generator does).
 * A grammar needs a model with a tokenizer (PACA_ERR_STATE) and is refused
 * together with ignore_eos (PACA_ERR_INVALID_ARGUMENT). A malformed grammar
 * or schema is PACA_ERR_INVALID_ARGUMENT with a message giving the place:
 * "grammar: line L, column C (byte B): ..." or "json_schema: at /pointer:
 * ..." (JSON syntax errors: nlohmann-json's line and column). When no token
 * of the vocabulary can continue the text, sampling returns PACA_ERR_STATE
 * ("grammar: no token of the vocabulary can continue the text ...").
 */
PACA_API paca_status paca_sampler_create(const paca_model* model, const paca_sampler_params* params,
                                         paca_sampler** out_sampler);

/** Frees a sampler. NULL is a no-op. Since v0.1. */
PACA_API void paca_sampler_free(paca_sampler* sampler);

/**
 * Replaces the sampler's logit bias table with n entries (n = 0 clears it):
 * biases[i] is added to the logit of tokens[i] before everything else. Each
 * bias is finite or -INFINITY (the token is never chosen); a repeated id: the
 * last entry wins. The arrays are copied. On PACA_ERR_INVALID_ARGUMENT (an id
 * outside the vocabulary, a NaN or +inf bias) the table is unchanged.
 * Since v0.1.
 */
PACA_API paca_status paca_sampler_set_logit_bias(paca_sampler* sampler, const int32_t* tokens,
                                                 const float* biases, size_t n);

#define PACA_MAX_TOP_LOGPROBS 20

typedef struct paca_token_logprobs {
  uint32_t struct_size;   /* set by the caller to sizeof(paca_token_logprobs) */
  int32_t token;          /* the chosen token */
  float logprob;          /* its log-probability (natural log) under log_softmax(l') */
  int32_t n_top;          /* entries used below: min(n_top_logprobs, tokens with finite l') */
  int32_t top_tokens[PACA_MAX_TOP_LOGPROBS];  /* most probable first; ties: lower id first */
  float top_logprobs[PACA_MAX_TOP_LOGPROBS];
} paca_token_logprobs;

/**
 * Samples the next token from the session's last logits (PACA_ERR_STATE when
 * there are none), using the session's tokens for the penalties and their
 * count as the position. The session is not changed: append the token with
 * paca_session_decode. out_logprobs may be NULL (then no log-probabilities
 * are computed); otherwise set its struct_size first; fields past it are left
 * alone. Returns PACA_ERR_INVALID_ARGUMENT when the session's model has a
 * different vocabulary size or when every token was banned. Since v0.1.
 */
PACA_API paca_status paca_sampler_sample(paca_sampler* sampler, const paca_session* session, int32_t* out_token,
                                         paca_token_logprobs* out_logprobs);

/**
 * The same chain on logits the caller holds: n_vocab floats (the sampler's
 * vocabulary size), and the sequence so far (history, n_history tokens; may be
 * NULL when n_history is 0), whose length is the position. Since v0.1.
 */
PACA_API paca_status paca_sampler_sample_logits(paca_sampler* sampler, const float* logits, size_t n_vocab,
                                                const int32_t* history, size_t n_history, int32_t* out_token,
                                                paca_token_logprobs* out_logprobs);

/**
 * Whether to stop after `token` was generated as new token number n_generated
 * (1-based): PACA_STOP_EOS for the model's end tokens (unless ignore_eos),
 * then PACA_STOP_TOKEN for stop_ids, then PACA_STOP_MAX_TOKENS when
 * n_generated >= max_new_tokens > 0; else PACA_STOP_NONE (also for a NULL
 * sampler). The token that stops is part of the sequence but usually not
 * shown. Since v0.1.
 */
PACA_API paca_stop_reason paca_sampler_stop_reason(const paca_sampler* sampler, int32_t token,
                                                   size_t n_generated);

/*
 * A paca_stop_matcher finds stop strings in streamed text. Feed it each piece
 * of detokenized text; it returns the part that is safe to show, holding back
 * any suffix that could be the start of a stop string, so a stop string split
 * across pieces is caught and none of it is shown. At the first point where a
 * stop string is complete (the one that ends first; at equal ends the longer,
 * then the lower index) it returns the text before that stop string and
 * reports the match; the rest of the generation is dropped. The result does
 * not depend on how the text was cut into pieces. Matching is on bytes; with
 * UTF-8 input and stop strings the returned text never ends inside a code
 * point.
 * A matcher is used by one thread at a time.
 */
typedef struct paca_stop_matcher paca_stop_matcher;

/**
 * Creates a matcher for n stop strings. lengths may be NULL, then each string
 * is NUL-terminated; otherwise lengths[i] bytes of stops[i] are used. An
 * empty stop string is PACA_ERR_INVALID_ARGUMENT. n = 0 gives a matcher that
 * passes text through. The strings are copied. Since v0.1.
 */
PACA_API paca_status paca_stop_matcher_create(const char* const* stops, const size_t* lengths, size_t n,
                                              paca_stop_matcher** out_matcher);

/** Frees a matcher. NULL is a no-op. Since v0.1. */
PACA_API void paca_stop_matcher_free(paca_stop_matcher* matcher);

/**
 * Feeds len bytes of text. *out_text / *out_len receive the text to show now
 * (owned by the matcher, valid until the next call on it; possibly empty, and
 * not NUL-terminated). *out_stop_index receives the index of the stop string
 * that matched, or -1; after a match every later feed returns no text and
 * the same index. out_stop_index may be NULL. Since v0.1.
 */
PACA_API paca_status paca_stop_matcher_feed(paca_stop_matcher* matcher, const char* text, size_t len,
                                            const char** out_text, size_t* out_len, int32_t* out_stop_index);

/**
 * Ends a generation that stopped for another reason: returns the held-back
 * text (same ownership as feed) and forgets it. Empty after a match.
 * Since v0.1.
 */
PACA_API paca_status paca_stop_matcher_flush(paca_stop_matcher* matcher, const char** out_text, size_t* out_len);

/** Forgets held text and any match, for a new generation. NULL is a no-op. Since v0.1. */
PACA_API void paca_stop_matcher_reset(paca_stop_matcher* matcher);

/* ---- generation ------------------------------------------------------------ */
/*
 * A paca_generator runs the generation loop of `paca run` on a session, one
 * token per call, so that every program and binding gets the same tokens and
 * text for the same request:
 *
 *   logits -> sampler -> token -> stop conditions (EOS, stop ids, max tokens)
 *                              -> streaming detokenizer -> stop strings -> text
 *
 * Each paca_generator_next samples one token from the session's last logits
 * and returns it with the text it completes (UTF-8, never ending inside a
 * character, possibly empty). When the generation goes on, the token is run
 * through the model (appended to the session); the token that ends it is
 * returned but not appended. The step that ends the generation also returns
 * all text still held back, and a stop string and what follows it are never
 * returned. Then paca_generator_stop_reason says why it ended.
 *
 *   while (paca_generator_stop_reason(gen) == PACA_STOP_NONE) {
 *     if (paca_generator_next(gen, &token, &text, &len) != PACA_OK) break;
 *     fwrite(text, 1, len, stdout);
 *   }
 *
 * A generator borrows its session: the session must outlive it, and neither
 * may be used by another thread meanwhile (paca_session_cancel excepted). A
 * model without a tokenizer generates tokens with empty text.
 */
typedef struct paca_generator paca_generator;

typedef struct paca_generator_params {
  uint32_t struct_size;              /* sizeof(paca_generator_params) */
  const char* const* stop_strings;   /* n_stop_strings stop strings (copied at create); need a tokenizer */
  const size_t* stop_lengths;        /* NULL: the stop strings are NUL-terminated; else their byte lengths */
  int32_t n_stop_strings;            /* >= 0 (default 0) */
  int32_t logprobs;                  /* 1: compute each token's log-probabilities (default 0) */
  uint32_t detokenize_flags;         /* PACA_DETOKENIZE_SPECIAL: control tokens appear as their text
                                        (default 0). The leading space of the first word is kept
                                        when the session holds text (any token but BOS). */
} paca_generator_params;

/**
 * Default generator parameters: no stop strings, no log-probabilities.
 * paca_generator_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4 (v0.1-v0.3: by-value _default()).
 */
PACA_API paca_status paca_generator_params_init(paca_generator_params* p, size_t size);

/**
 * Starts a generation on session: prefills the n_prompt tokens of prompt
 * (n_prompt may be 0 to continue from logits the session already holds),
 * and sets up the sampler (sampling: as paca_sampler_create, NULL = greedy;
 * its max_new_tokens, stop_ids and ignore_eos are the token-level stop
 * conditions, its n_top_logprobs the alternatives of
 * paca_generator_logprobs) and the stop strings (params, NULL = defaults).
 * Returns PACA_ERR_INVALID_ARGUMENT for a bad parameter (naming it), the
 * errors of paca_session_prefill (the session is then unchanged),
 * PACA_ERR_STATE for stop strings on a model without a tokenizer or for
 * n_prompt 0 on a session without logits. On failure *out_generator is NULL.
 * Since v0.2.
 */
PACA_API paca_status paca_generator_create(paca_session* session, const int32_t* prompt, size_t n_prompt,
                                           const paca_sampler_params* sampling, const paca_generator_params* params,
                                           paca_generator** out_generator);

/** Frees a generator (not its session). NULL is a no-op. Since v0.2. */
PACA_API void paca_generator_free(paca_generator* generator);

/**
 * Generates the next token. *out_token receives it, or -1 when the
 * generation has already ended (then the text is empty). *out_text /
 * *out_len (both optional) receive its text, owned by the generator and valid
 * until its next call, not NUL-terminated. On an error of the decode step
 * (e.g. PACA_ERR_CANCELLED) the generation cannot go on: later calls return
 * PACA_ERR_STATE. Since v0.2.
 */
PACA_API paca_status paca_generator_next(paca_generator* generator, int32_t* out_token, const char** out_text,
                                         size_t* out_len);

/**
 * paca_generator_next for n generators at once (batching): each samples its
 * next token, and those whose generation goes on are appended to their
 * sessions in ONE forward step of the model, which reads every weight once
 * for all of them instead of once per generator. The generators' sessions
 * must be distinct sessions of the same model. out_tokens (n entries) receives
 * each generator's token (-1 for one that had already ended); out_texts and
 * out_lens (both optional, n entries) its text, as paca_generator_next gives
 * it. A token gets exactly the logits, hence the same draw, it would get from
 * paca_generator_next: a request generates the same tokens alone or inside
 * any batch. Generators may join or leave between calls (continuous
 * batching). PACA_ERR_INVALID_ARGUMENT (NULL pointers, a generator twice,
 * shared sessions, different models) or PACA_ERR_STATE (a generator that
 * failed before) change nothing; if the forward step itself fails, the
 * generators that were to take a token fail as paca_generator_next would.
 * Session cancellation is not checked inside a batched step. Since v0.2.
 */
PACA_API paca_status paca_generator_next_batch(paca_generator* const* generators, size_t n, int32_t* out_tokens,
                                               const char** out_texts, size_t* out_lens);

/** Why the generation ended, or PACA_STOP_NONE while it goes on (also for NULL). Since v0.2. */
PACA_API paca_stop_reason paca_generator_stop_reason(const paca_generator* generator);

/** Number of tokens generated so far (0 for NULL). Since v0.2. */
PACA_API size_t paca_generator_n_generated(const paca_generator* generator);

/**
 * Log-probabilities of the last token generated (see paca_token_logprobs).
 * Set out_logprobs->struct_size first. PACA_ERR_STATE unless the generator
 * was created with params->logprobs 1 and has generated a token. Since v0.2.
 */
PACA_API paca_status paca_generator_logprobs(const paca_generator* generator, paca_token_logprobs* out_logprobs);
/* ---- session fork, snapshots and prompt cache ------------------------------ */
/*
 * A fork is a new session that continues from another's state. It shares the
 * parent's KV-cache blocks copy-on-write: forking costs no copy of the cache,
 * and the one block that both would write next (the block holding the
 * sequence's end) is copied only when one of them writes it. Parent and child
 * are independent afterwards (rewind either, free either first).
 *
 * A snapshot file holds a session's tokens, its last logits, its KV cache for
 * those tokens and optionally the settings of a sampler, compressed with zstd,
 * with a checksum over the header and one per section, and the fingerprint of
 * the model it came from (paca_model_describe_json's "fingerprint": a hash of
 * the configuration, the tokenizer and the tensor table). Loading it gives a
 * session equal to the saved one: the next logits and tokens are bit for bit
 * those the saved session would have produced. Writing is crash-safe: the file
 * is written to "<path>.tmp.<pid>.<n>" in the same folder, flushed, and renamed
 * over path, so path always holds the old snapshot or the complete new one
 * (a crash can leave the temporary file behind). A snapshot loads only into a
 * model with the same fingerprint and KV dtype; any KV block size will do.
 *
 * Errors of the loaders: PACA_ERR_IO (the file cannot be read),
 * PACA_ERR_FORMAT (not a snapshot, truncated, corrupt: a checksum failed,
 * absurd or inconsistent sizes), PACA_ERR_UNSUPPORTED (written by a newer
 * library, or with another KV dtype), PACA_ERR_INVALID_ARGUMENT (saved from a
 * different model); paca_last_error() names the problem.
 */

/**
 * Creates *out_child, a fork of session holding all of its tokens, its KV
 * cache (shared, see above) and its logits. Since v0.2.
 */
PACA_API paca_status paca_session_fork(const paca_session* session, paca_session** out_child);

/** Saves session to a snapshot file at path (replacing it). Since v0.2. */
PACA_API paca_status paca_session_save(const paca_session* session, const char* path);

/**
 * As paca_session_save, and also stores the settings of sampler (NULL: none):
 * its parameters, stop ids and logit bias. A sampler keeps no random state
 * (draws are keyed by seed and position), so a sampler made from them
 * continues a seeded generation exactly. Since v0.2.
 */
PACA_API paca_status paca_session_save_with_sampler(const paca_session* session, const paca_sampler* sampler,
                                                    const char* path);

/**
 * Loads a snapshot into a new session of model (with the context size it was
 * saved with). On failure *out_session is NULL. Since v0.2.
 */
PACA_API paca_status paca_session_load(paca_model* model, const char* path, paca_session** out_session);

/**
 * As paca_session_load, and *out_sampler receives a new sampler with the
 * stored settings, or NULL when the snapshot has none. On failure both are
 * NULL. Since v0.2.
 */
PACA_API paca_status paca_session_load_with_sampler(paca_model* model, const char* path,
                                                    paca_session** out_session, paca_sampler** out_sampler);

/**
 * Prompt cache. session must be empty (else PACA_ERR_STATE). Restores from
 * the snapshot at cache_path the longest prefix it shares with tokens[0, n),
 * then prefills the rest, so that the logits of tokens[n - 1] are available
 * (all n tokens come from the cache only when it holds exactly these tokens
 * and their logits; otherwise at least the last token is prefilled). A
 * missing, unreadable, corrupt or foreign cache file is a miss, not an error
 * (a warning goes to the model's log). *out_n_reused (may be NULL) receives
 * the number of tokens taken from the cache. Save the extended state with
 * paca_session_save(session, cache_path) afterwards. Logits after a partial
 * hit equal those of a full prefill within float rounding (~1e-6 relative),
 * as chunked prefill does; after a full hit they are identical. On failure
 * the session is left empty. Since v0.2.
 */
PACA_API paca_status paca_session_prefill_cached(paca_session* session, const char* cache_path, const int32_t* tokens,
                                                 size_t n, size_t* out_n_reused);


/* ---- engine: many requests on one model (continuous batching) ------------ */
/*
 * An engine serves requests submitted from any thread. Its scheduler thread
 * runs steps over all running requests at once: each step holds every
 * decoding request's next token and chunks of prompts still being prefilled,
 * up to max_step_tokens tokens; new requests join between steps and finished
 * ones leave. Requests that share a prompt prefix share its KV blocks (the
 * prefix cache: full blocks, by a hash of every token up to the block's end,
 * kept after their requests finish and evicted least recently used first when
 * the KV pool runs short). When the pool is full, the request of lowest
 * priority that arrived last is preempted: its blocks are freed and it is
 * recomputed later (the same tokens result). A request's tokens do not depend
 * on what else runs: for the same prompt and sampling (seed included) they are
 * those of a paca_generator. Since v0.4.
 */
typedef struct paca_engine paca_engine;
typedef uint64_t paca_request_id;

typedef struct paca_engine_params {
  uint32_t struct_size;     /* sizeof(paca_engine_params) */
  int32_t max_running;      /* requests stepped together (default 64) */
  int32_t max_step_tokens;  /* tokens in one step, decodes and prefill chunks together (default 512; >= 1) */
  int32_t max_queued;       /* requests waiting to start; a submit beyond this fails with PACA_ERR_BUSY (default 1024) */
  int32_t n_ctx;            /* each request's context size; 0: the model's max_context (default 0) */
  int32_t prefix_cache;     /* 1: share the KV blocks of common prefixes (default 1); 0: off */
  int32_t manual_step;      /* 1: no scheduler thread; the caller runs paca_engine_step (default 0) */
} paca_engine_params;

/**
 * Default engine parameters.
 * paca_engine_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4.
 */
PACA_API paca_status paca_engine_params_init(paca_engine_params* p, size_t size);

/**
 * One event of a request: a token and its text, or its end. A request's last
 * event is the one with stop_reason != PACA_STOP_NONE or status != PACA_OK
 * (the token that ends a generation comes in it, with its text).
 */
typedef struct paca_request_event {
  uint32_t struct_size;          /* set by the library */
  paca_request_id id;
  int32_t token;                 /* the generated token; -1 in an end event that carries none */
  const char* text;              /* the text this token completes (NUL-terminated, text_len bytes); valid
                                    during the callback, or until the next poll of this request (an end
                                    event's: until the next paca_engine_poll on this thread) */
  size_t text_len;
  float logprob;                 /* the token's log-probability when the request asked for logprobs, else 0 */
  paca_stop_reason stop_reason;  /* PACA_STOP_NONE while the request goes on; else it ended with this event */
  paca_status status;            /* PACA_OK, or why the request failed / was cancelled (then it ended) */
  const char* error;             /* the failure's message ("" when OK); valid as text */
  /* Filled in a request's last event (zero before): */
  uint32_t n_prompt;             /* prompt tokens */
  uint32_t n_cached;             /* prompt tokens whose KV came from the prefix cache */
  uint32_t n_generated;          /* tokens generated */
  uint32_t n_preempted;          /* times the request was preempted and recomputed */
  double queue_ms;               /* submit -> first step */
  double first_token_ms;         /* submit -> first token */
  double total_ms;               /* submit -> end */
} paca_request_event;

/** Called on the engine's thread for each event; must not call paca_engine_free. */
typedef void (*paca_request_callback)(const paca_request_event* event, void* user_data);

typedef struct paca_request_params {
  uint32_t struct_size;              /* sizeof(paca_request_params) */
  const char* const* stop_strings;   /* as paca_generator_params (copied at submit) */
  const size_t* stop_lengths;
  int32_t n_stop_strings;
  int32_t logprobs;                  /* 1: events carry the token's log-probability (default 0) */
  uint32_t detokenize_flags;         /* as paca_generator_params */
  int32_t priority;                  /* higher starts first and is preempted last (default 0) */
  paca_request_callback callback;    /* NULL: events are queued for paca_engine_poll */
  void* user_data;                   /* passed to callback */
  /* Since v0.5: the request's logit bias, as paca_sampler_set_logit_bias
     (copied at submit; an id outside the vocabulary or a NaN / +inf bias is
     PACA_ERR_INVALID_ARGUMENT naming the entry). n_logit_bias 0: none. */
  const int32_t* logit_bias_tokens;
  const float* logit_bias_values;
  int32_t n_logit_bias;
} paca_request_params;

/**
 * Default request parameters.
 * paca_request_params_init(&p, sizeof p) fills the first `size` bytes of *p
 * with them and sets struct_size = size. PACA_ERR_INVALID_ARGUMENT when p is
 * NULL or size < sizeof(uint32_t). Since v0.4.
 */
PACA_API paca_status paca_request_params_init(paca_request_params* p, size_t size);

/**
 * An engine on model (NULL params: defaults). Like a session it keeps the
 * model's state alive, so freeing the model handle first is safe; sessions
 * of the same model may be used beside it (they share the KV pool).
 * Since v0.4.
 */
PACA_API paca_status paca_engine_create(paca_model* model, const paca_engine_params* params,
                                        paca_engine** out_engine);

/**
 * Cancels every request (their callbacks get a PACA_ERR_CANCELLED end event)
 * and frees the engine. NULL is a no-op. Since v0.4.
 */
PACA_API void paca_engine_free(paca_engine* engine);

/**
 * Queues a request: generate after the n_prompt tokens of prompt (n_prompt
 * >= 1) with sampling (as paca_generator_create; NULL = greedy) and params
 * (NULL = defaults). Thread-safe. Errors: PACA_ERR_INVALID_ARGUMENT (a bad
 * id or parameter, naming it), PACA_ERR_CONTEXT_FULL (the prompt does not
 * fit n_ctx), PACA_ERR_BUSY (max_queued requests are waiting). Since v0.4.
 */
PACA_API paca_status paca_engine_submit(paca_engine* engine, const int32_t* prompt, size_t n_prompt,
                                        const paca_sampler_params* sampling, const paca_request_params* params,
                                        paca_request_id* out_id);

/**
 * Cancels a request: it ends with a PACA_ERR_CANCELLED event at the next
 * step boundary. Thread-safe. Unknown or finished ids are not an error (a
 * request may end on its own meanwhile). Since v0.4.
 */
PACA_API paca_status paca_engine_cancel(paca_engine* engine, paca_request_id id);

/**
 * The next event of a request submitted without a callback, waiting up to
 * timeout_ms (0: do not wait; < 0: wait as long as it takes). Returns
 * PACA_ERR_TIMEOUT when none came, PACA_ERR_INVALID_ARGUMENT for an id that
 * is unknown, has a callback, or already delivered its end event (the engine
 * forgets a request once its end event is polled). Thread-safe; one thread
 * per request. Since v0.4.
 */
PACA_API paca_status paca_engine_poll(paca_engine* engine, paca_request_id id, int32_t timeout_ms,
                                      paca_request_event* out_event);

/**
 * With manual_step: runs one scheduling step on this thread (admits waiting
 * requests, runs one batched forward pass, delivers events). *out_active
 * (may be NULL) receives the number of requests running or waiting after it.
 * PACA_ERR_STATE for an engine with its own thread. Since v0.4.
 */
PACA_API paca_status paca_engine_step(paca_engine* engine, size_t* out_active);

typedef struct paca_engine_stats {
  uint32_t struct_size;          /* set by the caller: sizeof(paca_engine_stats) */
  uint32_t n_queued;             /* waiting to start */
  uint32_t n_running;            /* in the running batch */
  uint64_t n_submitted;
  uint64_t n_finished;           /* ended for any reason */
  uint64_t n_steps;              /* forward passes */
  uint64_t n_prefill_tokens;     /* tokens run as prompt (recomputation included) */
  uint64_t n_generated_tokens;
  uint64_t n_cached_tokens;      /* prompt tokens taken from the prefix cache */
  uint64_t n_preemptions;
  uint64_t kv_blocks_used;       /* blocks holding K/V, the prefix cache's included */
  uint64_t kv_blocks_cached;     /* blocks the prefix cache holds */
  uint64_t kv_blocks_total;      /* the pool's size; 0 for an unbounded pool */
  uint32_t kv_block_tokens;      /* positions per block */
} paca_engine_stats;

/** Counters of the engine so far. Thread-safe. Since v0.4. */
PACA_API paca_status paca_engine_get_stats(const paca_engine* engine, paca_engine_stats* out_stats);

#ifdef __cplusplus
}
#endif

#endif /* PACA_PACA_H */
