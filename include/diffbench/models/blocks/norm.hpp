// GroupNorm, optionally followed by SiLU, with a fused CUDA kernel for channels-last half/bfloat16
// activations (built with nvcc when DIFFBENCH_CUDA_KERNELS is on) and LibTorch's ops otherwise.
#pragma once

#include <ATen/ATen.h>
#include <torch/nn/modules/normalization.h>

namespace diffbench {

// silu(norm(x)) when `silu`, else norm(x); numerically the same as the LibTorch ops.
at::Tensor group_norm_act(const at::Tensor& x, torch::nn::GroupNorm& norm, bool silu);

// True when this build has the fused kernel.
bool have_fused_group_norm();

}  // namespace diffbench
