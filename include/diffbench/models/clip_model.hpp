// transformers' CLIPModel: text and vision towers with their projections (CLIP score).
// Keys: `text_model.*`, `vision_model.*`, `text_projection.weight`, `visual_projection.weight`,
// `logit_scale`.
#pragma once

#include <cstdint>

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/models/clip_vision.hpp"

namespace diffbench {

// CLIPConfig: the two tower configs plus the shared projection width.
struct ClipConfig {
  ClipTextConfig text_config;
  ClipVisionConfig vision_config;
  int64_t projection_dim = 512;
  double logit_scale_init_value = 2.6592;

  static ClipConfig from_json(const JsonConfig& json);
};

class ClipModelImpl : public torch::nn::Module {
 public:
  explicit ClipModelImpl(const ClipConfig& config);

  // Projected pooled text output [B, projection_dim], not normalised (get_text_features).
  at::Tensor get_text_features(const at::Tensor& input_ids, const at::Tensor& attention_mask = {});
  // Projected pooled image output [B, projection_dim], not normalised (get_image_features).
  at::Tensor get_image_features(const at::Tensor& pixel_values);

  const ClipConfig& config() const { return config_; }
  ClipTextModel& text_tower() { return text_model; }
  ClipVisionModel& vision_tower() { return vision_model; }

 private:
  ClipConfig config_;
  ClipTextModel text_model{nullptr};
  ClipVisionModel vision_model{nullptr};
  torch::nn::Linear visual_projection{nullptr};
  torch::nn::Linear text_projection{nullptr};
  at::Tensor logit_scale;
};
TORCH_MODULE(ClipModel);

}  // namespace diffbench
