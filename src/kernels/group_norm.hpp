// Own CUDA kernels (compiled by nvcc when DIFFBENCH_CUDA_KERNELS is on).
#pragma once

#include <ATen/ATen.h>

namespace diffbench::kernels {

// GroupNorm over a channels-last [N, C, H, W] half/bfloat16 tensor with per-channel affine
// weight/bias, statistics in float; SiLU applied when `silu`. Returns a channels-last tensor.
at::Tensor group_norm_nhwc(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t groups,
                           double eps, bool silu);

}  // namespace diffbench::kernels
