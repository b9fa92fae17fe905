// transformers' CLIPVisionModel (ViT image tower). Key names as transformers >= 5 writes a
// stand-alone CLIPVisionModel (`embeddings.patch_embedding.weight`, `pre_layrnorm.weight`, ...);
// inside a CLIPModel the same tree sits under `vision_model.`.
#pragma once

#include <cstdint>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/models/clip_common.hpp"

namespace diffbench {

// CLIPVisionConfig; defaults are transformers' defaults.
struct ClipVisionConfig {
  int64_t hidden_size = 768;
  int64_t intermediate_size = 3072;
  int64_t projection_dim = 512;
  int64_t num_hidden_layers = 12;
  int64_t num_attention_heads = 12;
  int64_t num_channels = 3;
  int64_t image_size = 224;
  int64_t patch_size = 32;
  std::string hidden_act = "quick_gelu";
  double layer_norm_eps = 1e-5;

  static ClipVisionConfig from_json(const JsonConfig& json);
  ClipEncoderConfig encoder(const std::string& where = {}) const;
};

struct ClipVisionOutput {
  at::Tensor last_hidden_state;  // [B, 1 + patches, D], encoder output (no post_layernorm)
  at::Tensor pooled;             // [B, D], post_layernorm of the class token
};

// CLIPVisionEmbeddings: class token + non-overlapping patch convolution + learned positions.
class ClipVisionEmbeddingsImpl : public torch::nn::Module {
 public:
  explicit ClipVisionEmbeddingsImpl(const ClipVisionConfig& config);
  at::Tensor forward(const at::Tensor& pixel_values);  // [B, C, S, S] -> [B, 1 + (S/P)^2, D]

 private:
  int64_t image_size_;
  at::Tensor class_embedding;
  torch::nn::Conv2d patch_embedding{nullptr};
  torch::nn::Embedding position_embedding{nullptr};
};
TORCH_MODULE(ClipVisionEmbeddings);

class ClipVisionModelImpl : public torch::nn::Module {
 public:
  explicit ClipVisionModelImpl(const ClipVisionConfig& config);
  // pixel_values [B, C, image_size, image_size], normalised.
  ClipVisionOutput forward(const at::Tensor& pixel_values);
  const ClipVisionConfig& config() const { return config_; }

 private:
  ClipVisionConfig config_;
  ClipVisionEmbeddings embeddings{nullptr};
  torch::nn::LayerNorm pre_layrnorm{nullptr};  // sic: transformers' attribute name
  ClipEncoder encoder{nullptr};
  torch::nn::LayerNorm post_layernorm{nullptr};
};
TORCH_MODULE(ClipVisionModel);

}  // namespace diffbench
