// kernels_blocks_avx2.cpp - the block dots for AVX2 (kernels_blocks_x86.inc
// with vpmaddwd + vpaddd for the scaled lanes).
#include "backend/cpu/kernels.h"

#if defined(__x86_64__)
#define PACA_BLOCKS_TARGET "avx2,fma,f16c"
#define PACA_BLOCKS_VNNI 0
#define PACA_BLOCKS_NS avx2_blocks
#include "backend/cpu/kernels_blocks_x86.inc"

namespace paca::cpu {
void avx2_block_dots(Kernels& k) { avx2_blocks::set_block_dots(k); }
}  // namespace paca::cpu

#else
namespace paca::cpu {
void avx2_block_dots(Kernels& k) { scalar_block_dots(k); }
}  // namespace paca::cpu
#endif
