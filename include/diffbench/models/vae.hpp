// diffusers' AutoencoderKL (the Stable Diffusion VAE), built from its config.json. Parameter names
// equal the diffusers checkpoint keys (encoder.down_blocks.0.resnets.0. ..., decoder.mid_block. ...).
#pragma once

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/blocks/resnet.hpp"
#include "diffbench/models/blocks/sampling.hpp"

namespace diffbench {

struct VaeConfig {
  std::string source;  // the config file, for error messages
  int64_t in_channels = 3;
  int64_t out_channels = 3;
  int64_t latent_channels = 4;
  std::vector<std::string> down_block_types = {"DownEncoderBlock2D"};
  std::vector<std::string> up_block_types = {"UpDecoderBlock2D"};
  std::vector<int64_t> block_out_channels = {64};
  int64_t layers_per_block = 1;
  int64_t norm_num_groups = 32;
  int64_t sample_size = 32;
  double scaling_factor = 0.18215;
  std::optional<double> shift_factor;  // latents = (z - shift) * scale when set (SD3/Flux style)
  bool force_upcast = true;            // pipelines run this VAE in float32 even for fp16 models
  bool use_quant_conv = true;
  bool use_post_quant_conv = true;
  bool mid_block_add_attention = true;

  static VaeConfig from_json(const JsonConfig& config);
  // Pixels per latent along each side: 2^(len(block_out_channels) - 1).
  int scale_factor() const { return 1 << (static_cast<int>(block_out_channels.size()) - 1); }
};

// The VAE's UNetMidBlock2D: resnets.0, then (attentions.i, resnets.i+1); no time embedding.
class VaeMidBlockImpl : public torch::nn::Module {
 public:
  VaeMidBlockImpl(int64_t channels, int64_t groups, bool add_attention);
  at::Tensor forward(const at::Tensor& x);  // [B, C, H, W] -> same

 private:
  torch::nn::ModuleList attentions{nullptr}, resnets{nullptr};
  std::vector<Attention> attentions_;
  std::vector<ResnetBlock2D> resnets_;
};
TORCH_MODULE(VaeMidBlock);

// DownEncoderBlock2D (resnets, downsamplers) and UpDecoderBlock2D (resnets, upsamplers).
class VaeSampleBlockImpl : public torch::nn::Module {
 public:
  enum class Kind { Down, Up };
  VaeSampleBlockImpl(Kind kind, int64_t num_layers, int64_t in_channels, int64_t out_channels, int64_t groups,
                     bool add_sampler);
  at::Tensor forward(const at::Tensor& x);

 private:
  torch::nn::ModuleList resnets{nullptr}, samplers{nullptr};
  std::vector<ResnetBlock2D> resnets_;
  Downsample2D downsampler_{nullptr};
  Upsample2D upsampler_{nullptr};
};
TORCH_MODULE(VaeSampleBlock);

class VaeEncoderImpl : public torch::nn::Module {
 public:
  explicit VaeEncoderImpl(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& x);  // [B, 3, H, W] -> [B, 2*latent, H/f, W/f]

 private:
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  torch::nn::ModuleList down_blocks{nullptr};
  std::vector<VaeSampleBlock> down_blocks_;
  VaeMidBlock mid_block{nullptr};
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeEncoder);

class VaeDecoderImpl : public torch::nn::Module {
 public:
  explicit VaeDecoderImpl(const VaeConfig& config);
  at::Tensor forward(const at::Tensor& z);  // [B, latent, h, w] -> [B, 3, h*f, w*f]

 private:
  torch::nn::Conv2d conv_in{nullptr}, conv_out{nullptr};
  VaeMidBlock mid_block{nullptr};
  torch::nn::ModuleList up_blocks{nullptr};
  std::vector<VaeSampleBlock> up_blocks_;
  torch::nn::GroupNorm conv_norm_out{nullptr};
};
TORCH_MODULE(VaeDecoder);

class AutoencoderKLImpl : public torch::nn::Module {
 public:
  explicit AutoencoderKLImpl(const VaeConfig& config);

  // z: [B, latent, h, w], already divided by scaling_factor (and shifted back when shift_factor
  // is set). Returns the image [B, 3, h*f, w*f], roughly in [-1, 1].
  at::Tensor decode(const at::Tensor& z);
  // x: [B, 3, H, W] in [-1, 1]. Returns the latent distribution's (mean, logvar), each
  // [B, latent, H/f, W/f]; logvar clamped to [-30, 20] as diffusers does.
  std::pair<at::Tensor, at::Tensor> encode(const at::Tensor& x);

  const VaeConfig& config() const { return config_; }

 private:
  VaeConfig config_;
  VaeEncoder encoder{nullptr};
  VaeDecoder decoder{nullptr};
  torch::nn::Conv2d quant_conv{nullptr}, post_quant_conv{nullptr};
};
TORCH_MODULE(AutoencoderKL);

}  // namespace diffbench
