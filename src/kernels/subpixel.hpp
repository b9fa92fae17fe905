// The sub-pixel upsampler's interleaving pass (models/blocks/sampling.cpp) as one kernel.
#pragma once

#include <ATen/ATen.h>

namespace diffbench::kernels {

// Whether subpixel_interleave takes y: the four parities' convolution output [N, 4C, H+1, W+1],
// channels-last, half, bfloat16 or float on CUDA, C a whole number of 16-byte vectors, 16-byte aligned,
// and the bias (optional) [C] of its dtype and device.
bool subpixel_interleave_supported(const at::Tensor& y, const at::Tensor& bias);

// out[n, c, 2i + a, 2j + b] = y[n, (2a + b)·C + c, i + a, j + b] + bias[c] ([N, C, 2H, 2W], channels-last):
// each output pixel's C channels one contiguous run of y's, copied 16 bytes at a time, the bias added in
// float and rounded to the dtype as LibTorch's add rounds it.
at::Tensor subpixel_interleave(const at::Tensor& y, const at::Tensor& bias);

}  // namespace diffbench::kernels
