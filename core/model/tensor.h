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
};

const char* dtype_name(DType t);

constexpr size_t kQ8Block = 32;
constexpr size_t kQ8BlockBytes = 34;

// Bytes of one row of `cols` elements (cols must be a multiple of 32 for q8_0).
inline size_t row_bytes(DType t, size_t cols) {
  switch (t) {
    case DType::f32: return cols * 4;
    case DType::f16:
    case DType::bf16: return cols * 2;
    case DType::q8_0: return cols / kQ8Block * kQ8BlockBytes;
  }
  return 0;
}

// A 1-D or 2-D weight, row-major [rows, cols]; 1-D tensors have rows == 1.
struct TensorView {
  std::string name;
  DType dtype = DType::f32;
  int64_t rows = 0;
  int64_t cols = 0;
  const uint8_t* data = nullptr;

  size_t bytes() const { return static_cast<size_t>(rows) * row_bytes(dtype, static_cast<size_t>(cols)); }
  const uint8_t* row(int64_t r) const { return data + static_cast<size_t>(r) * row_bytes(dtype, static_cast<size_t>(cols)); }
};

}  // namespace paca
