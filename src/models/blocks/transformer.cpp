#include "diffbench/models/blocks/transformer.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"
#include "diffbench/models/blocks/norm.hpp"
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
#include "kernels/geglu.hpp"
#endif

#include <torch/nn/modules/dropout.h>

#include "util/ab_switch.hpp"

namespace diffbench {

namespace nn = torch::nn;

GEGLUImpl::GEGLUImpl(int64_t dim_in, int64_t dim_out) {
  proj = register_module("proj", make_linear(dim_in, dim_out * 2));
}

at::Tensor GEGLUImpl::forward(const at::Tensor& x) {
  at::Tensor y = linear(proj, x, fp8_);  // [.., 2·dim_out]: value, gate
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (y.is_cuda()) return kernels::geglu(y);  // fused; falls back itself for unsupported inputs
#endif
  auto parts = y.chunk(2, -1);
  return parts[0] * at::gelu(parts[1]);
}

FeedForwardImpl::FeedForwardImpl(int64_t dim, int64_t mult) {
  const int64_t inner = dim * mult;
  act = GEGLU(dim, inner);
  out = make_linear(inner, dim);
  net = register_module("net", nn::ModuleList(act, nn::Dropout(0.0), out));
}

at::Tensor FeedForwardImpl::forward(const at::Tensor& x) { return linear(out, act(x), fp8_out_); }

at::Tensor FeedForwardImpl::forward_onto(const at::Tensor& x, at::Tensor acc) {
  const at::Tensor h = act(x);               // [B, N, inner]
  gemm_onto(acc, h, out->weight, fp8_out_);  // [B, N, dim] += h·Wᵀ (beta = 1)
  return acc;
}

void FeedForwardImpl::use_fp8() {
  act->use_fp8();
  fp8_out_ = Fp8Matrix::of(out->weight);
}

BasicTransformerBlockImpl::BasicTransformerBlockImpl(const TransformerBlockOptions& o) {
  auto layer_norm = [&] { return make_layer_norm(nn::LayerNormOptions({o.dim}).eps(o.norm_eps)); };
  AttentionOptions self_attn;
  self_attn.query_dim = o.dim;
  self_attn.heads = o.heads;
  self_attn.dim_head = o.dim_head;
  AttentionOptions cross_attn = self_attn;
  cross_attn.cross_attention_dim = o.cross_attention_dim;

  norm1 = register_module("norm1", layer_norm());
  attn1 = register_module("attn1", Attention(self_attn));
  norm2 = register_module("norm2", layer_norm());
  attn2 = register_module("attn2", Attention(cross_attn));
  norm3 = register_module("norm3", layer_norm());
  ff = register_module("ff", FeedForward(o.dim));
}

namespace {

// One attention behind the hooks: before_attention may supply the output, after_attention sees
// the computed one.
template <typename Run>
at::Tensor hooked_attention(UNetHooks& hooks, const TransformerId& id, TransformerPart part, const at::Tensor& x,
                            Run&& run) {
  if (auto out = hooks.before_attention(id, part, x)) return *out;
  at::Tensor out = run(x);
  hooks.after_attention(id, part, out);
  return out;
}

}  // namespace

at::Tensor BasicTransformerBlockImpl::forward(const at::Tensor& x, const CrossAttentionContext& context,
                                              UNetHooks* hooks, const TransformerId* id, int64_t h, int64_t w) {
  // Each residual add and the LayerNorm after it are one pass (add_layer_norm: a kernel on CUDA,
  // LibTorch's add and norm elsewhere): y is the running activation, n the next sublayer's input.
  if (!hooks || !id) {
    if (fold_out_biases(x)) {  // each attention's to_out bias added inside the add + LayerNorm kernel
      const at::Tensor a = attn1->forward_without_out_bias(layer_norm(norm1, x));
      auto [y, n] = add_layer_norm(a, x, norm2, {}, attn1->out_bias());
      return add_feed_forward(attn2->forward_without_out_bias(n, context), y, nullptr, attn2->out_bias());
    }
    auto [y, n] = add_layer_norm(attn1(layer_norm(norm1, x)), x, norm2);  // [B, N, dim] self-attention, norm2
    return add_feed_forward(attn2(n, context), y, nullptr);   // cross-attention to the text, norm3, GEGLU
  }
  // As tomesd's ToMeBlock: x = u(f(m(norm(x)))) + x for each part, m/u from the block's input.
  const std::shared_ptr<TokenTransform> tokens = hooks->tokens(*id, x, h, w);
  auto merge = [&](TransformerPart p, const at::Tensor& t) { return tokens ? tokens->merge(p, t) : t; };
  auto unmerge = [&](TransformerPart p, const at::Tensor& t) { return tokens ? tokens->unmerge(p, t) : t; };
  using P = TransformerPart;

  at::Tensor a = hooked_attention(*hooks, *id, P::SelfAttention, merge(P::SelfAttention, layer_norm(norm1, x)),
                                  [&](const at::Tensor& t) { return attn1(t); });  // [B, N', dim]
  auto [y, n] = add_layer_norm(unmerge(P::SelfAttention, a), x, norm2);            // [B, N, dim] each
  a = hooked_attention(*hooks, *id, P::CrossAttention, merge(P::CrossAttention, n),
                       [&](const at::Tensor& t) { return attn2(t, context); });
  return add_feed_forward(unmerge(P::CrossAttention, a), y, tokens.get());
}

void BasicTransformerBlockImpl::use_fp8() {
  attn1->use_fp8();
  attn2->use_fp8();
  ff->use_fp8();
}

bool BasicTransformerBlockImpl::fold_out_biases(const at::Tensor& x) const {
  return fused_add_layer_norm(x) && attn1->out_bias().defined() && attn2->out_bias().defined() &&
         ab_switch_on("DIFFBENCH_FOLD_OUT_BIAS");
}

at::Tensor BasicTransformerBlockImpl::add_feed_forward(const at::Tensor& a, const at::Tensor& y,
                                                       TokenTransform* tokens, const at::Tensor& a_bias) {
  if (!tokens && fused_add_layer_norm(y) && ff->out_bias().defined()) {
    // The feed-forward's residual add is its last GEMM accumulating onto the sum, which the fused
    // add wrote with that GEMM's bias added (norm3 is of the sum itself).
    auto [acc, n] = add_layer_norm(a, y, norm3, ff->out_bias(), a_bias);  // [B, N, dim] each
    return ff->forward_onto(n, acc);
  }
  auto [sum, n] = add_layer_norm(a, y, norm3, {}, a_bias);
  if (!tokens) return ff(n) + sum;
  using P = TransformerPart;
  return tokens->unmerge(P::FeedForward, ff(tokens->merge(P::FeedForward, n))) + sum;
}

Transformer2DModelImpl::Transformer2DModelImpl(const Transformer2DOptions& options) : options_(options) {
  const int64_t C = options_.in_channels;
  const int64_t inner = options_.num_attention_heads * options_.attention_head_dim;
  norm = register_module("norm", make_group_norm(nn::GroupNormOptions(options_.norm_num_groups, C).eps(1e-6)));
  if (options_.use_linear_projection)
    proj_in_linear = register_module("proj_in", make_linear(C, inner));
  else
    proj_in_conv = register_module("proj_in", make_conv2d(nn::Conv2dOptions(C, inner, 1)));

  TransformerBlockOptions block;
  block.dim = inner;
  block.heads = options_.num_attention_heads;
  block.dim_head = options_.attention_head_dim;
  block.cross_attention_dim = options_.cross_attention_dim;
  transformer_blocks = register_module("transformer_blocks", nn::ModuleList());
  for (int64_t i = 0; i < options_.num_layers; ++i) {
    blocks_.emplace_back(block);
    transformer_blocks->push_back(blocks_.back());
  }

  if (options_.use_linear_projection)
    proj_out_linear = register_module("proj_out", make_linear(inner, C));
  else
    proj_out_conv = register_module("proj_out", make_conv2d(nn::Conv2dOptions(inner, C, 1)));
}

namespace {

at::Tensor as_matrix(const at::Tensor& w) { return w.reshape({w.size(0), w.size(1)}); }  // [out, in, 1, 1]

}  // namespace

void Transformer2DModelImpl::use_fp8() {
  fp8_proj_in_ = Fp8Matrix::of(proj_in_conv ? as_matrix(proj_in_conv->weight) : proj_in_linear->weight);
  fp8_proj_out_ = Fp8Matrix::of(proj_out_conv ? as_matrix(proj_out_conv->weight) : proj_out_linear->weight);
  for (auto& block : blocks_) block->use_fp8();
}

at::Tensor Transformer2DModelImpl::forward(const at::Tensor& x, const CrossAttentionContext& context, UNetHooks* hooks,
                                           const ModuleId* id) {
  const int64_t B = x.size(0), C = x.size(1), H = x.size(2), W = x.size(3);
  at::Tensor h = group_norm_act(x, norm, /*silu=*/false);
  // Channels-last activations: the 1×1 projections are matrix products over the pixels' channel
  // vectors (views, no copies), with proj_in's bias added by the GEMM itself.
  // With fp8 GEMMs (use_fp8) they are GEMMs in any layout.
  const bool nhwc = proj_in_conv && fused_nhwc(h) && fused_nhwc(x);
  if (nhwc || (proj_in_conv && fp8_proj_in_.defined())) {
    h = gemm(h.permute({0, 2, 3, 1}).reshape({B, H * W, C}), as_matrix(proj_in_conv->weight), proj_in_conv->bias,
             fp8_proj_in_);                                        // [B, HW, inner]
  } else if (proj_in_conv) {
    h = proj_in_conv(h);                                           // [B, inner, H, W]
    h = h.permute({0, 2, 3, 1}).reshape({B, H * W, h.size(1)});    // [B, HW, inner]
  } else {
    h = h.permute({0, 2, 3, 1}).reshape({B, H * W, C});            // [B, HW, C]
    h = linear(proj_in_linear, h, fp8_proj_in_);                   // [B, HW, inner]
  }
  if (hooks && id && hooks->hooks_transformer_blocks()) {
    TransformerId tid;
    tid.attention = *id;
    for (size_t i = 0; i < blocks_.size(); ++i) {
      tid.index = static_cast<int>(i);
      tid.name = id->name + ".transformer_blocks." + std::to_string(i);
      h = blocks_[i](h, context, hooks, &tid, H, W);             // [B, HW, inner]
    }
  } else {
    for (auto& block : blocks_) h = block(h, context);            // [B, HW, inner]
  }
  if (nhwc) {  // proj_out's bias and the residual add in one pass
    h = gemm(h, as_matrix(proj_out_conv->weight), {}, fp8_proj_out_);  // [B, HW, C]
    return bias_residual(h.reshape({B, H, W, C}).permute({0, 3, 1, 2}), proj_out_conv->bias, x);
  }
  if (proj_out_conv && fp8_proj_out_.defined()) {
    h = gemm(h, as_matrix(proj_out_conv->weight), proj_out_conv->bias, fp8_proj_out_);  // [B, HW, C]
    h = h.reshape({B, H, W, C}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format());  // [B, C, H, W]
  } else if (proj_out_conv) {
    h = h.reshape({B, H, W, -1}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format());  // [B, inner, H, W]
    h = proj_out_conv(h);                                              // [B, C, H, W]
  } else {
    h = linear(proj_out_linear, h, fp8_proj_out_);                     // [B, HW, C]
    h = h.reshape({B, H, W, C}).permute({0, 3, 1, 2}).contiguous(x.suggest_memory_format());  // [B, C, H, W]
  }
  return h + x;
}

}  // namespace diffbench
