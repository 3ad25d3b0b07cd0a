/* generate.c - the smallest complete use of paca from C: load a model, feed
 * a prompt of token ids, and print a greedy continuation.
 *   example_generate_c MODEL_PATH [N_TOKENS]                                */
#include <paca/paca.h>
#include <stdio.h>
#include <stdlib.h>

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s MODEL_PATH [N_TOKENS]\n", argv[0]);
    return 2;
  }
  int n = argc > 2 ? atoi(argv[2]) : 16;
  paca_model* model = NULL;
  if (paca_model_load(argv[1], NULL, &model) != PACA_OK) {
    fprintf(stderr, "load failed: %s\n", paca_last_error());
    return 1;
  }
  paca_model_info info = {0};
  info.struct_size = sizeof info;
  paca_model_get_info(model, &info);

  paca_session* session = NULL;
  paca_status st = paca_session_create(model, NULL, &session);
  int32_t token = info.bos_id >= 0 ? info.bos_id : 0;
  if (st == PACA_OK) st = paca_session_prefill(session, &token, 1);
  for (int i = 0; i < n && st == PACA_OK; ++i) {
    const float* logits = NULL;
    size_t vocab = 0;
    st = paca_session_logits(session, &logits, &vocab);
    if (st != PACA_OK) break;
    size_t best = 0;
    for (size_t k = 1; k < vocab; ++k)
      if (logits[k] > logits[best]) best = k;
    token = (int32_t)best;
    printf("%d ", token);
    st = paca_session_decode(session, token);
  }
  printf("\n");
  if (st != PACA_OK) fprintf(stderr, "stopped: %s: %s\n", paca_status_name(st), paca_last_error());
  paca_session_free(session);
  paca_model_free(model);
  return st == PACA_OK ? 0 : 1;
}
