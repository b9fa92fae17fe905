// Peak signal-to-noise ratio between two images, to say how close a fast path's images are to a
// reference path's (docs/performance.md).
#pragma once

#include <ATen/ATen.h>

namespace diffbench {

// 10·log10(peak² / MSE) over all elements of a and b (same shape; compared in float64). uint8
// images use peak 255, floating-point ones peak 1. Identical images give +infinity. Throws
// UsageError when the shapes differ or the tensors are empty.
double psnr(const at::Tensor& a, const at::Tensor& b);

}  // namespace diffbench
