/* generate.c - the smallest complete use of paca from C: load a model,
 * tokenize a prompt, and stream a continuation with paca_generator (the loop
 * `paca run` runs: sampling, stop tokens, stop string, UTF-8-safe text).
 *   example_generate_c MODEL_PATH [PROMPT] [N_TOKENS] [TEMPERATURE SEED] [STOP]
 * The text goes to stdout; the generated ids and the stop reason to stderr. */
#include <paca/paca.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_PATH [PROMPT] [N_TOKENS] [TEMPERATURE SEED] [STOP]\n", argv[0]);
    return 2;
  }
  const char* text = argc > 2 ? argv[2] : "Once upon a time";
  paca_sampler_params sampling;
  paca_sampler_params_init(&sampling, sizeof sampling);
  sampling.max_new_tokens = argc > 3 ? atoi(argv[3]) : 32;
  if (argc > 5) {
    sampling.temperature = (float)atof(argv[4]);
    sampling.seed = (uint64_t)strtoull(argv[5], NULL, 10);
  }
  paca_generator_params params;
  paca_generator_params_init(&params, sizeof params);
  if (argc > 6) {
    params.stop_strings = (const char* const*)&argv[6];
    params.n_stop_strings = 1;
  }

  paca_model* model = NULL;
  if (paca_model_load(argv[1], NULL, &model) != PACA_OK) {
    fprintf(stderr, "load failed: %s\n", paca_last_error());
    return 1;
  }
  int32_t prompt[512];
  size_t n_prompt = 0;
  paca_status st = paca_tokenize(model, text, strlen(text), PACA_TOKENIZE_ADD_BOS, prompt, 512, &n_prompt);
  if (st == PACA_ERR_STATE) { /* no tokenizer: start from BOS (or 0) */
    paca_model_info info = {0};
    info.struct_size = sizeof info;
    paca_model_get_info(model, &info);
    prompt[0] = info.bos_id >= 0 ? info.bos_id : 0;
    n_prompt = 1;
    st = PACA_OK;
  }
  paca_session* session = NULL;
  paca_generator* gen = NULL;
  if (st == PACA_OK) st = paca_session_create(model, NULL, &session);
  if (st == PACA_OK) st = paca_generator_create(session, prompt, n_prompt, &sampling, &params, &gen);
  while (st == PACA_OK && paca_generator_stop_reason(gen) == PACA_STOP_NONE) {
    int32_t token = -1;
    const char* piece = NULL;
    size_t len = 0;
    st = paca_generator_next(gen, &token, &piece, &len);
    if (st != PACA_OK) break;
    fwrite(piece, 1, len, stdout);
    fflush(stdout);
    fprintf(stderr, paca_generator_n_generated(gen) > 1 ? ",%d" : "tokens: %d", token);
  }
  printf("\n");
  if (st == PACA_OK) fprintf(stderr, "\nstop: %d\n", (int)paca_generator_stop_reason(gen));
  else fprintf(stderr, "failed: %s: %s\n", paca_status_name(st), paca_last_error());
  paca_generator_free(gen);
  paca_session_free(session);
  paca_model_free(model);
  return st == PACA_OK ? 0 : 1;
}
