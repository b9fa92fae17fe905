#pragma once

#include <ATen/ATen.h>

#include <utility>

namespace diffbench::kernels {

// The transformer block's residual add and the next sublayer's LayerNorm over the last dimension
// C, in one pass over contiguous [..., C] CUDA tensors a and r (half, bfloat16 or float, same dtype
// and shape): y = a + r, rounded to the dtype as LibTorch's add rounds it, and
// n = (y - mean) / sqrt(var + eps) * weight + bias, statistics in float over the rounded y.
// Returns (y, n). With `extra` ([C]; optional): y + extra is written instead of y (n is still the
// norm of y): a following GEMM that accumulates onto it then needs no bias of its own.
// With `a_bias` ([C]; optional): a is first a + a_bias, rounded to the dtype (the bias a's GEMM left out),
// so y = (a + a_bias) + r as LibTorch's two adds give it.
// Inputs it does not take (other layouts or dtypes, C % 8 != 0 or C > 2048) go through LibTorch.
std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& a, const at::Tensor& r, const at::Tensor& weight,
                                                 const at::Tensor& bias, double eps, const at::Tensor& extra = {},
                                                 const at::Tensor& a_bias = {});

// The same kernel's LayerNorm of x alone ([..., C], the same conditions; LibTorch's otherwise): one
// read and one write, where LibTorch's own kernel reaches about half the bandwidth at SD's shapes.
at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps);

}  // namespace diffbench::kernels
