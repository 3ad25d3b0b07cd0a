/* rank_worker.c - one rank of a multi-process group, through paca.h only
 * (tests/parallel_procs.sh): loads a model with the given sharding, greedily
 * generates N tokens from a prompt of ids and prints them; optionally kills
 * itself (SIGKILL) or stops itself (SIGSTOP) after K tokens, to test what
 * the other ranks do when they lose a peer.
 *
 *   rank_worker MODEL TP PP RANK WORLD RENDEZVOUS|- TIMEOUT_MS N PROMPT_IDS [kill|stop K]
 *
 * Prints "tokens: a,b,c" (exit 0) or "error: STATUS: message" (exit 1). */
#include <paca/paca.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* the rank, from mpirun's environment when not given */
static int rank_of(const paca_model_params* p) {
  const char* env = getenv("OMPI_COMM_WORLD_RANK");
  return p->rank >= 0 ? p->rank : env != NULL ? atoi(env) : 0;
}

static int fail(const char* what, paca_status s) {
  printf("error: %s: %s: %s\n", what, paca_status_name(s), paca_last_error());
  fflush(stdout);
  return 1;
}

int main(int argc, char** argv) {
  if (argc != 10 && argc != 12) {
    fprintf(stderr, "usage: rank_worker MODEL TP PP RANK WORLD RENDEZVOUS|- TIMEOUT_MS N PROMPT_IDS [kill|stop K]\n");
    return 2;
  }
  paca_model_params p;
  paca_model_params_init(&p, sizeof p);
  p.n_threads = 1;
  p.tensor_parallel = atoi(argv[2]);
  p.pipeline_parallel = atoi(argv[3]);
  p.rank = atoi(argv[4]);
  p.world_size = atoi(argv[5]);
  p.rendezvous = strcmp(argv[6], "-") == 0 ? NULL : argv[6];
  p.comm_timeout_ms = atoi(argv[7]);
  const int n = atoi(argv[8]);
  int32_t prompt[256];
  size_t n_prompt = 0;
  for (char* t = strtok(argv[9], ","); t != NULL && n_prompt < 256; t = strtok(NULL, ",")) prompt[n_prompt++] = atoi(t);
  const int fault_after = argc == 12 && rank_of(&p) == 1 ? atoi(argv[11]) : -1;  /* the fault hits rank 1 */
  const int fault_sig = argc == 12 && strcmp(argv[10], "stop") == 0 ? SIGSTOP : SIGKILL;

  /* every exit frees what it has, so the sanitizer build checks the error paths for leaks too */
  paca_model* m = NULL;
  paca_session* sess = NULL;
  int32_t* out = NULL;
  int rc = 0;
  paca_status s = paca_model_load(argv[1], &p, &m);
  if (s != PACA_OK) {
    rc = fail("load", s);
    goto done;
  }
  if ((s = paca_session_create(m, NULL, &sess)) != PACA_OK) {
    rc = fail("session", s);
    goto done;
  }
  if ((s = paca_session_prefill(sess, prompt, n_prompt)) != PACA_OK) {
    rc = fail("prefill", s);
    goto done;
  }
  out = malloc(sizeof(int32_t) * (size_t)(n > 0 ? n : 1));
  if (out == NULL) {
    rc = 1;
    goto done;
  }
  for (int i = 0; i < n; ++i) {
    if (i == fault_after) {
      fprintf(stderr, "rank_worker: rank %d (pid %d) raises signal %d after %d tokens\n", rank_of(&p), (int)getpid(),
              fault_sig, i);
      fflush(stderr);
      raise(fault_sig);
    }
    const float* lg = NULL;
    size_t nv = 0;
    if ((s = paca_session_logits(sess, &lg, &nv)) != PACA_OK) {
      rc = fail("logits", s);
      goto done;
    }
    int32_t best = 0;
    for (size_t v = 1; v < nv; ++v)
      if (lg[v] > lg[best]) best = (int32_t)v;
    out[i] = best;
    if ((s = paca_session_decode(sess, best)) != PACA_OK) {
      rc = fail("decode", s);
      goto done;
    }
  }
  printf("tokens: ");
  for (int i = 0; i < n; ++i) printf(i ? ",%d" : "%d", out[i]);
  printf("\n");
done:
  free(out);
  paca_session_free(sess);
  paca_model_free(m);
  return rc;
}
