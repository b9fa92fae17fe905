// Pieces shared by the CLIP text and vision towers in transformers' layout (CLIPEncoder and
// its layers), plus the attention and activation helpers the open_clip layout reuses.
#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"

namespace diffbench {

// A config's image_size / patch_size: an integer or a square [n, n] pair (transformers and open_clip
// both write either), in [1, 4096]; `fallback` when absent.
int64_t square_size(const JsonConfig& config, const std::string& key, int64_t fallback);

// The object under `key` (text_config, vision_config, ...) as a config of its own, its source naming
// the key; an empty one when absent, an InputError when not an object.
JsonConfig sub_config(const JsonConfig& config, const std::string& key);

// The transformer sizes the text and vision configs share, read with the same bounds (far above any
// real CLIP, so that a typo fails when read rather than as a crash or a huge allocation).
template <typename Config>
void read_encoder_sizes(const JsonConfig& j, Config& c) {
  c.hidden_size = j.get_int("hidden_size", c.hidden_size, 1, 16384);
  c.intermediate_size = j.get_int("intermediate_size", c.intermediate_size, 1, 65536);
  c.projection_dim = j.get_int("projection_dim", c.projection_dim, 1, 16384);
  c.num_hidden_layers = j.get_int("num_hidden_layers", c.num_hidden_layers, 1, 256);
  c.num_attention_heads = j.get_int("num_attention_heads", c.num_attention_heads, 1, 1024);
}

// transformers' ACT2FN names used by CLIP configs.
enum class ClipActivation {
  QuickGelu,  // "quick_gelu": x * sigmoid(1.702 x) (OpenAI CLIP, SD1.x)
  Gelu,       // "gelu": exact erf GELU (OpenCLIP-trained encoders, SD2.x)
  GeluTanh,   // "gelu_new", "gelu_pytorch_tanh", "gelu_fast": tanh approximation
};

// Parses a `hidden_act` value; an unknown name is an InputError naming `where`.
ClipActivation parse_clip_activation(const std::string& name, const std::string& where);
at::Tensor apply_activation(const at::Tensor& x, ClipActivation act);

// Scaled dot-product attention over projected q, k, v of shape [B, L, D] split into `heads`.
// `additive_mask` (optional) broadcasts to [B, heads, Lq, Lk]. Returns [B, Lq, D].
at::Tensor multi_head_attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t heads,
                                const at::Tensor& additive_mask = {});

// Additive mask [1, 1, L, L] (or [B, 1, L, L] with a key padding mask [B, L] of 1 = keep, 0 = pad):
// 0 where a query may attend, the lowest finite value of `dtype` where it may not.
at::Tensor causal_attention_mask(int64_t length, const at::TensorOptions& options,
                                 const at::Tensor& key_padding_mask = {});

// Hyper-parameters of one CLIPEncoder stack (text or vision).
struct ClipEncoderConfig {
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  double layer_norm_eps = 1e-5;
  ClipActivation hidden_act = ClipActivation::QuickGelu;

  // From a transformers text or vision config's fields; an activation it does not know or a
  // hidden size the heads do not divide is an InputError naming `where`.
  static ClipEncoderConfig from_fields(int64_t hidden_size, int64_t intermediate_size, int64_t num_hidden_layers,
                                       int64_t num_attention_heads, double layer_norm_eps,
                                       const std::string& hidden_act, const std::string& where);
};

// CLIPAttention: separate q/k/v projections, head_dim^-0.5 scaling.
class ClipAttentionImpl : public torch::nn::Module {
 public:
  explicit ClipAttentionImpl(const ClipEncoderConfig& config);
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& additive_mask = {});

 private:
  int64_t heads_;
  torch::nn::Linear k_proj{nullptr}, v_proj{nullptr}, q_proj{nullptr}, out_proj{nullptr};
};
TORCH_MODULE(ClipAttention);

// CLIPMLP: fc1 -> activation -> fc2.
class ClipMlpImpl : public torch::nn::Module {
 public:
  explicit ClipMlpImpl(const ClipEncoderConfig& config);
  at::Tensor forward(const at::Tensor& x);

 private:
  ClipActivation act_;
  torch::nn::Linear fc1{nullptr}, fc2{nullptr};
};
TORCH_MODULE(ClipMlp);

// CLIPEncoderLayer: pre-norm residual attention and MLP.
class ClipEncoderLayerImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderLayerImpl(const ClipEncoderConfig& config);
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& additive_mask = {});

 private:
  ClipAttention self_attn{nullptr};
  torch::nn::LayerNorm layer_norm1{nullptr};
  ClipMlp mlp{nullptr};
  torch::nn::LayerNorm layer_norm2{nullptr};
};
TORCH_MODULE(ClipEncoderLayer);

// CLIPEncoder: `layers.N`.
class ClipEncoderImpl : public torch::nn::Module {
 public:
  explicit ClipEncoderImpl(const ClipEncoderConfig& config);
  at::Tensor forward(const at::Tensor& hidden_states, const at::Tensor& additive_mask = {});
  // Runs every layer like forward(); `kept` receives the hidden states after the first
  // `stop_after` layers (transformers' hidden_states[stop_after]).
  at::Tensor forward_keep(const at::Tensor& hidden_states, const at::Tensor& additive_mask, int64_t stop_after,
                          at::Tensor& kept);
  int64_t num_layers() const { return static_cast<int64_t>(layers->size()); }

 private:
  torch::nn::ModuleList layers{nullptr};
};
TORCH_MODULE(ClipEncoder);

}  // namespace diffbench
