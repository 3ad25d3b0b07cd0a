// cublaslt.cpp - see cublaslt.h. cublasLt.h supplies the types and the
// function signatures only; every entry point is looked up with dlsym.
#include "cublaslt.h"

#include <cublasLt.h>  // cublasLt* types and prototypes (no link dependency)
#include <dlfcn.h>     // dlopen, dlsym

#include <cstdint>      // uintptr_t

#include <mutex>        // std::call_once
#include <type_traits>  // std::remove_reference_t
#include <utility>  // std::move

namespace paca::cuda {

struct LtApi {
  decltype(&cublasLtCreate) create = nullptr;
  decltype(&cublasLtDestroy) destroy = nullptr;
  decltype(&cublasLtMatmulDescCreate) desc_create = nullptr;
  decltype(&cublasLtMatmulDescDestroy) desc_destroy = nullptr;
  decltype(&cublasLtMatmulDescSetAttribute) desc_set = nullptr;
  decltype(&cublasLtMatrixLayoutCreate) layout_create = nullptr;
  decltype(&cublasLtMatrixLayoutDestroy) layout_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceCreate) pref_create = nullptr;
  decltype(&cublasLtMatmulPreferenceDestroy) pref_destroy = nullptr;
  decltype(&cublasLtMatmulPreferenceSetAttribute) pref_set = nullptr;
  decltype(&cublasLtMatmulAlgoGetHeuristic) heuristic = nullptr;
  decltype(&cublasLtMatmul) matmul = nullptr;
};

namespace {

// The library is opened once per process and never closed.
const LtApi* load_api(std::string* why) {
  static LtApi api;
  static std::string error;
  static bool ok = false;
  static std::once_flag once;
  std::call_once(once, [] {
    void* lib = nullptr;
    for (const char* name : {"libcublasLt.so.13", "libcublasLt.so"}) {
      lib = dlopen(name, RTLD_NOW | RTLD_LOCAL);
      if (lib != nullptr) break;
    }
    if (lib == nullptr) {
      const char* e = dlerror();
      error = std::string("cannot open libcublasLt.so.13: ") + (e != nullptr ? e : "unknown error");
      return;
    }
    bool all = true;
    auto get = [&](auto& fn, const char* sym) {
      fn = reinterpret_cast<std::remove_reference_t<decltype(fn)>>(dlsym(lib, sym));
      if (fn == nullptr) {
        if (all) error = std::string("libcublasLt lacks ") + sym;
        all = false;
      }
    };
    get(api.create, "cublasLtCreate");
    get(api.destroy, "cublasLtDestroy");
    get(api.desc_create, "cublasLtMatmulDescCreate");
    get(api.desc_destroy, "cublasLtMatmulDescDestroy");
    get(api.desc_set, "cublasLtMatmulDescSetAttribute");
    get(api.layout_create, "cublasLtMatrixLayoutCreate");
    get(api.layout_destroy, "cublasLtMatrixLayoutDestroy");
    get(api.pref_create, "cublasLtMatmulPreferenceCreate");
    get(api.pref_destroy, "cublasLtMatmulPreferenceDestroy");
    get(api.pref_set, "cublasLtMatmulPreferenceSetAttribute");
    get(api.heuristic, "cublasLtMatmulAlgoGetHeuristic");
    get(api.matmul, "cublasLtMatmul");
    ok = all;
  });
  if (!ok && why != nullptr) *why = error;
  return ok ? &api : nullptr;
}

std::string status_text(const char* what, cublasStatus_t s) {
  return std::string("cuBLASLt ") + what + " failed with status " + std::to_string(static_cast<int>(s));
}

}  // namespace

// One (rows, cols, tokens, ldy) problem: descriptors and the chosen algorithm.
//   In cuBLASLt's column-major terms: D (rows x tokens, ld ldy) =
//   op(A)^T B with A = W seen as (cols x rows, ld cols) transposed, B = x seen
//   as (cols x tokens, ld cols): the "TN" layout every GPU generation favours.
struct LtGemm::Plan {
  const LtApi* api = nullptr;
  cublasLtMatmulDesc_t desc = nullptr;
  cublasLtMatrixLayout_t a = nullptr, b = nullptr, d = nullptr;
  cublasLtMatmulAlgo_t algo{};
  ~Plan() {
    if (d != nullptr) api->layout_destroy(d);
    if (b != nullptr) api->layout_destroy(b);
    if (a != nullptr) api->layout_destroy(a);
    if (desc != nullptr) api->desc_destroy(desc);
  }
};

LtGemm::LtGemm() {
  api_ = load_api(&why_);
  if (api_ == nullptr) return;
  cublasLtHandle_t h = nullptr;
  const cublasStatus_t s = api_->create(&h);
  if (s != CUBLAS_STATUS_SUCCESS) {
    why_ = status_text("cublasLtCreate", s);
    return;
  }
  handle_ = h;
}

LtGemm::~LtGemm() {
  plans_.clear();
  if (handle_ != nullptr) api_->destroy(static_cast<cublasLtHandle_t>(handle_));
}

LtGemm::Plan* LtGemm::plan_for(Kind kind, int rows, int cols, int tokens, int ldy, int align_y, size_t workspace_bytes,
                               std::string* err) {
  const char* what = kind == kBf16 ? "cuBLASLt has no algorithm for this BF16 GEMM"
                     : kind == kF8 ? "cuBLASLt has no algorithm for this FP8 GEMM"
                                   : "cuBLASLt has no FP8 GEMM with outer-vector scales for this shape";
  const auto key = std::make_tuple(static_cast<int>(kind), rows, cols, tokens, ldy, align_y);
  auto it = plans_.find(key);
  if (it != plans_.end()) {
    if (it->second == nullptr) *err = what;
    return it->second.get();
  }
  plans_[key] = nullptr;  // until a plan is found
  auto plan = std::make_unique<Plan>();
  plan->api = api_;
  auto ok = [&](cublasStatus_t s, const char* step) {
    if (s == CUBLAS_STATUS_SUCCESS) return true;
    *err = status_text(step, s);
    return false;
  };
  const cudaDataType_t in = kind == kBf16 ? CUDA_R_16BF : CUDA_R_8F_E4M3;
  const cublasOperation_t trans_a = CUBLAS_OP_T, trans_b = CUBLAS_OP_N;
  if (!ok(api_->desc_create(&plan->desc, CUBLAS_COMPUTE_32F, CUDA_R_32F), "MatmulDescCreate") ||
      !ok(api_->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_TRANSA, &trans_a, sizeof trans_a), "set TRANSA") ||
      !ok(api_->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_TRANSB, &trans_b, sizeof trans_b), "set TRANSB") ||
      !ok(api_->layout_create(&plan->a, in, static_cast<uint64_t>(cols), static_cast<uint64_t>(rows), cols),
          "layout A") ||
      !ok(api_->layout_create(&plan->b, in, static_cast<uint64_t>(cols), static_cast<uint64_t>(tokens), cols),
          "layout B") ||
      !ok(api_->layout_create(&plan->d, CUDA_R_32F, static_cast<uint64_t>(rows), static_cast<uint64_t>(tokens), ldy),
          "layout D"))
    return nullptr;
  if (kind == kF8OuterVec) {
    // one f32 per row of A (W) and per column of B (tokens); the pointers are set per call
    const int32_t mode = CUBLASLT_MATMUL_MATRIX_SCALE_OUTER_VEC_32F;
    if (!ok(api_->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &mode, sizeof mode), "set A_SCALE_MODE") ||
        !ok(api_->desc_set(plan->desc, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mode, sizeof mode), "set B_SCALE_MODE"))
      return nullptr;
  }
  cublasLtMatmulPreference_t pref = nullptr;
  if (!ok(api_->pref_create(&pref), "PreferenceCreate")) return nullptr;
  uint64_t ws = workspace_bytes;
  // A and B come from cudaMalloc (256-byte aligned); y is wherever the
  // activation lies, so the algorithm must not assume more than its alignment.
  const uint32_t align_d = static_cast<uint32_t>(align_y);
  cublasLtMatmulHeuristicResult_t result{};
  int found = 0;
  const bool got =
      ok(api_->pref_set(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws, sizeof ws), "set workspace") &&
      ok(api_->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_C_BYTES, &align_d, sizeof align_d), "set C alignment") &&
      ok(api_->pref_set(pref, CUBLASLT_MATMUL_PREF_MIN_ALIGNMENT_D_BYTES, &align_d, sizeof align_d), "set D alignment") &&
      ok(api_->heuristic(static_cast<cublasLtHandle_t>(handle_), plan->desc, plan->a, plan->b, plan->d, plan->d, pref, 1,
                         &result, &found),
         "AlgoGetHeuristic");
  api_->pref_destroy(pref);
  if (!got) return nullptr;
  if (found < 1) {
    *err = what;
    return nullptr;
  }
  plan->algo = result.algo;
  Plan* p = plan.get();
  plans_[key] = std::move(plan);
  return p;
}

namespace {

int alignment_of(const void* y) {
  int align = 256;
  while (align > 4 && reinterpret_cast<uintptr_t>(y) % static_cast<uintptr_t>(align) != 0) align /= 2;
  return align;
}

}  // namespace

bool LtGemm::matmul(const uint16_t* w, int rows, int cols, const uint16_t* x, int tokens, float* y, int ldy,
                    void* workspace, size_t workspace_bytes, cudaStream_t stream, std::string* err) {
  if (handle_ == nullptr) {
    *err = why_;
    return false;
  }
  Plan* p = plan_for(kBf16, rows, cols, tokens, ldy, alignment_of(y), workspace_bytes, err);
  return p != nullptr && run(p, w, x, y, workspace, workspace_bytes, stream, "cublasLtMatmul", err);
}

bool LtGemm::run(Plan* p, const void* w, const void* x, float* y, void* workspace, size_t workspace_bytes,
                 cudaStream_t stream, const char* what, std::string* err) {
  const float alpha = 1.0f, beta = 0.0f;
  const cublasStatus_t s = api_->matmul(static_cast<cublasLtHandle_t>(handle_), p->desc, &alpha, w, p->a, x, p->b,
                                        &beta, y, p->d, y, p->d, &p->algo, workspace, workspace_bytes, stream);
  if (s != CUBLAS_STATUS_SUCCESS) {
    *err = status_text(what, s);
    return false;
  }
  return true;
}

bool LtGemm::matmul_f8(const uint8_t* w, int rows, int cols, const uint8_t* x, int tokens, float* y, int ldy,
                       const float* w_scale, const float* x_scale, void* workspace, size_t workspace_bytes,
                       cudaStream_t stream, std::string* err) {
  if (handle_ == nullptr) {
    *err = why_;
    return false;
  }
  if (rows % 16 != 0 || cols % 16 != 0 || tokens % 16 != 0) {
    *err = "the FP8 GEMM needs rows, columns and tokens that are multiples of 16";
    return false;
  }
  const bool scaled = w_scale != nullptr && x_scale != nullptr;
  Plan* p = plan_for(scaled ? kF8OuterVec : kF8, rows, cols, tokens, ldy, alignment_of(y), workspace_bytes, err);
  if (p == nullptr) return false;
  if (scaled) {
    const cublasStatus_t sa = api_->desc_set(p->desc, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w_scale, sizeof w_scale);
    const cublasStatus_t sb = api_->desc_set(p->desc, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &x_scale, sizeof x_scale);
    if (sa != CUBLAS_STATUS_SUCCESS || sb != CUBLAS_STATUS_SUCCESS) {
      *err = status_text("set A/B_SCALE_POINTER", sa != CUBLAS_STATUS_SUCCESS ? sa : sb);
      return false;
    }
  }
  return run(p, w, x, y, workspace, workspace_bytes, stream, "cublasLtMatmul (FP8)", err);
}

}  // namespace paca::cuda
