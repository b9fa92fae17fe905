// Own CUDA kernels (compiled by nvcc when DIFFBENCH_CUDA_KERNELS is on).
#pragma once

#include <ATen/ATen.h>

namespace diffbench::kernels {

// GroupNorm over a channels-last [N, C, H, W] half/bfloat16 tensor with per-channel affine
// weight/bias, statistics in float; SiLU applied when `silu`. Returns a channels-last tensor.
// `shift` ([N, C] or [1, C], any float type; optional) and `channel_shift` ([C]; optional) are added to
// x first, in float.
at::Tensor group_norm_nhwc(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t groups,
                           double eps, bool silu, const at::Tensor& shift = {}, const at::Tensor& channel_shift = {});

// (x + bias[c] + residual) * scale for channels-last [N, C, H, W] half/bfloat16 x and residual, in
// one pass (a convolution's bias and a skip connection); LibTorch ops where the layout does not fit.
at::Tensor bias_residual_nhwc(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& residual, double scale);

}  // namespace diffbench::kernels
