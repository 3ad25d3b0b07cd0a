// block_quant.h - GGUF's quantized block types, as the file format defines
// them: a reference dequantizer (the definition the kernels are tested
// against) and a quantizer (paca quantize, tests). All multi-byte fields are
// little-endian; "f16" is IEEE binary16. Rows are cut into blocks of 32
// elements (legacy types) or super-blocks of 256 (K types), element e of a
// row in block e / block_elems.
//
//   Q4_0  18 B: f16 d, u8 qs[16]          x[j] = d * (lo(qs[j]) - 8), x[j+16] = d * (hi(qs[j]) - 8)
//   Q4_1  20 B: f16 d, f16 m, u8 qs[16]   x[j] = d * lo(qs[j]) + m,   x[j+16] = d * hi(qs[j]) + m
//   Q5_0  22 B: f16 d, u8 qh[4], qs[16]   as Q4_0 with bit j of the u32 qh as bit 4 of element j,
//                                         minus 16 instead of 8
//   Q5_1  24 B: f16 d, f16 m, qh[4], qs[16]  as Q4_1 with the fifth bit from qh
//   Q4_K 144 B: f16 d, f16 dmin, u8 scales[12], u8 qs[128]
//               8 sub-blocks of 32 with 6-bit scale sc[s] and min m[s] packed in scales
//               (s < 4: sc = scales[s] & 63, m = scales[s+4] & 63; s >= 4: sc = lo(scales[s+4]) |
//               (scales[s-4] >> 6) << 4, m = hi(scales[s+4]) | (scales[s] >> 6) << 4);
//               chunk c of 64 elements reads qs[32c .. 32c+31]: element 64c + l is lo(qs[32c+l])
//               in sub-block 2c, element 64c + 32 + l is hi(qs[32c+l]) in sub-block 2c+1;
//               x = d * sc[s] * q - dmin * m[s]
//   Q5_K 176 B: f16 d, f16 dmin, scales[12], u8 qh[32], qs[128]: as Q4_K with bit 4 of element
//               64c + l from bit 2c of qh[l] and of element 64c + 32 + l from bit 2c+1
//   Q6_K 210 B: u8 ql[128], u8 qh[64], i8 scales[16], f16 d; element e has the int8 scale
//               scales[e / 16]; half h (elements 128h ..) reads ql + 64h, qh + 32h: for l < 32
//               element 128h + l      = lo(ql[l])    | ((qh[l] >> 0) & 3) << 4,
//               element 128h + 32 + l = lo(ql[l+32]) | ((qh[l] >> 2) & 3) << 4,
//               element 128h + 64 + l = hi(ql[l])    | ((qh[l] >> 4) & 3) << 4,
//               element 128h + 96 + l = hi(ql[l+32]) | ((qh[l] >> 6) & 3) << 4;
//               x = d * scale * (q - 32)
// (lo/hi: the low and high nibble.) Q8_0 (f16 d, i8 q[32], x = d * q) is also handled here.
#pragma once

#include <cstddef>
#include <cstdint>

#include "format/tensor.h"

namespace paca {

// dst[0..n) = the values of the row src of type t (q8_0 or a block type;
// n a multiple of the block). Any bytes are a valid row: a NaN or infinite
// f16 scale gives NaN/inf values, never a fault.
void dequantize_blocks(DType t, const uint8_t* src, float* dst, size_t n);

// Writes row_bytes(t, n) bytes to dst: src quantized to type t (q8_0 or a
// block type), scales chosen per block to minimise the squared error over a
// few candidates (round to nearest). Non-finite inputs are treated as 0; the
// f16 scales and mins saturate at +-65504, so the row always decodes to
// finite values (clipped where |x| passes what the f16 fields can express;
// quantize_checkpoint refuses such weights rather than clip them).
void quantize_blocks(DType t, const float* src, uint8_t* dst, size_t n);

// The raw codes of one block of type t (q4_*/q5_*/q4_k/q5_k/q6_k): q[e] for
// each element e of the block, before any offset (0..15, 0..31 or 0..63).
void block_codes(DType t, const uint8_t* block, int* q);

// The 6-bit scale and min of sub-block s (0..7) of a Q4_K/Q5_K super-block,
// from its 12 packed scale bytes.
void k_scale_min(const uint8_t* scales12, int s, int& sc, int& m);

// The ggml type id of a dtype (GGUF tensor type), and back (false when t is
// not one paca holds).
uint32_t ggml_type_of(DType t);
bool dtype_of_ggml(uint32_t ggml_type, DType& out);

}  // namespace paca
