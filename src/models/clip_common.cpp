#include "diffbench/models/clip_common.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"

#include <limits>

#include <ATen/ATen.h>

#include "diffbench/error.hpp"

namespace diffbench {

ClipActivation parse_clip_activation(const std::string& name, const std::string& where) {
  if (name == "quick_gelu") return ClipActivation::QuickGelu;
  if (name == "gelu") return ClipActivation::Gelu;
  if (name == "gelu_new" || name == "gelu_pytorch_tanh" || name == "gelu_fast") return ClipActivation::GeluTanh;
  throw InputError("unsupported hidden_act '" + name + "' (expected quick_gelu, gelu, gelu_new or gelu_pytorch_tanh)",
                   where);
}

ClipEncoderConfig ClipEncoderConfig::from_fields(int64_t hidden_size, int64_t intermediate_size,
                                                 int64_t num_hidden_layers, int64_t num_attention_heads,
                                                 double layer_norm_eps, const std::string& hidden_act,
                                                 const std::string& where) {
  if (num_attention_heads <= 0 || hidden_size % num_attention_heads != 0)
    throw InputError("hidden_size " + std::to_string(hidden_size) + " is not divisible by num_attention_heads " +
                         std::to_string(num_attention_heads),
                     where);
  ClipEncoderConfig e;
  e.hidden_size = hidden_size;
  e.intermediate_size = intermediate_size;
  e.num_hidden_layers = num_hidden_layers;
  e.num_attention_heads = num_attention_heads;
  e.layer_norm_eps = layer_norm_eps;
  e.hidden_act = parse_clip_activation(hidden_act, where);
  return e;
}

at::Tensor apply_activation(const at::Tensor& x, ClipActivation act) {
  switch (act) {
    case ClipActivation::QuickGelu:
      return x * at::sigmoid(1.702 * x);
    case ClipActivation::Gelu:
      return at::gelu(x);
    case ClipActivation::GeluTanh:
      return at::gelu(x, "tanh");
  }
  return x;
}

at::Tensor multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                const at::Tensor& additive_mask) {
  const int64_t b = q.size(0), lq = q.size(1), lk = k.size(1), d = q.size(2);
  const int64_t hd = d / heads;
  auto qh = q.view({b, lq, heads, hd}).transpose(1, 2);  // [B, H, Lq, hd]
  auto kh = k.view({b, lk, heads, hd}).transpose(1, 2);  // [B, H, Lk, hd]
  auto vh = v.view({b, lk, heads, hd}).transpose(1, 2);  // [B, H, Lk, hd]
  std::optional<at::Tensor> mask;
  if (additive_mask.defined()) mask = additive_mask.to(q.scalar_type());
  auto out = at::scaled_dot_product_attention(qh, kh, vh, mask);  // [B, H, Lq, hd]
  return out.transpose(1, 2).reshape({b, lq, d});                 // [B, Lq, D]
}

at::Tensor causal_attention_mask(int64_t length, const at::TensorOptions& options, const at::Tensor& key_padding_mask) {
  const auto dtype = c10::typeMetaToScalarType(options.dtype());
  const double lowest = dtype == at::kDouble ? std::numeric_limits<double>::lowest()
                        : dtype == at::kHalf ? -65504.0
                        : dtype == at::kBFloat16 ? -3.3895313892515355e38
                                                 : static_cast<double>(std::numeric_limits<float>::lowest());
  auto blocked = at::ones({length, length}, options.dtype(at::kBool)).triu(1);  // [L, L], true above the diagonal
  blocked = blocked.view({1, 1, length, length});
  if (key_padding_mask.defined()) {
    auto pad = key_padding_mask.to(options.device()).eq(0);                      // [B, L], true at padding
    blocked = blocked.logical_or(pad.view({pad.size(0), 1, 1, length}));        // [B, 1, L, L]
  }
  return at::zeros(blocked.sizes(), options).masked_fill(blocked, lowest);
}

ClipAttentionImpl::ClipAttentionImpl(const ClipEncoderConfig& c) : heads_(c.num_attention_heads) {
  if (c.hidden_size % c.num_attention_heads != 0)
    throw InputError("hidden_size " + std::to_string(c.hidden_size) + " is not divisible by num_attention_heads " +
                     std::to_string(c.num_attention_heads));
  k_proj = register_module("k_proj", make_linear(c.hidden_size, c.hidden_size));
  v_proj = register_module("v_proj", make_linear(c.hidden_size, c.hidden_size));
  q_proj = register_module("q_proj", make_linear(c.hidden_size, c.hidden_size));
  out_proj = register_module("out_proj", make_linear(c.hidden_size, c.hidden_size));
}

at::Tensor ClipAttentionImpl::forward(const at::Tensor& x, const at::Tensor& additive_mask) {
  // x: [B, L, D]
  auto attn =
      multi_head_attention(linear(q_proj, x), linear(k_proj, x), linear(v_proj, x), heads_, additive_mask);  // [B, L, D]
  return linear(out_proj, attn);
}

ClipMlpImpl::ClipMlpImpl(const ClipEncoderConfig& c) : act_(c.hidden_act) {
  fc1 = register_module("fc1", make_linear(c.hidden_size, c.intermediate_size));
  fc2 = register_module("fc2", make_linear(c.intermediate_size, c.hidden_size));
}

at::Tensor ClipMlpImpl::forward(const at::Tensor& x) { return linear(fc2, apply_activation(linear(fc1, x), act_)); }

ClipEncoderLayerImpl::ClipEncoderLayerImpl(const ClipEncoderConfig& c) {
  auto ln = torch::nn::LayerNormOptions({c.hidden_size}).eps(c.layer_norm_eps);
  self_attn = register_module("self_attn", ClipAttention(c));
  layer_norm1 = register_module("layer_norm1", make_layer_norm(ln));
  mlp = register_module("mlp", ClipMlp(c));
  layer_norm2 = register_module("layer_norm2", make_layer_norm(ln));
}

at::Tensor ClipEncoderLayerImpl::forward(const at::Tensor& x, const at::Tensor& additive_mask) {
  auto h = x + self_attn(layer_norm1(x), additive_mask);  // [B, L, D]
  return h + mlp(layer_norm2(h));                         // [B, L, D]
}

ClipEncoderImpl::ClipEncoderImpl(const ClipEncoderConfig& c) {
  layers = register_module("layers", torch::nn::ModuleList());
  for (int64_t i = 0; i < c.num_hidden_layers; ++i) layers->push_back(ClipEncoderLayer(c));
}

at::Tensor ClipEncoderImpl::forward(const at::Tensor& hidden_states, const at::Tensor& additive_mask) {
  at::Tensor unused;
  return forward_keep(hidden_states, additive_mask, -1, unused);
}

at::Tensor ClipEncoderImpl::forward_keep(const at::Tensor& hidden_states, const at::Tensor& additive_mask,
                                         int64_t stop_after, at::Tensor& kept) {
  auto h = hidden_states;
  if (stop_after == 0) kept = h;
  int64_t done = 0;
  for (const auto& layer : *layers) {
    h = layer->as<ClipEncoderLayer>()->forward(h, additive_mask);
    if (++done == stop_after) kept = h;
  }
  return h;
}

}  // namespace diffbench
