#pragma once

#include <ATen/ATen.h>

namespace diffbench::kernels {

// y: [..., 2D] (half or bfloat16, contiguous, on CUDA) -> y[..., :D] * gelu(y[..., D:]).
at::Tensor geglu(const at::Tensor& y);

}  // namespace diffbench::kernels
