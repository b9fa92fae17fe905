// GroupNorm, optionally followed by SiLU, with a fused CUDA kernel for channels-last half/bfloat16
// activations (built with nvcc when DIFFBENCH_CUDA_KERNELS is on) and LibTorch's ops otherwise.
#pragma once

#include <utility>

#include <ATen/ATen.h>
#include <torch/nn/modules/normalization.h>

namespace diffbench {

// silu(norm(x)) when `silu`, else norm(x); numerically the same as the LibTorch ops. With `shift`
// ([N, C] or [1, C]) and/or `channel_shift` ([C]): the same of x + shift + channel_shift (broadcast over
// H, W), added in float by the kernel.
at::Tensor group_norm_act(const at::Tensor& x, torch::nn::GroupNorm& norm, bool silu, const at::Tensor& shift = {},
                          const at::Tensor& channel_shift = {});

// (x + bias[c] + residual) * scale: one pass with the kernel, LibTorch's ops otherwise.
at::Tensor bias_residual(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& residual, double scale = 1.0);

// The transformer block's residual add and its next LayerNorm: (y, norm(y)) for y = a + r. One
// kernel reads a and r once and writes both on CUDA without gradients (unless DIFFBENCH_FUSED_ADDLN=0,
// read at every call, for A/B timing); elsewhere LibTorch's `a + r` and `norm(y)`, the same ops as
// unfused. With `extra` ([C]): y + extra is returned in place of y (n is still norm(y)), for a GEMM
// that accumulates onto it in place of adding its own bias. With `a_bias` ([C]): y = (a + a_bias) + r, for
// an attention whose output projection left its bias out.
std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& a, const at::Tensor& r, torch::nn::LayerNorm& norm,
                                                 const at::Tensor& extra = {}, const at::Tensor& a_bias = {});

// norm(x), by add_layer_norm's kernel wherever that runs (and DIFFBENCH_FAST_LAYER_NORM is not 0): the
// transformer blocks' first LayerNorm, which follows no add of its own.
at::Tensor layer_norm(torch::nn::LayerNorm& norm, const at::Tensor& x);

// True where add_layer_norm runs its kernel on tensors like x (CUDA, half/bfloat16/float, built with
// the kernels, no gradient needed, not switched off). The other residual paths of the same round
// follow it: the feed-forward's GEMM accumulating onto the residual, the ResNet's 1×1 shortcut as a
// GEMM with its bias in the epilogue (DIFFBENCH_FUSED_ADDLN=0 turns them all off).
bool fused_add_layer_norm(const at::Tensor& x);

// True where the fused kernels take x (CUDA, half/bfloat16, channels-last 4-D, built with them):
// modules then fold convolution biases into the following norm or skip connection.
bool fused_nhwc(const at::Tensor& x);

// True when this build has the fused kernel.
bool have_fused_group_norm();

}  // namespace diffbench
