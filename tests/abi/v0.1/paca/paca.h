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
  /* Since v0.1: tokenizer file to use instead of the checkpoint's own (NULL =
     the checkpoint's: tokenizer.json / tokenizer.model of a directory, the
     vocabulary of a GGUF, tok<vocab>.bin or tokenizer.bin beside a llama2.c
     .bin). Any tokenizer file kind is accepted. */
  const char* tokenizer_path;
  /* Since v0.1: FP8 (see paca_weight_dtype, PACA_FP8_*, paca_fp8_mode). */
  int32_t weight_dtype;       /* paca_weight_dtype: quantize linear weights at load */
  int32_t fp8_targets;        /* PACA_FP8_* flags for quantizing at load; 0 = Meta's recipe */
  int32_t fp8_mode;           /* paca_fp8_mode: how FP8 matmuls treat activations */
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

/** Default chat parameters (add_generation_prompt 1, everything else unset). Since v0.1. */
PACA_API paca_chat_params paca_chat_params_default(void);

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
} paca_sampler_params;

/** Default sampler parameters: greedy, no penalties, no limits. Since v0.1. */
PACA_API paca_sampler_params paca_sampler_params_default(void);

/**
 * Creates a sampler for the model's vocabulary; it copies what it needs from
 * the model (vocabulary size, end-token ids), so the model may be freed first.
 * params may be NULL (greedy). Returns PACA_ERR_INVALID_ARGUMENT, with a
 * message naming the field, for a value out of range or NaN (e.g. a negative
 * temperature, top_p outside (0, 1], min_p outside [0, 1], a stop id outside
 * the vocabulary). On failure *out_sampler is NULL. Since v0.1.
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

#ifdef __cplusplus
}
#endif

#endif /* PACA_PACA_H */
