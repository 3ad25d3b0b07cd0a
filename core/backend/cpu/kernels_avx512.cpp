// kernels_avx512.cpp - the AVX-512 kernel set: the AVX2 set with the block
// dots compiled for AVX-512 VL + VNNI (kernels_blocks_x86.inc with one
// vpdpwssd for the scaled lanes), bit-identical to the scalar ones. Chosen
// when the CPU has AVX-512 F/BW/VL and VNNI (Zen 4, Ice Lake and later).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)
#define PACA_BLOCKS_TARGET "avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni"
#define PACA_BLOCKS_VNNI 1
#define PACA_BLOCKS_NS avx512_blocks
#include "backend/cpu/kernels_blocks_x86.inc"

namespace paca::cpu {

const Kernels* avx512_kernels() {
  const Kernels* base = avx2_kernels();
  if (base == nullptr) return nullptr;
  __builtin_cpu_init();
  if (!__builtin_cpu_supports("avx512f") || !__builtin_cpu_supports("avx512bw") ||
      !__builtin_cpu_supports("avx512vl") || !__builtin_cpu_supports("avx512vnni"))
    return nullptr;
  static const Kernels k = [base] {
    Kernels v = *base;
    v.isa = "avx512";
    avx512_blocks::set_block_dots(v);
    return v;
  }();
  return &k;
}

}  // namespace paca::cpu

#else
namespace paca::cpu {
const Kernels* avx512_kernels() { return nullptr; }
}  // namespace paca::cpu
#endif
