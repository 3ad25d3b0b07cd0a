// llamacpp_logits.cpp - the last position's logits of a token list under
// llama.cpp, written as raw float32 (the format of `paca eval --logits-out`),
// so that bench/peer/agree.py can compare the two engines on one GGUF.
// Built against a native llama.cpp by build_llamacpp.sh; a peer tool only,
// never part of paca.
//
//   llamacpp-logits MODEL.gguf 1,2,3 OUT.f32 [THREADS]
#include <llama.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: llamacpp-logits MODEL.gguf TOKENS OUT.f32 [THREADS]\n");
    return 2;
  }
  std::vector<llama_token> tokens;
  for (const char* p = argv[2]; *p != '\0';) {
    char* end = nullptr;
    const long v = std::strtol(p, &end, 10);
    if (end == p) {
      std::fprintf(stderr, "llamacpp-logits: bad token list '%s'\n", argv[2]);
      return 2;
    }
    tokens.push_back(static_cast<llama_token>(v));
    p = *end == ',' ? end + 1 : end;
  }
  llama_backend_init();
  llama_model_params mp = llama_model_default_params();
  llama_model* model = llama_model_load_from_file(argv[1], mp);
  if (model == nullptr) {
    std::fprintf(stderr, "llamacpp-logits: cannot load %s\n", argv[1]);
    return 1;
  }
  llama_context_params cp = llama_context_default_params();
  cp.n_ctx = static_cast<uint32_t>(tokens.size() + 8);
  cp.n_batch = cp.n_ctx;
  cp.n_threads = cp.n_threads_batch = argc > 4 ? std::atoi(argv[4]) : 1;
  llama_context* ctx = llama_init_from_model(model, cp);
  if (ctx == nullptr || llama_decode(ctx, llama_batch_get_one(tokens.data(), static_cast<int32_t>(tokens.size()))) != 0) {
    std::fprintf(stderr, "llamacpp-logits: decode failed\n");
    return 1;
  }
  const int32_t nv = llama_vocab_n_tokens(llama_model_get_vocab(model));
  const float* logits = llama_get_logits_ith(ctx, -1);
  FILE* f = std::fopen(argv[3], "wb");
  if (f == nullptr || std::fwrite(logits, sizeof(float), static_cast<size_t>(nv), f) != static_cast<size_t>(nv) ||
      std::fclose(f) != 0) {
    std::fprintf(stderr, "llamacpp-logits: cannot write %s\n", argv[3]);
    return 1;
  }
  llama_free(ctx);
  llama_model_free(model);
  llama_backend_free();
  return 0;
}
