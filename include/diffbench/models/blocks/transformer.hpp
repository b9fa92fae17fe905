// diffusers' Transformer2DModel for continuous inputs (GroupNorm, proj_in, BasicTransformerBlocks,
// proj_out, residual) and BasicTransformerBlock (self-attention, cross-attention, GEGLU feed-forward,
// each behind a LayerNorm).
#pragma once

#include <vector>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/unet_hooks.hpp"

namespace diffbench {

// GEGLU: proj to 2*inner, then value * gelu(gate) (exact GELU).
class GEGLUImpl : public torch::nn::Module {
 public:
  GEGLUImpl(int64_t dim_in, int64_t dim_out);
  at::Tensor forward(const at::Tensor& x);  // [.., dim_in] -> [.., dim_out]
  void use_fp8() { fp8_ = Fp8Matrix::of(proj->weight); }  // dtype "fp8" (linear.hpp)

 private:
  torch::nn::Linear proj{nullptr};
  Fp8Matrix fp8_;
};
TORCH_MODULE(GEGLU);

// FeedForward with GEGLU: net.0 = GEGLU, net.1 = Dropout, net.2 = Linear.
class FeedForwardImpl : public torch::nn::Module {
 public:
  FeedForwardImpl(int64_t dim, int64_t mult = 4);
  at::Tensor forward(const at::Tensor& x);  // [B, N, dim] -> [B, N, dim]
  // acc + forward(x) - net.2's bias, with the last GEMM accumulating onto acc ([B, N, dim],
  // contiguous; overwritten and returned) instead of writing its own output: the caller has
  // added the bias (out_bias()) to acc. Without gradients only.
  at::Tensor forward_onto(const at::Tensor& x, at::Tensor acc);
  const at::Tensor& out_bias() const { return out->bias; }
  void use_fp8();  // dtype "fp8": both GEMMs (linear.hpp)

 private:
  torch::nn::ModuleList net{nullptr};
  GEGLU act{nullptr};
  torch::nn::Linear out{nullptr};
  Fp8Matrix fp8_out_;
};
TORCH_MODULE(FeedForward);

struct TransformerBlockOptions {
  int64_t dim = 0;
  int64_t heads = 8;
  int64_t dim_head = 64;
  int64_t cross_attention_dim = 0;
  double norm_eps = 1e-5;
};

class BasicTransformerBlockImpl : public torch::nn::Module {
 public:
  explicit BasicTransformerBlockImpl(const TransformerBlockOptions& options);
  // x: [B, N, dim]; context: [B, M, cross_attention_dim] (attention.hpp). With hooks: `id` names this
  // block and h, w are its level's spatial size (N = h·w); see unet_hooks.hpp for the order of the hooks.
  at::Tensor forward(const at::Tensor& x, const CrossAttentionContext& context, UNetHooks* hooks = nullptr,
                     const TransformerId* id = nullptr, int64_t h = 0, int64_t w = 0);

  Attention cross_attention() const { return attn2; }
  // Whether the attentions leave their to_out bias to the add + LayerNorm kernel (no hooks; the fused
  // kernel runs on x; DIFFBENCH_FOLD_OUT_BIAS=0, read at every call, turns it off for A/B timing).
  bool fold_out_biases(const at::Tensor& x) const;
  // dtype "fp8": the GEMMs over the image's tokens (Attention::use_fp8, the feed-forward's).
  void use_fp8();

 private:
  // y + a, then + ff(norm3(y + a)), with the feed-forward's tokens merged by `tokens` when given; a_bias
  // ([dim]): a's to_out bias, when its attention left it out.
  at::Tensor add_feed_forward(const at::Tensor& a, const at::Tensor& y, TokenTransform* tokens,
                              const at::Tensor& a_bias = {});

  torch::nn::LayerNorm norm1{nullptr}, norm2{nullptr}, norm3{nullptr};
  Attention attn1{nullptr}, attn2{nullptr};
  FeedForward ff{nullptr};
};
TORCH_MODULE(BasicTransformerBlock);

struct Transformer2DOptions {
  int64_t num_attention_heads = 16;
  int64_t attention_head_dim = 88;
  int64_t in_channels = 0;
  int64_t num_layers = 1;
  int64_t cross_attention_dim = 0;
  int64_t norm_num_groups = 32;
  bool use_linear_projection = false;
};

class Transformer2DModelImpl : public torch::nn::Module {
 public:
  explicit Transformer2DModelImpl(const Transformer2DOptions& options);
  // x: [B, C, H, W]; context: [B, M, cross_attention_dim]. Returns [B, C, H, W]. With hooks, `id`
  // is this model's id (e.g. down_blocks.1.attentions.0) and its blocks report as
  // <name>.transformer_blocks.<i>.
  at::Tensor forward(const at::Tensor& x, const CrossAttentionContext& context, UNetHooks* hooks = nullptr,
                     const ModuleId* id = nullptr);

  const std::vector<BasicTransformerBlock>& blocks() const { return blocks_; }
  // dtype "fp8": proj_in, proj_out (the 1×1 convolutions as GEMMs, on every device) and the blocks'
  // GEMMs over the image's tokens multiply in fp8 from now on (linear.hpp).
  void use_fp8();

 private:
  Transformer2DOptions options_;
  torch::nn::GroupNorm norm{nullptr};
  torch::nn::Conv2d proj_in_conv{nullptr}, proj_out_conv{nullptr};
  torch::nn::Linear proj_in_linear{nullptr}, proj_out_linear{nullptr};
  torch::nn::ModuleList transformer_blocks{nullptr};
  std::vector<BasicTransformerBlock> blocks_;
  Fp8Matrix fp8_proj_in_, fp8_proj_out_;
};
TORCH_MODULE(Transformer2DModel);

}  // namespace diffbench
