// diffusers' UNet2DConditionModel for the SD1.x/SD2.x and SDXL topologies, built from its config.json.
// Parameter names equal the diffusers checkpoint keys (down_blocks.1.attentions.0. ...).
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/models/blocks/embeddings.hpp"
#include "diffbench/models/blocks/linear.hpp"
#include "diffbench/models/unet_blocks.hpp"
#include "diffbench/models/unet_hooks.hpp"

namespace diffbench {

// The keys of unet/config.json that matter for SD1.x/2.x, with diffusers' defaults. Per-block
// lists are expanded to one entry per down block (in down-block order).
struct UNetConfig {
  std::string source;                // the config file, for error messages
  int64_t sample_size = 0;           // latent side; 0 when the config has none (diffusers' None)
  int64_t in_channels = 4;
  int64_t out_channels = 4;
  bool center_input_sample = false;
  bool flip_sin_to_cos = true;
  double freq_shift = 0.0;
  std::vector<std::string> down_block_types = {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D",
                                               "CrossAttnDownBlock2D", "DownBlock2D"};
  std::string mid_block_type = "UNetMidBlock2DCrossAttn";  // empty: no mid block (diffusers' None)
  std::vector<std::string> up_block_types = {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D",
                                             "CrossAttnUpBlock2D"};
  std::vector<int64_t> block_out_channels = {320, 640, 1280, 1280};
  std::vector<int64_t> layers_per_block;              // default 2 per block
  int64_t downsample_padding = 1;
  double mid_block_scale_factor = 1.0;
  int64_t norm_num_groups = 32;
  double norm_eps = 1e-5;
  std::vector<int64_t> cross_attention_dim;           // default 1280 per block
  std::vector<int64_t> transformer_layers_per_block;  // default 1 per block
  // Heads per block: num_attention_heads, or attention_head_dim when that is null (diffusers keeps
  // the old misnomer: SD1.x's "attention_head_dim": 8 means 8 heads).
  std::vector<int64_t> num_attention_heads;           // default 8 per block
  bool use_linear_projection = false;
  bool upcast_attention = false;  // no effect with scaled-dot-product attention, as in diffusers
  // diffusers passes this only to ResnetDownsampleBlock2D / SimpleCrossAttn blocks, so it does not
  // change the blocks supported here; kept for completeness.
  double resnet_out_scale_factor = 1.0;
  int64_t conv_in_kernel = 3;
  int64_t conv_out_kernel = 3;
  std::optional<int64_t> time_embedding_dim;  // default 4 * block_out_channels[0]
  // SDXL's added conditioning: addition_embed_type "text_time" (empty: none), the sinusoidal width of
  // each time id, and the width of [pooled text embedding, embedded time ids] that add_embedding reads.
  std::string addition_embed_type;
  int64_t addition_time_embed_dim = 0;
  int64_t projection_class_embeddings_input_dim = 0;

  static UNetConfig from_json(const JsonConfig& config);
  int64_t time_embed_dim() const { return time_embedding_dim.value_or(block_out_channels.at(0) * 4); }
};

// diffusers' added_cond_kwargs for addition_embed_type "text_time" (SDXL): text_embeds [B, P] (the
// pooled, projected text embedding) and time_ids [B, N] (original size, crop top-left, target size).
// Both undefined for a UNet without added conditioning.
struct UNetAddedCond {
  at::Tensor text_embeds;
  at::Tensor time_ids;
  bool defined() const { return text_embeds.defined(); }
};

class UNet2DConditionModelImpl : public torch::nn::Module {
 public:
  explicit UNet2DConditionModelImpl(const UNetConfig& config);

  // sample: [B, in_channels, H, W]; timestep: 0-d or [B]; encoder_hidden_states: [B, 77, D].
  // Returns the noise prediction [B, out_channels, H, W]. `hooks` (optional, not owned) sees every
  // block and layer (unet_hooks.hpp); without hooks nothing is called and the result is unchanged.
  // The caller calls hooks->begin_call before each forward. `added` is required exactly when the
  // config has an addition_embed_type.
  at::Tensor forward(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& encoder_hidden_states,
                     UNetHooks* hooks = nullptr, const UNetAddedCond& added = {});

  // ---- the stages forward() runs, in order (hook points for acceleration methods) ----
  // Sinusoidal projection + time_embedding MLP, plus add_embedding of the added conditioning when
  // the config has one: [B, time_embed_dim] in sample's dtype.
  at::Tensor forward_time_embedding(const at::Tensor& timestep, const at::Tensor& sample,
                                    const UNetAddedCond& added = {});
  // The embedding with every ResNet block's projection of it computed at once (one GEMM of the
  // blocks' time_emb_proj weights, which are row blocks of one tensor), unless the weights have left
  // that tensor or DIFFBENCH_FUSED_TEMB=0: then each block projects it itself.
  TimeEmbedding project_time_embedding(const at::Tensor& emb);
  at::Tensor forward_conv_in(const at::Tensor& sample);  // [B, block_out_channels[0], H, W]
  // The text conditioning the blocks read: with it, every cross-attention layer's keys and values
  // from one GEMM (the layers' to_k/to_v weights are the row blocks of one tensor, made so when the
  // UNet is made), unless a layer has left that tensor; DIFFBENCH_FUSED_CROSS_KV=0 when the UNet is
  // made keeps each layer's own.
  CrossAttentionContext project_context(const at::Tensor& encoder_hidden_states);
  // Each block behind before_module / after_module when hooks are given (ids "down_blocks.<i>",
  // "mid_block", "up_blocks.<i>", numbered as diffusers numbers them).
  DownBlockOutput forward_down_block(size_t i, const at::Tensor& h, const TimeEmbedding& temb,
                                     const CrossAttentionContext& context, UNetHooks* hooks = nullptr);
  at::Tensor forward_mid_block(const at::Tensor& h, const TimeEmbedding& temb, const CrossAttentionContext& context,
                               UNetHooks* hooks = nullptr);
  at::Tensor forward_up_block(size_t i, const at::Tensor& h, const std::vector<at::Tensor>& skips,
                              const TimeEmbedding& temb, const CrossAttentionContext& context,
                              const std::optional<std::vector<int64_t>>& upsample_size, UNetHooks* hooks = nullptr);
  at::Tensor forward_conv_out(const at::Tensor& h);  // norm, SiLU, conv: [B, out_channels, H, W]

  // Whether upsamplers must be given the skips' sizes (latent sides not multiples of
  // upsample_factor()), as diffusers' forward_upsample_size.
  bool needs_upsample_size(const at::Tensor& sample) const;
  int64_t upsample_factor() const { return int64_t(1) << num_upsamplers_; }

  const UNetConfig& config() const { return config_; }
  size_t num_down_blocks() const { return down_blocks_.size(); }
  size_t num_up_blocks() const { return up_blocks_.size(); }
  UNetDownBlock& down_block(size_t i) { return down_blocks_.at(i); }
  UNetUpBlock& up_block(size_t i) { return up_blocks_.at(i); }
  bool has_mid_block() const { return !mid_block.is_empty(); }
  // Every ResNet block, down path to up path.
  std::vector<ResnetBlock2D> resnet_blocks() const;
  // Every transformer block's cross-attention (attn2), down path to up path.
  std::vector<Attention> cross_attentions() const;
  // dtype "fp8": the transformers' GEMMs over the image's tokens multiply in float8 e4m3 from now on
  // (Transformer2DModel::use_fp8, models/blocks/linear.hpp); the convolutions, the time embedding and the
  // text's keys and values stay in the weights' dtype. Call after loading (and fusing LoRAs).
  void use_fp8();

 private:
  UNetConfig config_;
  int64_t num_upsamplers_ = 0;
  TimestepEmbedding time_embedding{nullptr};
  TimestepEmbedding add_embedding{nullptr};  // text_time only (add_time_proj has no parameters)
  torch::nn::Conv2d conv_in{nullptr};
  torch::nn::ModuleList down_blocks{nullptr}, up_blocks{nullptr};
  std::vector<UNetDownBlock> down_blocks_;
  UNetMidBlock mid_block{nullptr};
  std::vector<UNetUpBlock> up_blocks_;
  torch::nn::GroupNorm conv_norm_out{nullptr};
  torch::nn::Conv2d conv_out{nullptr};
  // Their time_emb_proj layers, whose weights are the rows of one tensor in that order.
  std::vector<torch::nn::Linear> time_projection_layers() const;
  RowFusedLinears time_projections_;
  // The cross-attentions' to_k, to_v layers (keys then values, layer by layer), rows of one tensor.
  std::vector<torch::nn::Linear> cross_kv_layers() const;
  RowFusedLinears cross_kv_;
};
TORCH_MODULE(UNet2DConditionModel);

}  // namespace diffbench
