// transformers' CLIPTextModel: the text encoder of Stable Diffusion 1.x/2.x.
//
// The module tree matches the keys transformers >= 5 writes for a stand-alone CLIPTextModel
// (`embeddings.token_embedding.weight`, `encoder.layers.N...`, `final_layer_norm.weight`).
// Older checkpoints (SD1.5's text_encoder/model.safetensors) prefix every key with
// `text_model.` and may carry the `text_model.embeddings.position_ids` buffer; load those with
// clip_text_load_options():
//   LoadOptions{.strip_prefix = "text_model.", .ignore_unexpected = {"embeddings.position_ids"}}
#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/clip_common.hpp"

namespace diffbench {

// CLIPTextConfig; defaults are transformers' defaults.
struct ClipTextConfig {
  int64_t vocab_size = 49408;
  int64_t hidden_size = 512;
  int64_t intermediate_size = 2048;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 8;
  int64_t max_position_embeddings = 77;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;
  int64_t pad_token_id = 1;
  int64_t bos_token_id = 49406;
  int64_t eos_token_id = 49407;

  static ClipTextConfig from_json(const JsonConfig& json);
  ClipEncoderConfig encoder(const std::string& where = {}) const;
};

// The options that load both the prefix-less (transformers >= 5) and the `text_model.`-prefixed
// (older transformers, SD checkpoints) key layouts into a ClipTextModel.
LoadOptions clip_text_load_options();

struct ClipTextOutput {
  at::Tensor last_hidden_state;  // [B, L, D], after final_layer_norm
  at::Tensor pooled;             // [B, D], last_hidden_state at each sequence's EOS token
  // The encoder's output after num_hidden_layers - clip_skip layers, before final_layer_norm
  // (transformers' hidden_states[-1 - clip_skip]; SDXL reads it with clip_skip 1).
  at::Tensor hidden_kept;        // [B, L, D]
  at::Tensor text_embeds;        // [B, projection_dim]: ClipTextModelWithProjection only
};

// CLIPTextEmbeddings: token + learned absolute position embeddings.
class ClipTextEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipTextEmbeddingsImpl(const ClipTextConfig& config);
  at::Tensor forward(const at::Tensor& input_ids);  // [B, L] -> [B, L, D]

 private:
  torch::nn::Embedding token_embedding{nullptr}, position_embedding{nullptr};
};
TORCH_MODULE(ClipTextEmbeddings);

class ClipTextModelImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelImpl(const ClipTextConfig& config);

  // input_ids [B, L] int64 (L <= max_position_embeddings); attention_mask [B, L] of 1/0 or
  // undefined (the causal mask always applies). With clip_skip = k > 0, last_hidden_state is
  // final_layer_norm of the output after num_hidden_layers - k layers (diffusers' clip_skip);
  // pooled always comes from the full stack.
  ClipTextOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}, int64_t clip_skip = 0);

  const ClipTextConfig& config() const { return config_; }

 private:
  ClipTextConfig config_;
  ClipTextEmbeddings embeddings{nullptr};
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm final_layer_norm{nullptr};
};
TORCH_MODULE(ClipTextModel);

// transformers.CLIPTextModelWithProjection (SDXL's text_encoder_2): the text model and a bias-free
// text_projection of its pooled output. Keys: text_model.*, text_projection.weight.
class ClipTextModelWithProjectionImpl : public torch::nn::Module {
 public:
  explicit ClipTextModelWithProjectionImpl(const ClipTextConfig& config);
  // ClipTextModel's output with text_embeds = text_projection(pooled).
  ClipTextOutput forward(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}, int64_t clip_skip = 0);
  const ClipTextConfig& config() const { return text_model->config(); }

 private:
  ClipTextModel text_model{nullptr};
  torch::nn::Linear text_projection{nullptr};
};
TORCH_MODULE(ClipTextModelWithProjection);

// InputError when a token id lies outside [0, vocab_size): a tokenizer whose vocabulary is larger
// than the text encoder's embedding table. `ids` is checked where it is (call it on the host copy).
void check_token_ids(const at::Tensor& ids, int64_t vocab_size, const std::string& where);

}  // namespace diffbench
