// The UNet's stages, named and laid out like diffusers' unet_2d_blocks:
//   UNetDownBlock  = CrossAttnDownBlock2D (resnets + attentions + downsamplers) or DownBlock2D
//   UNetMidBlock   = UNetMidBlock2DCrossAttn (resnets.0, then attentions.i + resnets.i+1)
//   UNetUpBlock    = CrossAttnUpBlock2D or UpBlock2D (skip concat + resnet (+ attention), upsamplers)
// Each block runs layer by layer through `layer(i, ...)` so that callers (acceleration hooks)
// can stop, skip or reuse work between layers; forward() is just the loop. Given BlockHooks, every
// resnet, attention and sampler runs behind UNetHooks::before_module / after_module.
#pragma once

#include <optional>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/pimpl.h>

#include "diffbench/models/blocks/resnet.hpp"
#include "diffbench/models/blocks/sampling.hpp"
#include "diffbench/models/blocks/transformer.hpp"
#include "diffbench/models/unet_hooks.hpp"

namespace diffbench {

// The hooks a block reports to, and the block's own id (its layers' ids derive from it:
// "<block name>.resnets.<i>", ".attentions.<i>", ".downsamplers.0", ".upsamplers.0").
struct BlockHooks {
  UNetHooks* hooks = nullptr;
  ModuleId block;
};

struct UNetBlockOptions {
  int64_t num_layers = 1;          // resnets in the block
  int64_t in_channels = 0;
  int64_t out_channels = 0;
  int64_t prev_output_channel = 0;  // up blocks: channels coming from the block below
  int64_t temb_channels = 0;
  double resnet_eps = 1e-5;
  int64_t resnet_groups = 32;
  double output_scale_factor = 1.0;
  bool cross_attention = false;     // Transformer2DModel after each resnet
  int64_t num_attention_heads = 1;
  int64_t cross_attention_dim = 0;
  int64_t transformer_layers = 1;   // BasicTransformerBlocks per Transformer2DModel
  bool use_linear_projection = false;
  bool add_sampler = false;         // downsamplers.0 / upsamplers.0
  int64_t downsample_padding = 1;
};

// The hidden state after a down block and the states it leaves for the up path's skips.
struct DownBlockOutput {
  at::Tensor hidden;                   // [B, Cout, H', W']
  std::vector<at::Tensor> residuals;  // one per layer, plus the downsampled output
};

class UNetDownBlockImpl : public torch::nn::Module {
 public:
  explicit UNetDownBlockImpl(const UNetBlockOptions& options);
  // h: [B, Cin, H, W]; temb: [B, T] (resnet.hpp); context: [B, M, D].
  DownBlockOutput forward(const at::Tensor& h, const TimeEmbedding& temb, const CrossAttentionContext& context,
                          const BlockHooks* hooks = nullptr);
  // resnets.i, then attentions.i when present.
  at::Tensor layer(size_t i, const at::Tensor& h, const TimeEmbedding& temb, const CrossAttentionContext& context,
                   const BlockHooks* hooks = nullptr);
  at::Tensor downsample(const at::Tensor& h, const BlockHooks* hooks = nullptr);  // identity without one

  size_t num_layers() const { return resnets_.size(); }
  bool has_cross_attention() const { return !attentions_.empty(); }
  bool has_downsampler() const { return !downsamplers_.empty(); }
  const std::vector<ResnetBlock2D>& resnet_blocks() const { return resnets_; }
  const std::vector<Transformer2DModel>& transformers() const { return attentions_; }

 private:
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, downsamplers{nullptr};
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2DModel> attentions_;
  std::vector<Downsample2D> downsamplers_;
};
TORCH_MODULE(UNetDownBlock);

class UNetMidBlockImpl : public torch::nn::Module {
 public:
  explicit UNetMidBlockImpl(const UNetBlockOptions& options);  // num_layers = attention layers
  at::Tensor forward(const at::Tensor& h, const TimeEmbedding& temb, const CrossAttentionContext& context,
                     const BlockHooks* hooks = nullptr);
  size_t num_resnets() const { return resnets_.size(); }
  const std::vector<ResnetBlock2D>& resnet_blocks() const { return resnets_; }
  const std::vector<Transformer2DModel>& transformers() const { return attentions_; }

 private:
  torch::nn::ModuleList attentions{nullptr}, resnets{nullptr};
  std::vector<Transformer2DModel> attentions_;
  std::vector<ResnetBlock2D> resnets_;
};
TORCH_MODULE(UNetMidBlock);

class UNetUpBlockImpl : public torch::nn::Module {
 public:
  explicit UNetUpBlockImpl(const UNetBlockOptions& options);
  // skips: the num_layers() residuals this block consumes, in the order the down path made them
  // (layer i takes skips[num_layers()-1-i]). upsample_size: the upsampler's output {H, W}.
  at::Tensor forward(const at::Tensor& h, const std::vector<at::Tensor>& skips, const TimeEmbedding& temb,
                     const CrossAttentionContext& context, const std::optional<std::vector<int64_t>>& upsample_size,
                     const BlockHooks* hooks = nullptr);
  // cat([h, skip], channels) -> resnets.i, then attentions.i when present.
  at::Tensor layer(size_t i, const at::Tensor& h, const at::Tensor& skip, const TimeEmbedding& temb,
                   const CrossAttentionContext& context, const BlockHooks* hooks = nullptr);
  at::Tensor upsample(const at::Tensor& h, const std::optional<std::vector<int64_t>>& size,
                      const BlockHooks* hooks = nullptr);

  size_t num_layers() const { return resnets_.size(); }
  bool has_cross_attention() const { return !attentions_.empty(); }
  bool has_upsampler() const { return !upsamplers_.empty(); }
  const std::vector<ResnetBlock2D>& resnet_blocks() const { return resnets_; }
  const std::vector<Transformer2DModel>& transformers() const { return attentions_; }

 private:
  torch::nn::ModuleList resnets{nullptr}, attentions{nullptr}, upsamplers{nullptr};
  std::vector<ResnetBlock2D> resnets_;
  std::vector<Transformer2DModel> attentions_;
  std::vector<Upsample2D> upsamplers_;
};
TORCH_MODULE(UNetUpBlock);

}  // namespace diffbench
