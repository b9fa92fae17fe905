// Per-pixel absolute differences of two images as heat maps, on one colour scale for a whole report.
#pragma once

#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

// |Δ| per pixel of two uint8 [3,H,W] images of one size: the mean over R, G and B of the absolute
// difference, in 0..255, as float [H,W].
at::Tensor abs_diff_map(const at::Tensor& a_u8, const at::Tensor& b_u8);
// The same from their channel_abs_diff_sum (int16 [H,W], metrics/psnr.hpp).
at::Tensor abs_diff_map_from_sum(const at::Tensor& channel_sum);

// The colour scale's stops (CSS hex colours, dark = no difference, bright = `scale_max`).
const std::vector<std::string>& heat_colours();

// A difference map coloured on the scale 0..scale_max (values above it take the last colour):
// uint8 [H,W,3].
at::Tensor heat_image(const at::Tensor& diff_map, double scale_max);

}  // namespace diffbench
