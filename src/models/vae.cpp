#include "diffbench/models/vae.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/error.hpp"

namespace diffbench {

namespace nn = torch::nn;

namespace {

constexpr double kVaeEps = 1e-6;

ResnetBlock2D vae_resnet(int64_t in, int64_t out, int64_t groups) {
  ResnetBlock2DOptions r;
  r.in_channels = in;
  r.out_channels = out;
  r.groups = groups;
  r.eps = kVaeEps;
  return ResnetBlock2D(r);
}

void require_value(const JsonConfig& c, const std::string& key, const std::string& expected) {
  const auto value = c.get<std::string>(key, expected);
  if (value != expected)
    throw ModelError("unsupported VAE setting: '" + key + "' = \"" + value + "\" (only \"" + expected + "\")",
                     c.source());
}

}  // namespace

VaeConfig VaeConfig::from_json(const JsonConfig& c) {
  VaeConfig v;
  v.source = c.source();
  require_value(c, "act_fn", "silu");
  require_value(c, "norm_type", "group");
  // Bounds far above any real VAE, so that a typo fails here rather than as a crash or a huge allocation.
  v.in_channels = c.get_int("in_channels", v.in_channels, 1, 256);
  v.out_channels = c.get_int("out_channels", v.out_channels, 1, 256);
  v.latent_channels = c.get_int("latent_channels", v.latent_channels, 1, 256);
  v.down_block_types = c.get<std::vector<std::string>>("down_block_types", v.down_block_types);
  v.up_block_types = c.get<std::vector<std::string>>("up_block_types", v.up_block_types);
  v.block_out_channels = c.get_int_list("block_out_channels", v.block_out_channels, 1, 16384, 8);
  v.layers_per_block = c.get_int("layers_per_block", v.layers_per_block, 1, 64);
  v.norm_num_groups = c.get_int("norm_num_groups", v.norm_num_groups, 1, 16384);
  v.sample_size = c.get_int("sample_size", v.sample_size, 1, 16384);
  // 0 would divide the latents by zero: black images with exit 0.
  v.scaling_factor = c.get_double("scaling_factor", v.scaling_factor, 1e-6, 1e6);
  if (c.has("shift_factor")) v.shift_factor = c.get_double("shift_factor", 0.0, -1e6, 1e6);
  v.force_upcast = c.get<bool>("force_upcast", v.force_upcast);
  v.use_quant_conv = c.get<bool>("use_quant_conv", v.use_quant_conv);
  v.use_post_quant_conv = c.get<bool>("use_post_quant_conv", v.use_post_quant_conv);
  v.mid_block_add_attention = c.get<bool>("mid_block_add_attention", v.mid_block_add_attention);

  for (const auto& t : v.down_block_types)
    if (t != "DownEncoderBlock2D") throw ModelError("unsupported VAE down block type '" + t + "'", c.source());
  for (const auto& t : v.up_block_types)
    if (t != "UpDecoderBlock2D") throw ModelError("unsupported VAE up block type '" + t + "'", c.source());
  const size_t n = v.block_out_channels.size();
  if (n == 0 || v.down_block_types.size() != n || v.up_block_types.size() != n)
    throw ModelError("down_block_types, up_block_types and block_out_channels must have the same, non-zero length",
                     c.source());
  for (size_t i = 0; i < n; ++i)
    if (v.block_out_channels[i] % v.norm_num_groups != 0)
      throw ModelError("block_out_channels[" + std::to_string(i) + "] = " + std::to_string(v.block_out_channels[i]) +
                           " is not divisible by norm_num_groups " + std::to_string(v.norm_num_groups),
                       c.source());
  return v;
}

VaeMidBlockImpl::VaeMidBlockImpl(int64_t channels, int64_t groups, bool add_attention) {
  attentions = register_module("attentions", nn::ModuleList());
  resnets = register_module("resnets", nn::ModuleList());
  resnets_.push_back(vae_resnet(channels, channels, groups));
  resnets->push_back(resnets_.back());
  if (add_attention) {
    AttentionOptions a;  // one head over all channels (attention_head_dim = channels)
    a.query_dim = channels;
    a.heads = 1;
    a.dim_head = channels;
    a.bias = true;
    a.norm_num_groups = groups;
    a.eps = kVaeEps;
    a.residual_connection = true;
    attentions_.emplace_back(a);
    attentions->push_back(attentions_.back());
  }
  resnets_.push_back(vae_resnet(channels, channels, groups));
  resnets->push_back(resnets_.back());
}

at::Tensor VaeMidBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = resnets_[0](x);
  if (!attentions_.empty()) h = attentions_[0](h);  // [B, C, H, W] with its own residual
  return resnets_[1](h);
}

VaeSampleBlockImpl::VaeSampleBlockImpl(Kind kind, int64_t num_layers, int64_t in_channels, int64_t out_channels,
                                       int64_t groups, bool add_sampler) {
  resnets = register_module("resnets", nn::ModuleList());
  for (int64_t i = 0; i < num_layers; ++i) {
    resnets_.push_back(vae_resnet(i == 0 ? in_channels : out_channels, out_channels, groups));
    resnets->push_back(resnets_.back());
  }
  if (!add_sampler) return;
  if (kind == Kind::Down) {
    downsampler_ = Downsample2D(out_channels, out_channels, /*padding=*/0);
    samplers = register_module("downsamplers", nn::ModuleList(downsampler_));
  } else {
    upsampler_ = Upsample2D(out_channels, out_channels);
    samplers = register_module("upsamplers", nn::ModuleList(upsampler_));
  }
}

at::Tensor VaeSampleBlockImpl::forward(const at::Tensor& x) {
  at::Tensor h = x;
  for (auto& resnet : resnets_) h = resnet(h);  // [B, Cout, H, W]
  if (downsampler_) h = downsampler_(h);        // [B, Cout, H/2, W/2]
  if (upsampler_) h = upsampler_(h);            // [B, Cout, 2H, 2W]
  return h;
}

VaeEncoderImpl::VaeEncoderImpl(const VaeConfig& c) {
  const auto& ch = c.block_out_channels;
  const size_t n = ch.size();
  conv_in = register_module("conv_in", make_conv2d(nn::Conv2dOptions(c.in_channels, ch[0], 3).padding(1)));
  down_blocks = register_module("down_blocks", nn::ModuleList());
  for (size_t i = 0; i < n; ++i) {
    down_blocks_.emplace_back(VaeSampleBlockImpl::Kind::Down, c.layers_per_block, i == 0 ? ch[0] : ch[i - 1], ch[i],
                              c.norm_num_groups, i + 1 < n);
    down_blocks->push_back(down_blocks_.back());
  }
  mid_block = register_module("mid_block", VaeMidBlock(ch[n - 1], c.norm_num_groups, c.mid_block_add_attention));
  conv_norm_out = register_module(
      "conv_norm_out", make_group_norm(nn::GroupNormOptions(c.norm_num_groups, ch[n - 1]).eps(kVaeEps)));
  conv_out = register_module("conv_out",
                             make_conv2d(nn::Conv2dOptions(ch[n - 1], 2 * c.latent_channels, 3).padding(1)));
}

at::Tensor VaeEncoderImpl::forward(const at::Tensor& x) {
  at::Tensor h = conv_in(x);                   // [B, C0, H, W]
  for (auto& block : down_blocks_) h = block(h);  // [B, Clast, H/f, W/f]
  h = mid_block(h);
  return conv_out(at::silu(conv_norm_out(h)));  // [B, 2*latent, H/f, W/f]
}

VaeDecoderImpl::VaeDecoderImpl(const VaeConfig& c) {
  const auto& ch = c.block_out_channels;
  const size_t n = ch.size();
  conv_in = register_module("conv_in", make_conv2d(nn::Conv2dOptions(c.latent_channels, ch[n - 1], 3).padding(1)));
  mid_block = register_module("mid_block", VaeMidBlock(ch[n - 1], c.norm_num_groups, c.mid_block_add_attention));
  up_blocks = register_module("up_blocks", nn::ModuleList());
  int64_t output_channel = ch[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const int64_t prev_output_channel = output_channel;
    output_channel = ch[n - 1 - i];
    up_blocks_.emplace_back(VaeSampleBlockImpl::Kind::Up, c.layers_per_block + 1, prev_output_channel, output_channel,
                            c.norm_num_groups, i + 1 < n);
    up_blocks->push_back(up_blocks_.back());
  }
  conv_norm_out =
      register_module("conv_norm_out", make_group_norm(nn::GroupNormOptions(c.norm_num_groups, ch[0]).eps(kVaeEps)));
  conv_out = register_module("conv_out", make_conv2d(nn::Conv2dOptions(ch[0], c.out_channels, 3).padding(1)));
}

at::Tensor VaeDecoderImpl::forward(const at::Tensor& z) {
  at::Tensor h = conv_in(z);  // [B, Clast, h, w]
  h = mid_block(h);
  for (auto& block : up_blocks_) h = block(h);  // [B, C0, h*f, w*f]
  return conv_out(at::silu(conv_norm_out(h)));  // [B, 3, h*f, w*f]
}

AutoencoderKLImpl::AutoencoderKLImpl(const VaeConfig& config) : config_(config) {
  const int64_t latent = config_.latent_channels;
  encoder = register_module("encoder", VaeEncoder(config_));
  decoder = register_module("decoder", VaeDecoder(config_));
  if (config_.use_quant_conv)
    quant_conv = register_module("quant_conv", make_conv2d(nn::Conv2dOptions(2 * latent, 2 * latent, 1)));
  if (config_.use_post_quant_conv)
    post_quant_conv = register_module("post_quant_conv", make_conv2d(nn::Conv2dOptions(latent, latent, 1)));
}

at::Tensor AutoencoderKLImpl::decode(const at::Tensor& z) {
  at::Tensor h = post_quant_conv ? post_quant_conv(z) : z;  // [B, latent, h, w]
  return decoder(h);
}

std::pair<at::Tensor, at::Tensor> AutoencoderKLImpl::encode(const at::Tensor& x) {
  at::Tensor moments = encoder(x);                       // [B, 2*latent, h, w]
  if (quant_conv) moments = quant_conv(moments);
  auto parts = moments.chunk(2, 1);                      // mean, logvar
  return {parts[0], at::clamp(parts[1], -30.0, 20.0)};
}

}  // namespace diffbench
