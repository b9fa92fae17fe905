#include "diffbench/models/unet.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include <atomic>

#include "diffbench/error.hpp"
#include "diffbench/models/blocks/norm.hpp"
#include "util/ab_switch.hpp"

namespace diffbench {

uint64_t next_hooks_instance_id() {
  static std::atomic<uint64_t> next{1};
  return next.fetch_add(1, std::memory_order_relaxed);
}

namespace nn = torch::nn;

namespace {

// A key whose non-null value asks for a feature this implementation lacks.
void reject_set(const JsonConfig& c, const std::string& key) {
  if (c.has(key))
    throw ModelError("unsupported UNet feature: '" + key + "' = " + c.raw().at(key).dump(), c.source());
}

void require_value(const JsonConfig& c, const std::string& key, const std::string& expected) {
  const auto value = c.get<std::string>(key, expected);
  if (value != expected)
    throw ModelError("unsupported UNet setting: '" + key + "' = \"" + value + "\" (only \"" + expected + "\")",
                     c.source());
}

// Bounds of the sizes read from a UNet config: far above any real model, low enough that a
// typo fails when read rather than as a division by zero or a huge allocation.
constexpr int64_t kMaxBlocks = 8, kMaxChannels = 16384, kMaxHeads = 1024, kMaxLayers = 64;

// An int in [1, hi] given once for all blocks or as a per-block list; expanded to `n` entries.
std::vector<int64_t> per_block(const JsonConfig& c, const std::string& key, int64_t fallback, size_t n, int64_t hi) {
  if (!c.has(key)) return std::vector<int64_t>(n, fallback);
  const auto& v = c.raw().at(key);
  if (v.is_number_integer()) return std::vector<int64_t>(n, c.get_int(key, fallback, 1, hi));
  if (!v.is_array()) throw InputError("key '" + key + "' must be an integer or a list of integers", c.source());
  for (const auto& e : v)
    if (!e.is_number_integer())
      throw ModelError("unsupported UNet setting: '" + key + "' = " + v.dump() + " (nested lists)", c.source());
  std::vector<int64_t> out = c.get_int_list(key, {}, 1, hi, kMaxBlocks);
  if (out.size() != n)
    throw ModelError("'" + key + "' has " + std::to_string(out.size()) + " entries for " + std::to_string(n) +
                         " down blocks",
                     c.source());
  return out;
}

bool any_true(const JsonConfig& c, const std::string& key) {
  if (!c.has(key)) return false;
  const auto& v = c.raw().at(key);
  if (v.is_boolean()) return v.get<bool>();
  if (v.is_array())
    for (const auto& e : v)
      if (e.is_boolean() && e.get<bool>()) return true;
  return false;
}

bool is_cross_attn_down(const std::string& t) { return t == "CrossAttnDownBlock2D"; }
bool is_cross_attn_up(const std::string& t) { return t == "CrossAttnUpBlock2D"; }

}  // namespace

UNetConfig UNetConfig::from_json(const JsonConfig& c) {
  UNetConfig u;
  u.source = c.source();
  for (const char* key : {"class_embed_type", "num_class_embeds", "time_cond_proj_dim",
                          "encoder_hid_dim", "encoder_hid_dim_type", "cross_attention_norm", "time_embedding_act_fn",
                          "timestep_post_act", "reverse_transformer_layers_per_block"})
    reject_set(c, key);
  require_value(c, "act_fn", "silu");
  require_value(c, "resnet_time_scale_shift", "default");
  require_value(c, "time_embedding_type", "positional");
  require_value(c, "attention_type", "default");
  if (c.get<bool>("resnet_skip_time_act", false)) reject_set(c, "resnet_skip_time_act");
  if (c.get<bool>("dual_cross_attention", false)) reject_set(c, "dual_cross_attention");
  if (any_true(c, "only_cross_attention")) reject_set(c, "only_cross_attention");
  if (!c.has("norm_num_groups") && c.raw().contains("norm_num_groups"))
    throw ModelError("unsupported UNet setting: 'norm_num_groups' = null", c.source());

  u.sample_size = c.get_int("sample_size", 0, 1, 4096);
  u.in_channels = c.get_int("in_channels", u.in_channels, 1, 256);
  u.out_channels = c.get_int("out_channels", u.out_channels, 1, 256);
  u.center_input_sample = c.get<bool>("center_input_sample", u.center_input_sample);
  u.flip_sin_to_cos = c.get<bool>("flip_sin_to_cos", u.flip_sin_to_cos);
  u.freq_shift = c.get<double>("freq_shift", u.freq_shift);
  u.down_block_types = c.get<std::vector<std::string>>("down_block_types", u.down_block_types);
  u.up_block_types = c.get<std::vector<std::string>>("up_block_types", u.up_block_types);
  u.mid_block_type = c.raw().contains("mid_block_type") && c.raw().at("mid_block_type").is_null()
                         ? std::string()
                         : c.get<std::string>("mid_block_type", u.mid_block_type);
  u.block_out_channels = c.get_int_list("block_out_channels", u.block_out_channels, 1, kMaxChannels, kMaxBlocks);
  u.downsample_padding = c.get_int("downsample_padding", u.downsample_padding, 0, 8);
  u.mid_block_scale_factor = c.get<double>("mid_block_scale_factor", u.mid_block_scale_factor);
  u.norm_num_groups = c.get_int("norm_num_groups", u.norm_num_groups, 1, kMaxChannels);
  u.norm_eps = c.get<double>("norm_eps", u.norm_eps);
  u.use_linear_projection = c.get<bool>("use_linear_projection", u.use_linear_projection);
  u.upcast_attention = c.get<bool>("upcast_attention", u.upcast_attention);
  u.resnet_out_scale_factor = c.get<double>("resnet_out_scale_factor", u.resnet_out_scale_factor);
  u.conv_in_kernel = c.get_int("conv_in_kernel", u.conv_in_kernel, 1, 15);
  u.conv_out_kernel = c.get_int("conv_out_kernel", u.conv_out_kernel, 1, 15);
  for (const char* key : {"conv_in_kernel", "conv_out_kernel"})
    if (c.get<int64_t>(key, 3) % 2 == 0) c.out_of_range(key, std::to_string(c.get<int64_t>(key, 3)), "(odd sizes only)");
  if (c.has("time_embedding_dim")) u.time_embedding_dim = c.get_int("time_embedding_dim", 0, 1, 4 * kMaxChannels);
  if (c.has("addition_embed_type")) {
    u.addition_embed_type = c.get<std::string>("addition_embed_type", "");
    if (u.addition_embed_type != "text_time")
      throw ModelError("unsupported UNet setting: 'addition_embed_type' = \"" + u.addition_embed_type +
                           "\" (only \"text_time\", SDXL's)",
                       c.source());
    if (!c.has("addition_time_embed_dim") || !c.has("projection_class_embeddings_input_dim"))
      throw ModelError("addition_embed_type \"text_time\" needs addition_time_embed_dim and "
                       "projection_class_embeddings_input_dim",
                       c.source());
    u.addition_time_embed_dim = c.get_int("addition_time_embed_dim", 0, 1, kMaxChannels);
    u.projection_class_embeddings_input_dim =
        c.get_int("projection_class_embeddings_input_dim", 0, 1, 16 * kMaxChannels);
  } else if (c.has("projection_class_embeddings_input_dim")) {
    reject_set(c, "projection_class_embeddings_input_dim");  // diffusers reads it only for added embeddings
  }

  for (const auto& t : u.down_block_types)
    if (t != "CrossAttnDownBlock2D" && t != "DownBlock2D")
      throw ModelError("unsupported down block type '" + t + "'", c.source());
  for (const auto& t : u.up_block_types)
    if (t != "CrossAttnUpBlock2D" && t != "UpBlock2D")
      throw ModelError("unsupported up block type '" + t + "'", c.source());
  if (!u.mid_block_type.empty() && u.mid_block_type != "UNetMidBlock2DCrossAttn")
    throw ModelError("unsupported mid block type '" + u.mid_block_type + "'", c.source());

  const size_t n = u.down_block_types.size();
  if (n == 0 || u.up_block_types.size() != n || u.block_out_channels.size() != n)
    throw ModelError("down_block_types, up_block_types and block_out_channels must have the same, non-zero length",
                     c.source());
  u.layers_per_block = per_block(c, "layers_per_block", 2, n, kMaxLayers);
  u.cross_attention_dim = per_block(c, "cross_attention_dim", 1280, n, kMaxChannels);
  u.transformer_layers_per_block = per_block(c, "transformer_layers_per_block", 1, n, kMaxLayers);
  u.num_attention_heads = c.has("num_attention_heads") ? per_block(c, "num_attention_heads", 8, n, kMaxHeads)
                                                       : per_block(c, "attention_head_dim", 8, n, kMaxHeads);
  for (size_t i = 0; i < n; ++i) {
    if (u.block_out_channels[i] % u.num_attention_heads[i] != 0)
      throw ModelError("block_out_channels[" + std::to_string(i) + "] = " + std::to_string(u.block_out_channels[i]) +
                           " is not divisible by its " + std::to_string(u.num_attention_heads[i]) + " attention heads",
                       c.source());
    if (u.block_out_channels[i] % u.norm_num_groups != 0)
      throw ModelError("block_out_channels[" + std::to_string(i) + "] is not divisible by norm_num_groups",
                       c.source());
  }
  return u;
}

UNet2DConditionModelImpl::UNet2DConditionModelImpl(const UNetConfig& config) : config_(config) {
  const auto& c = config_;
  const size_t n = c.down_block_types.size();
  const int64_t temb = c.time_embed_dim();
  const auto& ch = c.block_out_channels;

  time_embedding = register_module("time_embedding", TimestepEmbedding(ch[0], temb));
  if (!c.addition_embed_type.empty())
    add_embedding = register_module("add_embedding", TimestepEmbedding(c.projection_class_embeddings_input_dim, temb));
  conv_in = register_module(
      "conv_in", make_conv2d(nn::Conv2dOptions(c.in_channels, ch[0], c.conv_in_kernel).padding((c.conv_in_kernel - 1) / 2)));

  UNetBlockOptions common;
  common.temb_channels = temb;
  common.resnet_eps = c.norm_eps;
  common.resnet_groups = c.norm_num_groups;
  common.use_linear_projection = c.use_linear_projection;

  // Down path: block i maps block_out_channels[i-1] -> [i], halving the size except the last.
  down_blocks = register_module("down_blocks", nn::ModuleList());
  for (size_t i = 0; i < n; ++i) {
    UNetBlockOptions o = common;
    o.num_layers = c.layers_per_block[i];
    o.in_channels = i == 0 ? ch[0] : ch[i - 1];
    o.out_channels = ch[i];
    o.cross_attention = is_cross_attn_down(c.down_block_types[i]);
    o.num_attention_heads = c.num_attention_heads[i];
    o.cross_attention_dim = c.cross_attention_dim[i];
    o.transformer_layers = c.transformer_layers_per_block[i];
    o.add_sampler = i + 1 < n;
    o.downsample_padding = c.downsample_padding;
    down_blocks_.emplace_back(o);
    down_blocks->push_back(down_blocks_.back());
  }

  if (!c.mid_block_type.empty()) {
    UNetBlockOptions o = common;
    o.num_layers = 1;
    o.in_channels = ch[n - 1];
    o.out_channels = ch[n - 1];
    o.output_scale_factor = c.mid_block_scale_factor;
    o.cross_attention = true;
    o.num_attention_heads = c.num_attention_heads[n - 1];
    o.cross_attention_dim = c.cross_attention_dim[n - 1];
    o.transformer_layers = c.transformer_layers_per_block[n - 1];
    mid_block = register_module("mid_block", UNetMidBlock(o));
  }

  // Up path: mirror image, one more resnet per block (it also consumes the downsampler's skip).
  up_blocks = register_module("up_blocks", nn::ModuleList());
  int64_t output_channel = ch[n - 1];
  for (size_t i = 0; i < n; ++i) {
    const size_t r = n - 1 - i;  // the mirrored down block
    UNetBlockOptions o = common;
    o.prev_output_channel = output_channel;
    output_channel = ch[r];
    o.num_layers = c.layers_per_block[r] + 1;
    o.in_channels = ch[r == 0 ? 0 : r - 1];
    o.out_channels = output_channel;
    o.cross_attention = is_cross_attn_up(c.up_block_types[i]);
    o.num_attention_heads = c.num_attention_heads[r];
    o.cross_attention_dim = c.cross_attention_dim[r];
    o.transformer_layers = c.transformer_layers_per_block[r];
    o.add_sampler = i + 1 < n;
    if (o.add_sampler) ++num_upsamplers_;
    up_blocks_.emplace_back(o);
    up_blocks->push_back(up_blocks_.back());
  }

  conv_norm_out = register_module(
      "conv_norm_out", make_group_norm(nn::GroupNormOptions(c.norm_num_groups, ch[0]).eps(c.norm_eps)));
  conv_out = register_module(
      "conv_out",
      make_conv2d(nn::Conv2dOptions(ch[0], c.out_channels, c.conv_out_kernel).padding((c.conv_out_kernel - 1) / 2)));

  time_projections_ = RowFusedLinears(time_projection_layers());
  int64_t column = 0;
  for (auto r : resnet_blocks()) {
    r->set_projection_column(column);
    column += r->out_channels();
  }
  // One GEMM for every cross-attention's keys and values, where the layers allow it.
  const auto kv_layers = cross_kv_layers();
  if (ab_switch_on("DIFFBENCH_FUSED_CROSS_KV") && RowFusedLinears::fusable(kv_layers)) {
    cross_kv_ = RowFusedLinears(kv_layers);
    column = 0;
    for (auto a : cross_attentions()) {
      a->set_kv_column(column);
      column += 2 * a->options().heads * a->options().dim_head;
    }
  }
}

namespace {

// f(block) for every down block, the mid block when there is one, and every up block, in that order.
template <class F>
void for_each_block(const std::vector<UNetDownBlock>& down, const UNetMidBlock& mid, const std::vector<UNetUpBlock>& up,
                    F&& f) {
  for (const auto& b : down) f(*b);
  if (mid) f(*mid);
  for (const auto& b : up) f(*b);
}

}  // namespace

std::vector<Attention> UNet2DConditionModelImpl::cross_attentions() const {
  std::vector<Attention> all;
  for_each_block(down_blocks_, mid_block, up_blocks_, [&](const auto& block) {
    for (const auto& t : block.transformers())
      for (const auto& b : t->blocks()) all.push_back(b->cross_attention());
  });
  return all;
}

void UNet2DConditionModelImpl::use_fp8() {
  for_each_block(down_blocks_, mid_block, up_blocks_, [&](const auto& block) {
    for (auto t : block.transformers()) t->use_fp8();  // a copy of the holder: t is changed
  });
}

std::vector<torch::nn::Linear> UNet2DConditionModelImpl::cross_kv_layers() const {
  std::vector<torch::nn::Linear> layers;
  for (const auto& a : cross_attentions())
    for (const auto& l : a->key_value_layers()) layers.push_back(l);
  return layers;
}

CrossAttentionContext UNet2DConditionModelImpl::project_context(const at::Tensor& encoder_hidden_states) {
  CrossAttentionContext c(encoder_hidden_states);
  if (cross_kv_.intact(cross_kv_layers())) c.kv = cross_kv_.forward(encoder_hidden_states);  // [B, M, Σ 2·inner]
  return c;
}

std::vector<ResnetBlock2D> UNet2DConditionModelImpl::resnet_blocks() const {
  std::vector<ResnetBlock2D> all;
  for_each_block(down_blocks_, mid_block, up_blocks_, [&](const auto& block) {
    all.insert(all.end(), block.resnet_blocks().begin(), block.resnet_blocks().end());
  });
  return all;
}

std::vector<torch::nn::Linear> UNet2DConditionModelImpl::time_projection_layers() const {
  std::vector<torch::nn::Linear> layers;
  for (const auto& r : resnet_blocks()) layers.push_back(r->time_projection());
  return layers;
}

TimeEmbedding UNet2DConditionModelImpl::project_time_embedding(const at::Tensor& emb) {
  TimeEmbedding t(emb);
  if (ab_switch_on("DIFFBENCH_FUSED_TEMB") && time_projections_.intact(time_projection_layers()))
    t.projected = time_projections_.forward(at::silu(emb));  // [B, Σ Cout]
  return t;
}

bool UNet2DConditionModelImpl::needs_upsample_size(const at::Tensor& sample) const {
  const int64_t f = upsample_factor();
  return sample.size(-2) % f != 0 || sample.size(-1) % f != 0;
}

at::Tensor UNet2DConditionModelImpl::forward_time_embedding(const at::Tensor& timestep, const at::Tensor& sample,
                                                            const UNetAddedCond& added) {
  at::Tensor t = timestep.to(sample.device());
  if (t.dim() == 0) t = t.unsqueeze(0);
  t = t.expand({sample.size(0)});  // [B]
  at::Tensor proj = timestep_embedding(t, config_.block_out_channels[0], config_.flip_sin_to_cos, config_.freq_shift);
  at::Tensor emb = time_embedding(proj.to(sample.scalar_type()));  // [B, time_embed_dim]
  if (add_embedding.is_empty()) {
    if (added.defined()) throw UsageError("this UNet takes no added conditioning (text_embeds, time_ids)", config_.source);
    return emb;
  }
  // get_aug_embed, "text_time": each time id embedded sinusoidally, appended to the pooled text embedding.
  if (!added.defined() || !added.time_ids.defined())
    throw UsageError("this UNet (addition_embed_type \"text_time\") needs text_embeds and time_ids", config_.source);
  const int64_t b = added.text_embeds.size(0);
  if (added.time_ids.size(0) != b || b != sample.size(0) ||
      added.text_embeds.size(1) + added.time_ids.size(1) * config_.addition_time_embed_dim !=
          config_.projection_class_embeddings_input_dim)
    throw UsageError("added conditioning of the wrong shape for projection_class_embeddings_input_dim " +
                         std::to_string(config_.projection_class_embeddings_input_dim),
                     config_.source);
  at::Tensor time_embeds = timestep_embedding(added.time_ids.to(sample.device()).flatten(),
                                              config_.addition_time_embed_dim, config_.flip_sin_to_cos,
                                              config_.freq_shift);  // [B*N, addition_time_embed_dim]
  time_embeds = time_embeds.reshape({b, -1});                      // [B, N*addition_time_embed_dim]
  const at::Tensor add_embeds =
      at::cat({added.text_embeds.to(sample.device()), time_embeds.to(added.text_embeds.scalar_type())}, -1);  // [B, P']
  return emb + add_embedding(add_embeds.to(emb.scalar_type()));  // [B, time_embed_dim]
}

at::Tensor UNet2DConditionModelImpl::forward_conv_in(const at::Tensor& sample) { return conv_in(sample); }

namespace {

ModuleId block_id(UNetSection section, size_t i, size_t num_blocks, size_t num_layers) {
  ModuleId id;
  id.section = section;
  id.kind = ModuleKind::Block;
  id.block = static_cast<int>(i);
  id.num_blocks = static_cast<int>(num_blocks);
  id.num_layers = static_cast<int>(num_layers);
  id.name = section == UNetSection::Mid ? std::string("mid_block")
                                        : (section == UNetSection::Down ? "down_blocks." : "up_blocks.") + std::to_string(i);
  return id;
}

}  // namespace

DownBlockOutput UNet2DConditionModelImpl::forward_down_block(size_t i, const at::Tensor& h, const TimeEmbedding& temb,
                                                             const CrossAttentionContext& context, UNetHooks* hooks) {
  UNetDownBlock& block = down_blocks_.at(i);
  if (!hooks) return block(h, temb, context);
  const BlockHooks bh{hooks, block_id(UNetSection::Down, i, down_blocks_.size(), block->num_layers())};
  if (auto out = hooks->before_module(bh.block)) return {out->hidden, out->residuals};
  DownBlockOutput out = block(h, temb, context, &bh);
  hooks->after_module(bh.block, ModuleOutput{out.hidden, out.residuals});
  return out;
}

at::Tensor UNet2DConditionModelImpl::forward_mid_block(const at::Tensor& h, const TimeEmbedding& temb,
                                                       const CrossAttentionContext& context, UNetHooks* hooks) {
  if (!mid_block) return h;
  if (!hooks) return mid_block(h, temb, context);
  const BlockHooks bh{hooks, block_id(UNetSection::Mid, 0, 1, mid_block->num_resnets())};
  if (auto out = hooks->before_module(bh.block)) return out->hidden;
  at::Tensor out = mid_block(h, temb, context, &bh);
  hooks->after_module(bh.block, ModuleOutput{out, {}});
  return out;
}

at::Tensor UNet2DConditionModelImpl::forward_up_block(size_t i, const at::Tensor& h,
                                                      const std::vector<at::Tensor>& skips, const TimeEmbedding& temb,
                                                      const CrossAttentionContext& context,
                                                      const std::optional<std::vector<int64_t>>& upsample_size,
                                                      UNetHooks* hooks) {
  UNetUpBlock& block = up_blocks_.at(i);
  if (!hooks) return block(h, skips, temb, context, upsample_size);
  const BlockHooks bh{hooks, block_id(UNetSection::Up, i, up_blocks_.size(), block->num_layers())};
  if (auto out = hooks->before_module(bh.block)) return out->hidden;
  at::Tensor out = block(h, skips, temb, context, upsample_size, &bh);
  hooks->after_module(bh.block, ModuleOutput{out, {}});
  return out;
}

at::Tensor UNet2DConditionModelImpl::forward_conv_out(const at::Tensor& h) {
  return conv_out(group_norm_act(h, conv_norm_out, /*silu=*/true));  // the fused kernel on channels-last CUDA
}

at::Tensor UNet2DConditionModelImpl::forward(const at::Tensor& sample, const at::Tensor& timestep,
                                             const at::Tensor& encoder_hidden_states, UNetHooks* hooks,
                                             const UNetAddedCond& added) {
  const bool pass_sizes = needs_upsample_size(sample);
  const at::Tensor x = config_.center_input_sample ? sample * 2.0 - 1.0 : sample;  // [B, Cin, H, W]
  const TimeEmbedding temb = project_time_embedding(forward_time_embedding(timestep, x, added));  // [B, T]
  const CrossAttentionContext context = project_context(encoder_hidden_states);
  at::Tensor h = forward_conv_in(x);  // [B, C0, H, W]

  std::vector<at::Tensor> skips{h};
  for (size_t i = 0; i < down_blocks_.size(); ++i) {
    DownBlockOutput out = forward_down_block(i, h, temb, context, hooks);
    h = out.hidden;  // [B, Ci, H/2^i', W/2^i']
    skips.insert(skips.end(), out.residuals.begin(), out.residuals.end());
  }

  h = forward_mid_block(h, temb, context, hooks);  // [B, Clast, h, w]

  for (size_t i = 0; i < up_blocks_.size(); ++i) {
    const size_t take = up_blocks_[i]->num_layers();
    std::vector<at::Tensor> block_skips(skips.end() - static_cast<std::ptrdiff_t>(take), skips.end());
    skips.resize(skips.size() - take);
    std::optional<std::vector<int64_t>> upsample_size;
    if (pass_sizes && i + 1 < up_blocks_.size()) upsample_size = skips.back().sizes().slice(2).vec();
    h = forward_up_block(i, h, block_skips, temb, context, upsample_size, hooks);
  }
  return forward_conv_out(h);  // [B, Cout, H, W]
}

}  // namespace diffbench
