// quantize.cpp - see quantize.h.
#include "model/quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <thread>
#include <vector>

#include "backend/cpu/kernels.h"
#include "util/error.h"
#include "util/fp8.h"

namespace paca {

void quantize_fp8(Checkpoint& ck, const Fp8Options& opt) {
  const int L = ck.config.n_layers;
  for (int l = 0; l < L; ++l) {
    if (opt.keep_first_last && (l == 0 || l == L - 1)) continue;
    // (push_back, not insert of a list: GCC 12 warns falsely about the latter here)
    std::vector<const char*> names;
    if (opt.attention)
      for (const char* n : {"wq", "wk", "wv", "wo"}) names.push_back(n);
    if (opt.mlp)
      for (const char* n : {"w1", "w2", "w3"}) names.push_back(n);
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
      // rows are independent: split over threads (the same bits as one
      // thread); the first row holding a non-finite weight is reported
      std::atomic<int64_t> bad{t.rows};
      auto rows_of = [&](int64_t r0, int64_t r1) {
        std::vector<float> row(cols);
        for (int64_t r = r0; r < r1; ++r) {
          cpu::dequant_row(t.dtype, t.row(r), row.data(), cols);
          float mx = 0;
          bool nan = false;  // std::max drops NaN: look for it apart
          for (float v : row) {
            const float a = std::fabs(v);
            mx = std::max(mx, a);
            nan = nan || a != a;
          }
          if (nan || !std::isfinite(mx)) {
            int64_t cur = bad.load();
            while (r < cur && !bad.compare_exchange_weak(cur, r)) {
            }
            return;
          }
          float s = mx / kE4M3Max;
          scales[r] = s;
          uint8_t* out = codes.data() + static_cast<size_t>(r) * cols;
          for (size_t c = 0; c < cols; ++c) out[c] = s > 0 ? f32_to_e4m3(row[c] / s) : 0;
        }
      };
      const int64_t n_threads = std::clamp<int64_t>(
          static_cast<int64_t>(t.rows * static_cast<int64_t>(cols) / (int64_t{1} << 20)), 1,
          std::max<int64_t>(1, static_cast<int64_t>(std::thread::hardware_concurrency())));
      std::vector<std::thread> pool;
      const int64_t per = (t.rows + n_threads - 1) / n_threads;
      for (int64_t r0 = per; r0 < t.rows; r0 += per) pool.emplace_back(rows_of, r0, std::min(t.rows, r0 + per));
      rows_of(0, std::min(t.rows, per));
      for (std::thread& th : pool) th.join();
      check(bad.load() == t.rows, Status::format, "{} row {} holds a non-finite weight", t.name, bad.load());
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
