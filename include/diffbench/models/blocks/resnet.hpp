// diffusers' ResnetBlock2D ("default" time-embedding norm, SiLU), with an optional time embedding.
#pragma once

#include <optional>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

namespace diffbench {

struct ResnetBlock2DOptions {
  int64_t in_channels = 0;
  int64_t out_channels = 0;   // 0: same as in_channels
  int64_t temb_channels = 0;  // 0: no time embedding (VAE)
  int64_t groups = 32;
  double eps = 1e-6;
  double output_scale_factor = 1.0;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlock2DOptions& options);
  // x: [B, Cin, H, W]; temb: [B, T] or undefined when the block has no time embedding.
  at::Tensor forward(const at::Tensor& x, const at::Tensor& temb = {});

  int64_t in_channels() const { return options_.in_channels; }
  int64_t out_channels() const { return options_.out_channels; }

 private:
  ResnetBlock2DOptions options_;
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};
  torch::nn::Conv2d conv_shortcut{nullptr};  // 1x1, only when in != out
};
TORCH_MODULE(ResnetBlock2D);

}  // namespace diffbench
