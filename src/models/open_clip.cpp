#include "diffbench/models/open_clip.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"

#include <ATen/ATen.h>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

JsonConfig sub_config(const JsonConfig& j, const std::string& key) {
  if (!j.has(key)) return JsonConfig(nlohmann::json::object(), j.source() + " [" + key + "]");
  const auto& v = j.raw().at(key);
  if (!v.is_object()) throw InputError("'" + key + "' must be an object", j.source());
  return JsonConfig(v, j.source() + " [" + key + "]");
}

int64_t square_size(const JsonConfig& j, const std::string& key, int64_t fallback) {
  if (!j.has(key)) return fallback;
  const auto& v = j.raw().at(key);
  int64_t n = 0;
  if (v.is_number_integer()) n = v.get<int64_t>();
  else if (v.is_array() && v.size() == 2 && v[0].is_number_integer() && v[0] == v[1]) n = v[0].get<int64_t>();
  else throw InputError("'" + key + "' must be an integer or a square [n, n] pair", j.source());
  if (n < 1 || n > 4096) j.out_of_range(key, v.dump(), "[1, 4096]");
  return n;
}

// Options whose code paths are not implemented: refuse rather than compute something else.
void refuse_unsupported(const JsonConfig& j, const std::vector<std::string>& flags) {
  for (const auto& key : flags) {
    if (!j.has(key)) continue;
    const auto& v = j.raw().at(key);
    const bool off = (v.is_boolean() && !v.get<bool>()) || (v.is_string() && (v == "" || v == "default"));
    if (!off) throw InputError("open_clip option '" + key + "' is not supported by diffbench's open_clip model", j.source());
  }
}

std::optional<double> optional_double(const JsonConfig& j, const std::string& key) {
  if (!j.has(key)) return std::nullopt;
  return j.get<double>(key, 0.0);
}

double norm_eps(const JsonConfig& j) {
  if (!j.has("norm_kwargs")) return 1e-5;
  const auto& kw = j.raw().at("norm_kwargs");
  for (const auto& [k, v] : kw.items())
    if (k != "eps") throw InputError("norm_kwargs '" + k + "' is not supported (only eps)", j.source());
  return kw.value("eps", 1e-5);
}

void refuse_act_kwargs(const JsonConfig& j) {
  if (j.has("act_kwargs") && !j.raw().at("act_kwargs").empty())
    throw InputError("act_kwargs are not supported", j.source());
}

const std::vector<std::string> kCustomBlockFlags = {"block_type", "qk_norm", "scaled_cosine_attn", "scale_heads",
                                                   "scale_attn_inner", "scale_attn", "scale_fc"};

}  // namespace

OpenClipConfig OpenClipConfig::from_json(const JsonConfig& file) {
  const JsonConfig j = file.has("model_cfg") ? sub_config(file, "model_cfg") : file;
  refuse_unsupported(j, {"custom_text", "multimodal_cfg"});
  OpenClipConfig c;
  c.embed_dim = j.get_int("embed_dim", c.embed_dim, 1, 16384);
  c.quick_gelu = j.get<bool>("quick_gelu", c.quick_gelu);
  c.init_logit_bias = optional_double(j, "init_logit_bias");

  const JsonConfig v = sub_config(j, "vision_cfg");
  refuse_unsupported(v, {"timm_model_name", "attentional_pool"});
  refuse_unsupported(v, kCustomBlockFlags);
  refuse_act_kwargs(v);
  if (v.has("layers") && !v.raw().at("layers").is_number_integer())
    throw InputError("ModifiedResNet image towers (vision_cfg.layers as a list) are not supported", v.source());
  auto& vc = c.vision_cfg;
  vc.image_size = square_size(v, "image_size", vc.image_size);
  vc.patch_size = square_size(v, "patch_size", vc.patch_size);
  vc.width = v.get_int("width", vc.width, 1, 16384);
  vc.layers = v.get_int("layers", vc.layers, 1, 256);
  vc.head_width = v.get_int("head_width", vc.head_width, 1, 16384);
  vc.mlp_ratio = v.get_double("mlp_ratio", vc.mlp_ratio, 1e-3, 64);
  vc.ls_init_value = optional_double(v, "ls_init_value");
  vc.no_ln_pre = v.get<bool>("no_ln_pre", vc.no_ln_pre);
  vc.final_ln_after_pool = v.get<bool>("final_ln_after_pool", vc.final_ln_after_pool);
  vc.pool_type = v.get<std::string>("pool_type", vc.pool_type);
  vc.layer_norm_eps = norm_eps(v);
  if (vc.pool_type != "tok" && vc.pool_type != "avg")
    throw InputError("vision pool_type '" + vc.pool_type + "' is not supported (tok or avg)", v.source());
  if (vc.head_width <= 0 || vc.width % vc.head_width != 0)
    throw InputError("vision width is not a multiple of head_width", v.source());
  if (vc.patch_size <= 0 || vc.image_size % vc.patch_size != 0)
    throw InputError("vision image_size is not a multiple of patch_size", v.source());

  const JsonConfig t = sub_config(j, "text_cfg");
  refuse_unsupported(t, {"hf_model_name", "embed_cls"});
  refuse_unsupported(t, kCustomBlockFlags);
  refuse_act_kwargs(t);
  auto& tc = c.text_cfg;
  tc.context_length = t.get_int("context_length", tc.context_length, 1, 65536);
  tc.vocab_size = t.get_int("vocab_size", tc.vocab_size, 1, 1 << 22);
  tc.width = t.get_int("width", tc.width, 1, 16384);
  tc.heads = t.get_int("heads", tc.heads, 1, 1024);
  tc.layers = t.get_int("layers", tc.layers, 1, 256);
  tc.mlp_ratio = t.get_double("mlp_ratio", tc.mlp_ratio, 1e-3, 64);
  tc.ls_init_value = optional_double(t, "ls_init_value");
  tc.no_causal_mask = t.get<bool>("no_causal_mask", tc.no_causal_mask);
  tc.pool_type = t.get<std::string>("pool_type", tc.pool_type);
  tc.eos_id = t.get<int64_t>("eos_id", tc.eos_id);
  tc.pad_id = t.get<int64_t>("pad_id", tc.pad_id);
  tc.proj_bias = t.get<bool>("proj_bias", tc.proj_bias);
  tc.proj_type = t.get<std::string>("proj_type", tc.proj_type);
  tc.layer_norm_eps = norm_eps(t);
  if (tc.pool_type != "argmax" && tc.pool_type != "eos" && tc.pool_type != "first" && tc.pool_type != "last")
    throw InputError("text pool_type '" + tc.pool_type + "' is not supported (argmax, eos, first or last)",
                     t.source());
  if (tc.proj_type != "linear" && tc.proj_type != "none")
    throw InputError("text proj_type '" + tc.proj_type + "' is not supported (linear or none)", t.source());
  if (tc.heads <= 0 || tc.width % tc.heads != 0)
    throw InputError("text width is not a multiple of heads", t.source());
  return c;
}

OpenClipAttentionImpl::OpenClipAttentionImpl(int64_t width, int64_t heads) : heads_(heads) {
  in_proj_weight = register_parameter("in_proj_weight", parameter_tensor({3 * width, width}));
  in_proj_bias = register_parameter("in_proj_bias", parameter_tensor({3 * width}));
  out_proj = register_module("out_proj", make_linear(width, width));
}

at::Tensor OpenClipAttentionImpl::forward(const at::Tensor& x, const at::Tensor& additive_mask) {
  auto qkv = at::linear(x, in_proj_weight, in_proj_bias).chunk(3, -1);  // 3 x [B, L, D]
  auto attn = multi_head_attention(qkv[0], qkv[1], qkv[2], heads_, additive_mask);  // [B, L, D]
  return linear(out_proj, attn);
}

OpenClipLayerScaleImpl::OpenClipLayerScaleImpl(int64_t width, double init_value) {
  gamma = register_parameter("gamma", parameter_tensor({width}, init_value));
}

OpenClipMlpImpl::OpenClipMlpImpl(int64_t width, int64_t mlp_width, ClipActivation act) : act_(act) {
  c_fc = register_module("c_fc", make_linear(width, mlp_width));
  c_proj = register_module("c_proj", make_linear(mlp_width, width));
}

OpenClipResidualBlockImpl::OpenClipResidualBlockImpl(int64_t width, int64_t heads, int64_t mlp_width,
                                                     std::optional<double> ls_init_value, ClipActivation act,
                                                     double eps) {
  auto ln = torch::nn::LayerNormOptions({width}).eps(eps);
  ln_1 = register_module("ln_1", make_layer_norm(ln));
  attn = register_module("attn", OpenClipAttention(width, heads));
  if (ls_init_value) ls_1 = register_module("ls_1", OpenClipLayerScale(width, *ls_init_value));
  ln_2 = register_module("ln_2", make_layer_norm(ln));
  mlp = register_module("mlp", OpenClipMlp(width, mlp_width, act));
  if (ls_init_value) ls_2 = register_module("ls_2", OpenClipLayerScale(width, *ls_init_value));
}

at::Tensor OpenClipResidualBlockImpl::forward(const at::Tensor& x, const at::Tensor& additive_mask) {
  auto a = attn(ln_1(x), additive_mask);  // [B, L, D]
  auto h = x + (ls_1 ? ls_1(a) : a);
  auto m = mlp(ln_2(h));                  // [B, L, D]
  return h + (ls_2 ? ls_2(m) : m);
}

OpenClipTransformerImpl::OpenClipTransformerImpl(int64_t width, int64_t layers, int64_t heads, int64_t mlp_width,
                                                 std::optional<double> ls_init_value, ClipActivation act, double eps) {
  resblocks = register_module("resblocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < layers; ++i)
    resblocks->push_back(OpenClipResidualBlock(width, heads, mlp_width, ls_init_value, act, eps));
}

at::Tensor OpenClipTransformerImpl::forward(const at::Tensor& x, const at::Tensor& additive_mask) {
  auto h = x;
  for (const auto& block : *resblocks) h = block->as<OpenClipResidualBlock>()->forward(h, additive_mask);
  return h;
}

OpenClipVisionTransformerImpl::OpenClipVisionTransformerImpl(const OpenClipVisionConfig& c, int64_t embed_dim,
                                                             ClipActivation act)
    : config_(c) {
  const int64_t grid = c.image_size / c.patch_size;
  conv1 = register_module(
      "conv1", make_conv2d(torch::nn::Conv2dOptions(3, c.width, c.patch_size).stride(c.patch_size).bias(false)));
  class_embedding = register_parameter("class_embedding", parameter_tensor({c.width}));
  positional_embedding = register_parameter("positional_embedding", parameter_tensor({grid * grid + 1, c.width}));
  auto ln = torch::nn::LayerNormOptions({c.width}).eps(c.layer_norm_eps);
  if (!c.no_ln_pre) ln_pre = register_module("ln_pre", make_layer_norm(ln));
  transformer = register_module(
      "transformer", OpenClipTransformer(c.width, c.layers, c.heads(), c.mlp_width(), c.ls_init_value, act, c.layer_norm_eps));
  ln_post = register_module("ln_post", make_layer_norm(ln));
  proj = register_parameter("proj", parameter_tensor({c.width, embed_dim}));
}

at::Tensor OpenClipVisionTransformerImpl::forward(const at::Tensor& pixel_values) {
  const int64_t s = config_.image_size;
  if (pixel_values.dim() != 4 || pixel_values.size(1) != 3 || pixel_values.size(2) != s || pixel_values.size(3) != s)
    throw UsageError("pixel_values must be [batch, 3, " + std::to_string(s) + ", " + std::to_string(s) + "]",
                     "OpenClipModel");
  const int64_t batch = pixel_values.size(0);
  auto x = conv1(pixel_values.to(conv1->weight.scalar_type()));  // [B, D, g, g]
  x = x.flatten(2).permute({0, 2, 1});                           // [B, g*g, D]
  x = at::cat({class_embedding.expand({batch, 1, -1}), x}, 1);   // [B, 1+g*g, D]
  x = x + positional_embedding;                                  // [B, T, D]
  if (ln_pre) x = ln_pre(x);
  x = transformer(x);  // [B, T, D]

  // _pool: ln_post before pooling unless final_ln_after_pool.
  const bool avg = config_.pool_type == "avg";
  auto pool = [&](const at::Tensor& t) { return avg ? t.slice(1, 1).mean(1) : t.select(1, 0); };  // [B, D]
  auto pooled = config_.final_ln_after_pool ? ln_post(pool(x)) : pool(ln_post(x));
  return pooled.matmul(proj);  // [B, E]
}

OpenClipModelImpl::OpenClipModelImpl(const OpenClipConfig& config) : config_(config) {
  const auto& t = config.text_cfg;
  const auto act = config.activation();
  visual = register_module("visual", OpenClipVisionTransformer(config.vision_cfg, config.embed_dim, act));
  transformer = register_module(
      "transformer", OpenClipTransformer(t.width, t.layers, t.heads, t.mlp_width(), t.ls_init_value, act, t.layer_norm_eps));
  token_embedding = register_module("token_embedding", make_embedding(t.vocab_size, t.width));
  positional_embedding = register_parameter("positional_embedding", parameter_tensor({t.context_length, t.width}));
  ln_final = register_module("ln_final", make_layer_norm(torch::nn::LayerNormOptions({t.width}).eps(t.layer_norm_eps)));
  if (t.proj_type != "none" && config.embed_dim > 0) {
    if (t.proj_bias)
      text_projection_linear = register_module("text_projection", make_linear(t.width, config.embed_dim));
    else
      text_projection = register_parameter("text_projection", parameter_tensor({t.width, config.embed_dim}));
  }
  logit_scale = register_parameter("logit_scale", parameter_tensor({}, std::log(1.0 / 0.07)));
  if (config.init_logit_bias) logit_bias = register_parameter("logit_bias", parameter_tensor({}, *config.init_logit_bias));
}

at::Tensor OpenClipModelImpl::encode_image(const at::Tensor& pixel_values) { return visual(pixel_values); }

at::Tensor OpenClipModelImpl::encode_text(const at::Tensor& input_ids) {
  const auto& t = config_.text_cfg;
  if (input_ids.dim() != 2 || input_ids.size(1) > t.context_length)
    throw UsageError("input_ids must be [batch, length <= " + std::to_string(t.context_length) + "]", "OpenClipModel");
  const auto ids = input_ids.to(at::kLong);
  const int64_t batch = ids.size(0), length = ids.size(1);

  auto x = token_embedding(ids) + positional_embedding.slice(0, 0, length);  // [B, L, D]
  at::Tensor mask;
  if (!t.no_causal_mask) mask = causal_attention_mask(length, x.options());  // [1, 1, L, L]
  x = transformer(x, mask);  // [B, L, D]
  x = ln_final(x);           // [B, L, D]

  // text_global_pool
  at::Tensor index;  // [B]
  if (t.pool_type == "argmax")
    index = ids.argmax(-1);
  else if (t.pool_type == "eos")
    index = ids.eq(t.eos_id).to(at::kInt).argmax(-1);
  else
    index = at::full({batch}, t.pool_type == "first" ? 0 : length - 1, ids.options());
  auto rows = at::arange(batch, ids.options());
  auto pooled = x.index({rows, index.to(at::kLong)});  // [B, D]

  if (text_projection_linear) return linear(text_projection_linear, pooled);
  if (text_projection.defined()) return pooled.matmul(text_projection);  // [B, E]
  return pooled;
}

}  // namespace diffbench
