// diffusers' ResnetBlock2D ("default" time-embedding norm, SiLU), with an optional time embedding.
#pragma once

#include <optional>
#include <utility>

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

// The time embedding the UNet hands its ResNet blocks: the embedding itself [B, T], and, when the UNet
// has projected it for all of them at once (one GEMM instead of one per block), those projections
// [B, Σ Cout], in which each block reads its own columns (ResnetBlock2DImpl::set_projection_column).
struct TimeEmbedding {
  TimeEmbedding() = default;
  TimeEmbedding(at::Tensor embedding) : emb(std::move(embedding)) {}  // NOLINT: a plain [B, T] converts
  at::Tensor emb;
  at::Tensor projected;
};

class ResnetBlock2DImpl : public torch::nn::Module {
 public:
  explicit ResnetBlock2DImpl(const ResnetBlock2DOptions& options);
  // x: [B, Cin, H, W]; temb: [B, T] or undefined when the block has no time embedding.
  at::Tensor forward(const at::Tensor& x, const TimeEmbedding& temb = {});

  int64_t in_channels() const { return options_.in_channels; }
  int64_t out_channels() const { return options_.out_channels; }
  // The time embedding's projection (undefined without one), and where its output starts in
  // TimeEmbedding::projected, for the UNet that projects every block's embedding at once.
  const torch::nn::Linear& time_projection() const { return time_emb_proj; }
  void set_projection_column(int64_t column) { projection_column_ = column; }

 private:
  // time_emb_proj(silu(temb)) [B, Cout], or its columns of temb.projected; undefined without either.
  at::Tensor time_shift(const TimeEmbedding& temb) const;

  ResnetBlock2DOptions options_;
  int64_t projection_column_ = -1;
  torch::nn::GroupNorm norm1{nullptr}, norm2{nullptr};
  torch::nn::Conv2d conv1{nullptr}, conv2{nullptr};
  torch::nn::Linear time_emb_proj{nullptr};
  torch::nn::Conv2d conv_shortcut{nullptr};  // 1x1, only when in != out
};
TORCH_MODULE(ResnetBlock2D);

}  // namespace diffbench
