/* v01_caller.c - a program written against the v0.1 header (tests/abi/v0.1)
 * and run against today's libpaca: the by-value defaults, the v0.1 layouts
 * (tail padding included), a test model written and loaded, a session
 * decoding greedily, the sampler agreeing with the argmax of the logits, and
 * errors still reported. Usage: v01_caller SCRATCH_DIR. Exits 0 when all
 * holds; else prints what did not. */
#include <paca/paca.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

static int failures = 0;
#define CHECK(cond)                                                 \
  do {                                                              \
    if (!(cond)) {                                                  \
      fprintf(stderr, "v01_caller:%d: %s failed (last error: %s)\n", \
              __LINE__, #cond, paca_last_error());                  \
      ++failures;                                                   \
    }                                                               \
  } while (0)

static int argmax(const float* x, size_t n) {
  size_t best = 0;
  for (size_t i = 1; i < n; ++i)
    if (x[i] > x[best]) best = i;
  return (int)best;
}

int main(int argc, char** argv) {
  if (argc != 2) {
    fprintf(stderr, "usage: v01_caller SCRATCH_DIR\n");
    return 2;
  }
  CHECK(paca_abi_version() == PACA_ABI_VERSION);
  CHECK(strncmp(paca_version(), "0.", 2) == 0);

  /* The by-value defaults come back at v0.1's sizes: a larger struct would
     have been written past this caller's storage. */
  paca_model_params mp = paca_model_params_default();
  paca_session_params sp = paca_session_params_default();
  paca_test_model_params tp = paca_test_model_params_default();
  paca_chat_params cp = paca_chat_params_default();
  paca_sampler_params smp = paca_sampler_params_default();
  CHECK(mp.struct_size == sizeof mp);
  CHECK(sp.struct_size == sizeof sp);
  CHECK(tp.struct_size == sizeof tp);
  CHECK(cp.struct_size == sizeof cp);
  CHECK(smp.struct_size == sizeof smp);
  CHECK(smp.temperature == 0.0f && mp.kv_block_tokens == 16);

  /* A small model: v0.1 writes it, today's library loads it. */
  tp.dim = 64;
  tp.n_layers = 2;
  tp.n_heads = 4;
  tp.n_kv_heads = 2;
  tp.ffn_dim = 128;
  tp.n_vocab = 256;
  tp.max_context = 128;
  CHECK(paca_make_test_model(argv[1], &tp) == PACA_OK);

  /* v0.1's struct ends in 4 bytes of padding after fp8_mode, where v0.2
     put load_mode. Garbage there must not be read as a field. */
  memset((unsigned char*)&mp + offsetof(paca_model_params, fp8_mode) + sizeof mp.fp8_mode, 0xff,
         sizeof mp - offsetof(paca_model_params, fp8_mode) - sizeof mp.fp8_mode);
  mp.n_threads = 1;
  paca_model* model = NULL;
  CHECK(paca_model_load(argv[1], &mp, &model) == PACA_OK);
  if (model == NULL) return 1;

  paca_model_info info;
  memset(&info, 0, sizeof info);
  info.struct_size = sizeof info;
  CHECK(paca_model_get_info(model, &info) == PACA_OK);
  CHECK(info.n_layers == 2 && info.dim == 64 && info.n_vocab == 256 && info.n_kv_heads == 2);

  paca_session* s = NULL;
  sp.n_ctx = 64;
  CHECK(paca_session_create(model, &sp, &s) == PACA_OK);
  paca_sampler* sampler = NULL;
  smp.seed = 7;
  CHECK(paca_sampler_create(model, &smp, &sampler) == PACA_OK);
  if (s == NULL || sampler == NULL) return 1;

  const int32_t prompt[] = {1, 17, 42, 99, 3};
  CHECK(paca_session_prefill(s, prompt, 5) == PACA_OK);
  for (int i = 0; i < 12; ++i) {
    const float* logits = NULL;
    size_t n_vocab = 0;
    CHECK(paca_session_logits(s, &logits, &n_vocab) == PACA_OK);
    if (logits == NULL) break;
    CHECK(n_vocab == 256);
    int32_t tok = -1;
    CHECK(paca_sampler_sample(sampler, s, &tok, NULL) == PACA_OK);
    CHECK(tok == argmax(logits, n_vocab)); /* greedy by default */
    CHECK(paca_session_decode(s, tok) == PACA_OK);
  }
  CHECK(paca_session_length(s) == 17);

  /* Errors are still errors, with a message. */
  paca_model_params bad = paca_model_params_default();
  bad.struct_size = 0;
  paca_model* none = NULL;
  CHECK(paca_model_load(argv[1], &bad, &none) == PACA_ERR_INVALID_ARGUMENT && none == NULL);
  CHECK(strlen(paca_last_error()) > 0);
  CHECK(paca_session_decode(s, 100000) == PACA_ERR_INVALID_ARGUMENT);

  paca_sampler_free(sampler);
  paca_session_free(s);
  paca_model_free(model);
  if (failures == 0) printf("v0.1 caller: all checks passed against libpaca %s\n", paca_version());
  return failures == 0 ? 0 : 1;
}
