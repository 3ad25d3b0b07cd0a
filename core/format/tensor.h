// tensor.h - weight dtypes and a read-only view of a weight tensor as it lies
// in a mapped file (or in memory owned elsewhere).
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

namespace paca {

enum class DType : int {
  f32 = 0,
  f16 = 1,
  bf16 = 2,
  q8_0 = 3,  // GGUF Q8_0: blocks of 32 along a row: f16 scale + 32 x int8
  f8e4m3 = 4,  // FP8 E4M3 codes with one f32 scale per row (TensorView::scales)
  // GGUF's quantized block types (layouts in format/block_quant.h), kept as
  // blocks in memory and multiplied against 8-bit quantized activations
  q4_0 = 5,
  q4_1 = 6,
  q5_0 = 7,
  q5_1 = 8,
  q4_k = 9,
  q5_k = 10,
  q6_k = 11,
};

// One of the block types above other than q8_0 (whose kernels read f32
// activations).
constexpr bool is_block_quant(DType t) { return static_cast<int>(t) >= static_cast<int>(DType::q4_0); }

// Elements and bytes of one block along a row (1 and the element size for
// the plain types).
struct BlockShape {
  size_t elems;
  size_t bytes;
};
constexpr BlockShape block_shape(DType t) {
  switch (t) {
    case DType::f32: return {1, 4};
    case DType::f16:
    case DType::bf16: return {1, 2};
    case DType::q8_0: return {32, 34};
    case DType::f8e4m3: return {1, 1};
    case DType::q4_0: return {32, 18};
    case DType::q4_1: return {32, 20};
    case DType::q5_0: return {32, 22};
    case DType::q5_1: return {32, 24};
    case DType::q4_k: return {256, 144};
    case DType::q5_k: return {256, 176};
    case DType::q6_k: return {256, 210};
  }
  return {1, 0};
}

// How the activations entering an FP8 matmul are treated.
enum class ActQuant : int {
  none = 0,         // weight-only (w8a16): FP8 weights widened against f32 activations
  dynamic_row = 1,  // w8a8: each token row scaled by min(max|x|, act_ub) / 448, rounded to E4M3
  static_tensor = 2,  // w8a8: x / act_scale rounded to E4M3 (a calibrated input_scale)
};

const char* dtype_name(DType t);

constexpr size_t kQ8Block = 32;
constexpr size_t kQ8BlockBytes = 34;

// Bytes of one row of `cols` elements (cols must be a multiple of the block).
inline size_t row_bytes(DType t, size_t cols) {
  const BlockShape b = block_shape(t);
  return cols / b.elems * b.bytes;
}

// A 1-D or 2-D weight, row-major [rows, cols]; 1-D tensors have rows == 1.
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;
  // FP8 only: dequantized W[r, c] = e4m3(data[r, c]) * scales[r]
  const float* scales = nullptr;
  ActQuant act = ActQuant::none;
  float act_ub = 0;     // dynamic_row: upper bound of the row max (inf when none)
  float act_scale = 0;  // static_tensor: the input scale

  size_t bytes() const { return static_cast<size_t>(rows) * row_bytes(dtype, static_cast<size_t>(cols)); }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(dtype, static_cast<size_t>(cols)); }
};

}  // namespace paca
