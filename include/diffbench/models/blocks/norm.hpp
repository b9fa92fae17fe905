// GroupNorm, optionally followed by SiLU, with a fused CUDA kernel for channels-last half/bfloat16
// activations (built with nvcc when DIFFBENCH_CUDA_KERNELS is on) and LibTorch's ops otherwise.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/modules/normalization.h>

namespace diffbench {

// silu(norm(x)) when `silu`, else norm(x); numerically the same as the LibTorch ops. With `shift`
// ([N, C] or [1, C]): the same of x + shift (broadcast over H, W), added in float by the kernel.
at::Tensor group_norm_act(const at::Tensor& x, torch::nn::GroupNorm& norm, bool silu, const at::Tensor& shift = {});

// (x + bias[c] + residual) * scale: one pass with the kernel, LibTorch's ops otherwise.
at::Tensor bias_residual(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& residual, double scale = 1.0);

// True where the fused kernels take x (CUDA, half/bfloat16, channels-last 4-D, built with them):
// modules then fold convolution biases into the following norm or skip connection.
bool fused_nhwc(const at::Tensor& x);

// True when this build has the fused kernel.
bool have_fused_group_norm();

}  // namespace diffbench
