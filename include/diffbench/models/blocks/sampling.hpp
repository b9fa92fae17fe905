// diffusers' Downsample2D (strided 3x3 conv) and Upsample2D (nearest x2, then 3x3 conv).
// Upsample2D does its doubling as a sub-pixel convolution (DIFFBENCH_SUBPIXEL_UPSAMPLE=0 when it is made
// turns that off): a 3x3 conv of a nearest-doubled image gives each of an output pixel's four
// positions (row and column parity) a 2x2 conv of the input, whose taps are sums of the 3x3 taps. One conv
// with those four 2x2 kernels as output channel blocks, then one copy interleaving them, does 16 instead
// of 36 multiply-adds per input pixel and channel pair and never writes the doubled input. On CUDA in
// channels-last the interleave is one kernel (DIFFBENCH_SUBPIXEL_KERNEL=0: LibTorch's strided add).
#pragma once

#include <array>
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
  // Whether forward doubles by the sub-pixel convolution (without gradients; with them, as diffusers does).
  bool subpixel() const { return subpixel_; }

 private:
  at::Tensor forward_subpixel(const at::Tensor& x);
  // The four 2x2 kernels [4·Cout, Cin, 2, 2], made from conv's weight again when it has changed (another
  // tensor, or an in-place update): written into the same tensor, which CUDA graphs captured earlier read.
  // The conv's bias is added as the parities are interleaved, read from the conv at every call.
  void refresh_subpixel_weights();
  torch::nn::Conv2d conv{nullptr};
  bool subpixel_ = false;
  at::Tensor subpixel_weight_;
  std::array<int64_t, 6> subpixel_of_{};  // what it was made from: data pointer, version, type, place
};
TORCH_MODULE(Upsample2D);

}  // namespace diffbench
