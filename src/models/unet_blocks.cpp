#include "diffbench/models/unet_blocks.hpp"

#include "diffbench/error.hpp"

namespace diffbench {

namespace nn = torch::nn;

namespace {

ResnetBlock2D make_resnet(const UNetBlockOptions& o, int64_t in, int64_t out) {
  ResnetBlock2DOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.temb_channels = o.temb_channels;
  r.groups = o.resnet_groups;
  r.eps = o.resnet_eps;
  r.output_scale_factor = o.output_scale_factor;
  return ResnetBlock2D(r);
}

Transformer2DModel make_transformer(const UNetBlockOptions& o, int64_t channels) {
  Transformer2DOptions t;
  t.num_attention_heads = o.num_attention_heads;
  t.attention_head_dim = channels / o.num_attention_heads;
  t.in_channels = channels;
  t.num_layers = o.transformer_layers;
  t.cross_attention_dim = o.cross_attention_dim;
  t.norm_num_groups = o.resnet_groups;
  t.use_linear_projection = o.use_linear_projection;
  return Transformer2DModel(t);
}

// Runs one layer behind the hooks: before_module may supply its output (the layer is skipped),
// after_module sees what it computed. Without hooks it is just run().
template <typename Run>
at::Tensor hooked(const BlockHooks* bh, ModuleKind kind, size_t index, const char* list, Run&& run) {
  if (!bh || !bh->hooks) return run(nullptr);
  ModuleId id = bh->block;
  id.kind = kind;
  id.layer = static_cast<int>(index);
  id.name = bh->block.name + "." + list + "." + std::to_string(index);
  if (auto out = bh->hooks->before_module(id)) return out->hidden;
  at::Tensor out = run(&id);
  bh->hooks->after_module(id, ModuleOutput{out, {}});
  return out;
}

UNetHooks* hooks_of(const BlockHooks* bh) { return bh ? bh->hooks : nullptr; }

// The up blocks' skip concatenation along channels. For channels-last inputs this concatenates the
// NHWC views along their last dimension: the same tensor, copied in contiguous runs (H100, batch 1:
// 2.7 ms of concatenation per generation instead of at::cat's 5.3 ms along dim 1), and channels-last
// even when only one input is (at::cat falls back to NCHW when the inputs' formats differ).
at::Tensor cat_channels(const at::Tensor& a, const at::Tensor& b) {
  const auto cl = at::MemoryFormat::ChannelsLast;
  if (a.dim() != 4 || !(a.is_contiguous(cl) || b.is_contiguous(cl))) return at::cat({a, b}, 1);
  return at::cat({a.permute({0, 2, 3, 1}), b.permute({0, 2, 3, 1})}, 3).permute({0, 3, 1, 2});  // [B, Ca+Cb, H, W]
}

}  // namespace

// ---- down ----

UNetDownBlockImpl::UNetDownBlockImpl(const UNetBlockOptions& o) {
  resnets = register_module("resnets", nn::ModuleList());
  if (o.cross_attention) attentions = register_module("attentions", nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    resnets_.push_back(make_resnet(o, i == 0 ? o.in_channels : o.out_channels, o.out_channels));
    resnets->push_back(resnets_.back());
    if (o.cross_attention) {
      attentions_.push_back(make_transformer(o, o.out_channels));
      attentions->push_back(attentions_.back());
    }
  }
  if (o.add_sampler) {
    downsamplers = register_module("downsamplers", nn::ModuleList());
    downsamplers_.emplace_back(o.out_channels, o.out_channels, o.downsample_padding);
    downsamplers->push_back(downsamplers_.back());
  }
}

at::Tensor UNetDownBlockImpl::layer(size_t i, const at::Tensor& h, const TimeEmbedding& temb,
                                    const CrossAttentionContext& context, const BlockHooks* bh) {
  at::Tensor out = hooked(bh, ModuleKind::Resnet, i, "resnets",
                          [&](const ModuleId*) { return resnets_.at(i)(h, temb); });  // [B, Cout, H, W]
  if (!attentions_.empty())
    out = hooked(bh, ModuleKind::Attention, i, "attentions",
                 [&](const ModuleId* id) { return attentions_[i](out, context, hooks_of(bh), id); });
  return out;
}

at::Tensor UNetDownBlockImpl::downsample(const at::Tensor& h, const BlockHooks* bh) {
  if (downsamplers_.empty()) return h;
  return hooked(bh, ModuleKind::Downsampler, 0, "downsamplers",
                [&](const ModuleId*) { return downsamplers_[0](h); });  // [B, Cout, ceil(H/2), ceil(W/2)]
}

DownBlockOutput UNetDownBlockImpl::forward(const at::Tensor& h, const TimeEmbedding& temb,
                                           const CrossAttentionContext& context, const BlockHooks* bh) {
  DownBlockOutput out{h, {}};
  for (size_t i = 0; i < num_layers(); ++i) {
    out.hidden = layer(i, out.hidden, temb, context, bh);
    out.residuals.push_back(out.hidden);
  }
  if (has_downsampler()) {
    out.hidden = downsample(out.hidden, bh);
    out.residuals.push_back(out.hidden);
  }
  return out;
}

// ---- mid ----

UNetMidBlockImpl::UNetMidBlockImpl(const UNetBlockOptions& o) {
  const int64_t c = o.in_channels;
  attentions = register_module("attentions", nn::ModuleList());
  resnets = register_module("resnets", nn::ModuleList());
  resnets_.push_back(make_resnet(o, c, c));
  resnets->push_back(resnets_.back());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    attentions_.push_back(make_transformer(o, c));
    attentions->push_back(attentions_.back());
    resnets_.push_back(make_resnet(o, c, c));
    resnets->push_back(resnets_.back());
  }
}

at::Tensor UNetMidBlockImpl::forward(const at::Tensor& h, const TimeEmbedding& temb,
                                     const CrossAttentionContext& context, const BlockHooks* bh) {
  at::Tensor x = hooked(bh, ModuleKind::Resnet, 0, "resnets",
                        [&](const ModuleId*) { return resnets_[0](h, temb); });  // [B, C, H, W]
  for (size_t i = 0; i < attentions_.size(); ++i) {
    x = hooked(bh, ModuleKind::Attention, i, "attentions",
               [&](const ModuleId* id) { return attentions_[i](x, context, hooks_of(bh), id); });
    x = hooked(bh, ModuleKind::Resnet, i + 1, "resnets", [&](const ModuleId*) { return resnets_[i + 1](x, temb); });
  }
  return x;
}

// ---- up ----

UNetUpBlockImpl::UNetUpBlockImpl(const UNetBlockOptions& o) {
  resnets = register_module("resnets", nn::ModuleList());
  if (o.cross_attention) attentions = register_module("attentions", nn::ModuleList());
  for (int64_t i = 0; i < o.num_layers; ++i) {
    const int64_t skip_channels = i == o.num_layers - 1 ? o.in_channels : o.out_channels;
    const int64_t resnet_in = i == 0 ? o.prev_output_channel : o.out_channels;
    resnets_.push_back(make_resnet(o, resnet_in + skip_channels, o.out_channels));
    resnets->push_back(resnets_.back());
    if (o.cross_attention) {
      attentions_.push_back(make_transformer(o, o.out_channels));
      attentions->push_back(attentions_.back());
    }
  }
  if (o.add_sampler) {
    upsamplers = register_module("upsamplers", nn::ModuleList());
    upsamplers_.emplace_back(o.out_channels, o.out_channels);
    upsamplers->push_back(upsamplers_.back());
  }
}

at::Tensor UNetUpBlockImpl::layer(size_t i, const at::Tensor& h, const at::Tensor& skip, const TimeEmbedding& temb,
                                  const CrossAttentionContext& context, const BlockHooks* bh) {
  at::Tensor x = hooked(bh, ModuleKind::Resnet, i, "resnets", [&](const ModuleId*) {
    return resnets_.at(i)(cat_channels(h, skip), temb);  // [B, C + Cskip, H, W] -> [B, Cout, H, W]
  });
  if (!attentions_.empty())
    x = hooked(bh, ModuleKind::Attention, i, "attentions",
               [&](const ModuleId* id) { return attentions_[i](x, context, hooks_of(bh), id); });
  return x;
}

at::Tensor UNetUpBlockImpl::upsample(const at::Tensor& h, const std::optional<std::vector<int64_t>>& size,
                                     const BlockHooks* bh) {
  if (upsamplers_.empty()) return h;
  return hooked(bh, ModuleKind::Upsampler, 0, "upsamplers", [&](const ModuleId*) { return upsamplers_[0](h, size); });
}

at::Tensor UNetUpBlockImpl::forward(const at::Tensor& h, const std::vector<at::Tensor>& skips,
                                    const TimeEmbedding& temb, const CrossAttentionContext& context,
                                    const std::optional<std::vector<int64_t>>& upsample_size,
                                    const BlockHooks* bh) {
  if (skips.size() != num_layers())
    throw RuntimeFailure("up block needs " + std::to_string(num_layers()) + " skip tensors, got " +
                         std::to_string(skips.size()));
  at::Tensor x = h;
  for (size_t i = 0; i < num_layers(); ++i) x = layer(i, x, skips[num_layers() - 1 - i], temb, context, bh);
  return upsample(x, upsample_size, bh);
}

}  // namespace diffbench
