#include "diffbench/models/blocks/sampling.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include <torch/nn/functional/upsampling.h>

namespace diffbench {

namespace nn = torch::nn;

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding) : padding_(padding) {
  conv = register_module("conv",
                         make_conv2d(nn::Conv2dOptions(channels, out_channels, 3).stride(2).padding(padding)));
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  if (padding_ == 0) return conv(at::constant_pad_nd(x, {0, 1, 0, 1}, 0));  // [B, C, H+1, W+1]
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels, int64_t out_channels) {
  conv = register_module("conv", make_conv2d(nn::Conv2dOptions(channels, out_channels, 3).padding(1)));
}

at::Tensor Upsample2DImpl::forward(const at::Tensor& x, const std::optional<std::vector<int64_t>>& output_size) {
  namespace F = torch::nn::functional;
  at::Tensor h = x;
  // upsample_nearest_nhwc fails with large batches (diffusers issue 984).
  if (h.size(0) >= 64) h = h.contiguous();
  auto opts = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (output_size)
    opts.size(*output_size);
  else
    opts.scale_factor(std::vector<double>{2.0, 2.0});
  h = F::interpolate(h, opts);  // [B, C, 2H, 2W] or [B, C, *output_size]
  return conv(h);
}

}  // namespace diffbench
