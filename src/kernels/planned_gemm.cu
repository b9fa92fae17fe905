// The UNet's GEMMs by cuBLASLt algorithms chosen ahead of time (issue 21, round 14; docs/performance.md has
// the measurements): LibTorch takes cuBLAS's or cuBLASLt's heuristic first pick, often not the fastest of the
// algorithms cuBLASLt offers for SD's shapes. The choice is a committed table, not a timing at run time, so
// that images do not depend on which algorithm won a race in this process.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cublasLt.h>

#include <cstring>

#include "planned_gemm.hpp"

namespace diffbench::kernels {

namespace {

const GemmPlan kPlans[] = {
#include "gemm_plans.inc"
};

// Owns one cuBLASLt descriptor (matmul, layout) and destroys it.
template <typename T, cublasStatus_t (*Destroy)(T)>
struct Owned {
  T value = nullptr;
  Owned() = default;
  Owned(const Owned&) = delete;
  Owned& operator=(const Owned&) = delete;
  ~Owned() {
    if (value) Destroy(value);
  }
};

bool aligned(const void* p) { return reinterpret_cast<uintptr_t>(p) % 256 == 0; }

// Whether the row was written on this GPU model with the cuBLASLt loaded now.
bool for_here(const GemmPlan& p, const cudaDeviceProp& props) {
  return p.cublaslt == cublasLtGetVersion() && std::strcmp(p.device, props.name) == 0;
}

}  // namespace

const GemmPlan* find_gemm_plan(const at::Tensor& x, int64_t m, int64_t n, int64_t k, GemmEpilogue epilogue) {
  for (const GemmPlan& p : kPlans)
    if (p.m == m && p.n == n && p.k == k && p.epilogue == epilogue &&
        for_here(p, *at::cuda::getDeviceProperties(x.get_device())))
      return &p;
  return nullptr;
}

int gemm_plan_rows(int device_index) {
  if (device_index < 0) device_index = c10::cuda::current_device();
  const cudaDeviceProp& props = *at::cuda::getDeviceProperties(device_index);
  int rows = 0;
  for (const GemmPlan& p : kPlans) rows += for_here(p, props);
  return rows;
}

bool run_gemm_plan(const GemmPlan& plan, const at::Tensor& x2d, const at::Tensor& w, const at::Tensor& bias,
                   at::Tensor& out2d) {
  const bool with_bias = plan.epilogue == GemmEpilogue::kBias;
  if (!aligned(x2d.data_ptr()) || !aligned(w.data_ptr()) || !aligned(out2d.data_ptr()) ||
      (with_bias && !aligned(bias.data_ptr())))
    return false;
  const c10::cuda::CUDAGuard guard(x2d.device());
  const std::size_t workspace_size = at::cuda::getCUDABlasLtWorkspaceSize();
  if (plan.workspace > workspace_size) return false;
  cublasLtHandle_t handle = at::cuda::getCurrentCUDABlasLtHandle();
  // Column-major, as cuBLAS sees row-major tensors: out2dᵀ [N, M] = op(W)[N, K] · x2dᵀ [K, M], op = transpose
  // of W stored [N][K].
  Owned<cublasLtMatmulDesc_t, cublasLtMatmulDescDestroy> op;
  Owned<cublasLtMatrixLayout_t, cublasLtMatrixLayoutDestroy> la, lb, lc;
  if (cublasLtMatmulDescCreate(&op.value, CUBLAS_COMPUTE_32F, CUDA_R_32F) != CUBLAS_STATUS_SUCCESS) return false;
  const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
  cublasLtMatmulDescSetAttribute(op.value, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta);
  cublasLtMatmulDescSetAttribute(op.value, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb);
  if (with_bias) {
    const cublasLtEpilogue_t epilogue = CUBLASLT_EPILOGUE_BIAS;
    const void* b = bias.data_ptr();
    cublasLtMatmulDescSetAttribute(op.value, CUBLASLT_MATMUL_DESC_EPILOGUE, &epilogue, sizeof epilogue);
    cublasLtMatmulDescSetAttribute(op.value, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b);
  }
  if (cublasLtMatrixLayoutCreate(&la.value, CUDA_R_16F, plan.k, plan.n, plan.k) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&lb.value, CUDA_R_16F, plan.k, plan.m, plan.k) != CUBLAS_STATUS_SUCCESS ||
      cublasLtMatrixLayoutCreate(&lc.value, CUDA_R_16F, plan.n, plan.m, plan.n) != CUBLAS_STATUS_SUCCESS)
    return false;
  cublasLtMatmulAlgo_t algo;
  if (cublasLtMatmulAlgoInit(handle, CUBLAS_COMPUTE_32F, CUDA_R_32F, CUDA_R_16F, CUDA_R_16F, CUDA_R_16F, CUDA_R_16F,
                             plan.algo, &algo) != CUBLAS_STATUS_SUCCESS)
    return false;
  const auto set = [&](cublasLtMatmulAlgoConfigAttributes_t attribute, const auto& value) {
    return cublasLtMatmulAlgoConfigSetAttribute(&algo, attribute, &value, sizeof value) == CUBLAS_STATUS_SUCCESS;
  };
  if (!set(CUBLASLT_ALGO_CONFIG_TILE_ID, plan.tile) || !set(CUBLASLT_ALGO_CONFIG_SPLITK_NUM, plan.splitk) ||
      !set(CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, plan.reduction) ||
      !set(CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, plan.swizzle) || !set(CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, plan.custom) ||
      !set(CUBLASLT_ALGO_CONFIG_STAGES_ID, plan.stages) || !set(CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, plan.inner) ||
      !set(CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, plan.cluster))
    return false;
  const float alpha = 1.f, beta = plan.epilogue == GemmEpilogue::kAccumulate ? 1.f : 0.f;
  void* out = out2d.data_ptr();
  return cublasLtMatmul(handle, op.value, &alpha, w.data_ptr(), la.value, x2d.data_ptr(), lb.value, &beta, out,
                        lc.value, out, lc.value, &algo, at::cuda::getCUDABlasLtWorkspace(), workspace_size,
                        at::cuda::getCurrentCUDAStream()) == CUBLAS_STATUS_SUCCESS;
}

}  // namespace diffbench::kernels
