// Peak signal-to-noise ratio between two images, to say how close a fast path's images are to a
// reference path's (docs/performance.md) and, per prompt, how far a candidate's image is from its
// baseline's (eval, score --against).
#pragma once

#include <ATen/ATen.h>

namespace diffbench {

// 10·log10(peak² / MSE) over all elements of a and b (same shape; compared in float64 on a's device). uint8
// images use peak 255, floating-point ones peak 1. Identical images give +infinity. Throws
// UsageError when the shapes differ or the tensors are empty. On uint8 RGB this is torchmetrics'
// peak_signal_noise_ratio(data_range=255) and skimage's peak_signal_noise_ratio.
double psnr(const at::Tensor& a, const at::Tensor& b);

// The cap the reports put on PSNR: JSON has no infinity, and an average over prompts should stay
// finite when some candidate images equal their baseline's.
constexpr double kPsnrCapDb = 100.0;

struct CappedPsnr {
  double db = 0;          // min(psnr, cap)
  bool capped = false;    // the true PSNR was above the cap (db is then the cap)
  bool identical = false; // MSE 0: the true PSNR is +infinity
};

// psnr(a, b) capped at `cap_db`.
CappedPsnr psnr_capped(const at::Tensor& a, const at::Tensor& b, double cap_db = kPsnrCapDb);

// Per pixel, the absolute differences of two uint8 [...,3,H,W] images of one shape summed over R, G
// and B: int16 [...,H,W] in 0..765, on their device (exact on any device; report.html's heat maps).
at::Tensor channel_abs_diff_sum(const at::Tensor& a_u8, const at::Tensor& b_u8);

}  // namespace diffbench
