// quantize.cpp - see quantize.h.
#include "model/quantize.h"

#include <cmath>

#include "backend/cpu/kernels.h"
#include "util/error.h"
#include "util/fp8.h"

namespace paca {

void quantize_fp8(Checkpoint& ck, const Fp8Options& opt) {
  const int L = ck.config.n_layers;
  std::vector<float> row;
  for (int l = 0; l < L; ++l) {
    if (opt.keep_first_last && (l == 0 || l == L - 1)) continue;
    std::vector<const char*> names;
    if (opt.attention) names.insert(names.end(), {"wq", "wk", "wv", "wo"});
    if (opt.mlp) names.insert(names.end(), {"w1", "w2", "w3"});
    for (const char* n : names) {
      auto it = ck.tensors.find(layer_tensor(l, n));
      if (it == ck.tensors.end()) continue;
      TensorView& t = it->second;
      if (t.dtype == DType::f8e4m3) continue;
      check(t.dtype == DType::f32 || t.dtype == DType::f16 || t.dtype == DType::bf16, Status::unsupported,
            "cannot quantize {} from {} to FP8", t.name, dtype_name(t.dtype));
      const size_t cols = static_cast<size_t>(t.cols);
      std::vector<uint8_t>& codes = ck.owned_u8.emplace_back(static_cast<size_t>(t.rows) * cols);
      std::vector<float>& scales = ck.owned_f32.emplace_back(static_cast<size_t>(t.rows));
      row.resize(cols);
      for (int64_t r = 0; r < t.rows; ++r) {
        cpu::dequant_row(t.dtype, t.row(r), row.data(), cols);
        float mx = 0;
        for (float v : row) mx = std::max(mx, std::fabs(v));
        check(std::isfinite(mx), Status::format, "{} row {} holds a non-finite weight", t.name, r);
        float s = mx / kE4M3Max;
        scales[r] = s;
        uint8_t* out = codes.data() + static_cast<size_t>(r) * cols;
        for (size_t c = 0; c < cols; ++c) out[c] = s > 0 ? f32_to_e4m3(row[c] / s) : 0;
      }
      t.dtype = DType::f8e4m3;
      t.data = codes.data();
      t.scales = scales.data();
      t.act = opt.act;
      t.act_ub = opt.act_ub;
      t.act_scale = 0;
    }
  }
}

void set_fp8_activations(Checkpoint& ck, ActQuant act) {
  for (auto& [name, t] : ck.tensors) {
    if (t.dtype != DType::f8e4m3) continue;
    check(act != ActQuant::static_tensor || t.act_scale > 0, Status::invalid_argument,
          "{} has no static input scale", t.name);
    t.act = act;
    if (act == ActQuant::dynamic_row && !(t.act_ub > 0)) t.act_ub = INFINITY;
  }
}

int count_fp8(const Checkpoint& ck) {
  int n = 0;
  for (const auto& [name, t] : ck.tensors) n += t.dtype == DType::f8e4m3;
  return n;
}

}  // namespace paca
