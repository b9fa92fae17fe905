// diffusers' Downsample2D (strided 3x3 conv) and Upsample2D (nearest x2, then 3x3 conv).
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/pimpl.h>

namespace diffbench {

class Downsample2DImpl : public torch::nn::Module {
 public:
  // padding 0 pads the input by one on the right and bottom first (the VAE encoder's layout).
  Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> [B, Cout, ceil(H/2), ceil(W/2)]

 private:
  int64_t padding_;
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Downsample2D);

class Upsample2DImpl : public torch::nn::Module {
 public:
  Upsample2DImpl(int64_t channels, int64_t out_channels);
  // Nearest-neighbour to `output_size` ({H, W}) when given, else to twice the size; then conv.
  at::Tensor forward(const at::Tensor& x, const std::optional<std::vector<int64_t>>& output_size = std::nullopt);

 private:
  torch::nn::Conv2d conv{nullptr};
};
TORCH_MODULE(Upsample2D);

}  // namespace diffbench
