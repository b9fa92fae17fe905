#pragma once

#include <ATen/ATen.h>

#include <cstddef>
#include <cstdint>

namespace diffbench::kernels {

// What a planned GEMM adds: nothing, a bias [N] in the epilogue, or the product onto the output itself.
enum class GemmEpilogue : int { kNone, kBias, kAccumulate };

// One row of the table of planned GEMMs (gemm_plans.inc): for a GPU model and the exact cuBLASLt version,
// the configuration of the cuBLASLt algorithm that ran fastest for out[M, N] = x[M, K]·W[N, K]ᵀ in half
// precision (float accumulation), chosen ahead of time by tools/gpu-gemm-lt.sh, never by timing at run time:
// every process on the same GPU model and library runs the same kernel and gets the same bits.
struct GemmPlan {
  const char* device;    // cudaDeviceProp::name
  std::size_t cublaslt;  // cublasLtGetVersion()
  int64_t m, n, k;
  GemmEpilogue epilogue;
  int32_t algo;  // CUBLASLT_ALGO_CONFIG_ID ...
  uint32_t tile;
  int32_t splitk;
  uint32_t reduction, swizzle, custom, stages;
  uint16_t inner, cluster;
  std::size_t workspace;  // bytes it needs
};

// The table's row for this shape on x's device with the cuBLASLt LibTorch loaded, or nullptr.
const GemmPlan* find_gemm_plan(const at::Tensor& x, int64_t m, int64_t n, int64_t k, GemmEpilogue epilogue);

// How many of the table's rows are for this CUDA device's GPU model (-1: the current device) and the loaded
// cuBLASLt.
int gemm_plan_rows(int device_index);

// out2d = x2d·wᵀ (+ bias | + out2d) by the plan on the current stream: x2d [M, K], w [N, K], out2d [M, N]
// contiguous half CUDA tensors, bias [N] (kBias). False, with nothing written, where cuBLASLt refuses it
// (a pointer's alignment, too little of LibTorch's workspace): the caller then runs LibTorch's GEMM.
bool run_gemm_plan(const GemmPlan& plan, const at::Tensor& x2d, const at::Tensor& w, const at::Tensor& bias,
                   at::Tensor& out2d);

}  // namespace diffbench::kernels
