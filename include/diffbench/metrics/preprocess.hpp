// Image preprocessing for CLIP scoring, pixel-exact with the Python references: Pillow's bicubic
// resize and the CLIP image transforms of transformers (PIL backend) and open_clip.
#pragma once

#include <array>

#include <ATen/ATen.h>

#include "diffbench/models/clip_embedder.hpp"  // kOpenAiClipMean / kOpenAiClipStd

namespace diffbench {

// Pillow's Image.resize((out_w, out_h), Image.BICUBIC) on an RGB uint8 image [3,H,W] (reducing_gap
// None, full-image box); returns uint8 [3,out_h,out_w] with the same bytes Pillow gives.
//
// The algorithm (Pillow's libImaging/Resample.c): separable, one pass per axis. Pillow 13 runs the
// vertical pass first when the height loses more than twice as many pixels as the width
// (H - out_h > 2·(W - out_w), height shrinking), else the horizontal pass first; we do the same.
// Pillow < 13 always ran the horizontal pass first: results then differ by a few levels, and only
// for such tall shrinks (a shortest-side resize of a portrait image with aspect ratio above ~2).
// Per axis, scale = in/out and the filter (bicubic, a = -0.5, support 2) is stretched by
// max(scale, 1) so downscaling antialiases. Output pixel i is centred at (i + 0.5)·scale in input
// coordinates; it uses input pixels [int(center - support + 0.5), int(center + support + 0.5))
// clipped to the image, weighted by filter((j - center + 0.5) / max(scale, 1)) and normalised to sum
// to 1. Weights are then fixed point with 22 fraction bits (rounded half away from zero), sums
// start at 1 << 21 (rounding) and are clipped to 0..255 after each pass, so the intermediate image
// is 8-bit too. An axis whose size does not change is not resampled.
at::Tensor resize_bicubic_pil(const at::Tensor& img_u8, int out_h, int out_w);

// Where a centre crop starts when the extra length d = (side - size) is odd.
enum class CenterCrop {
  Torchvision,   // int(round(d / 2.0)), Python's round (ties to even): torchvision's CenterCrop, open_clip
  Transformers,  // d // 2: transformers' image_transforms.center_crop (CLIPImageProcessor, PIL backend)
};  // the two differ by one pixel when d ≡ 3 (mod 4), e.g. a 640x427 COCO image (d = 111)

// CLIP image preprocessing of one uint8 RGB image [3,H,W] -> float32 [3,size,size]:
//  1. resize so the shorter side is `size`, the longer one int(size · long / short) (truncated),
//     with resize_bicubic_pil; transformers' get_resize_output_image_size(default_to_square=False)
//     and torchvision's Resize (open_clip's 'shortest' mode) compute the same sizes;
//  2. centre crop size×size, offsets per `crop` (see CenterCrop);
//  3. x / 255 in float32, then (x - mean[c]) / std[c] in float32.
at::Tensor clip_preprocess(const at::Tensor& img_u8, int size, std::array<double, 3> mean,
                           std::array<double, 3> std, CenterCrop crop = CenterCrop::Torchvision);


}  // namespace diffbench
