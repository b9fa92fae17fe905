// Structural similarity (SSIM) between two images, as torchmetrics computes it.
#pragma once

#include <ATen/ATen.h>

namespace diffbench {

struct SsimOptions {
  double sigma = 1.5;  // Gaussian window; its size is int(3.5·sigma + 0.5)·2 + 1 (11 for 1.5)
  double k1 = 0.01;
  double k2 = 0.03;
};

// Mean SSIM of two images [C,H,W] (same shape), computed in float64 on the device `a` is on (b is
// moved there); CPU and CUDA agree to about 1e-15.
// torchmetrics.functional.image.structural_similarity_index_measure with a Gaussian kernel, given
// data range (255 for uint8 images, 1 for floating-point ones) and these options:
//  - both images reflect-padded by r = (window - 1) / 2 on each side (PyTorch's "reflect": the edge
//    pixel is not repeated), so each side must be longer than r (6 pixels for sigma 1.5);
//  - mu_x, mu_y, E[x²], E[y²], E[xy] per channel with the normalised Gaussian window (valid
//    convolution of the padded image, so one value per pixel);
//  - var = max(E[x²] - mu², 0), cov = E[xy] - mu_x·mu_y, C1 = (k1·range)², C2 = (k2·range)²;
//  - SSIM map = (2·mu_x·mu_y + C1)(2·cov + C2) / ((mu_x² + mu_y² + C1)(var_x + var_y + C2));
//  - the mean of the map over every channel and pixel, the border included (torchmetrics 1.x no
//    longer crops the padded border off).
// Throws UsageError for shapes that differ, are not [C,H,W] or are too small.
double ssim(const at::Tensor& a, const at::Tensor& b, const SsimOptions& options = {});

}  // namespace diffbench
