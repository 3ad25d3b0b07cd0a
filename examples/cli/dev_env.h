// dev_env.h - the developer overrides of the paca command and paca-bench:
// environment variables that set paca_model_params' kernel choices (the
// library itself never reads them).
//
//   PACA_CPU_ISA=auto|scalar|avx2|avx512   -> cpu_isa
//   PACA_CUDA_GRAPHS=0|1                    -> cuda_graphs
//   PACA_CUDA_FP8_DECODE=auto|w8a16         -> cuda_fp8_decode_w8a16
//   PACA_CUDA_FP8_PREFILL=auto|w8a8         -> cuda_fp8_prefill_w8a8
//   PACA_CUDA_FP8_FUSED_NORM=0|1            -> cuda_fp8_fused_norm
//
// A value outside these exits with status 2 and a message naming the variable.
#ifndef PACA_EXAMPLES_CLI_DEV_ENV_H
#define PACA_EXAMPLES_CLI_DEV_ENV_H

#include <paca/paca.h>

#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <utility>

namespace paca_cli {

// The variable's value mapped through {text, number} pairs; fallback when unset.
inline int32_t env_choice(const char* name, int32_t fallback, std::initializer_list<std::pair<const char*, int32_t>> values) {
  const char* v = std::getenv(name);
  if (v == nullptr) return fallback;
  for (const auto& [text, number] : values)
    if (std::strcmp(v, text) == 0) return number;
  std::fprintf(stderr, "paca: %s=%s is not one of:", name, v);
  for (const auto& [text, number] : values) std::fprintf(stderr, " %s", text);
  std::fprintf(stderr, "\n");
  std::exit(2);
}

// Applies the overrides that are set to mp (filled by paca_model_params_init).
inline void apply_developer_env(paca_model_params* mp) {
  if (const char* isa = std::getenv("PACA_CPU_ISA")) mp->cpu_isa = isa;  // the library checks the name
  mp->cuda_graphs = env_choice("PACA_CUDA_GRAPHS", mp->cuda_graphs, {{"0", 0}, {"off", 0}, {"1", 1}, {"on", 1}});
  mp->cuda_fp8_decode_w8a16 = env_choice("PACA_CUDA_FP8_DECODE", mp->cuda_fp8_decode_w8a16, {{"auto", 0}, {"w8a16", 1}});
  mp->cuda_fp8_prefill_w8a8 = env_choice("PACA_CUDA_FP8_PREFILL", mp->cuda_fp8_prefill_w8a8, {{"auto", 0}, {"w8a8", 1}});
  mp->cuda_fp8_fused_norm =
      env_choice("PACA_CUDA_FP8_FUSED_NORM", mp->cuda_fp8_fused_norm, {{"0", 0}, {"off", 0}, {"1", 1}, {"on", 1}});
}

}  // namespace paca_cli

#endif  // PACA_EXAMPLES_CLI_DEV_ENV_H
