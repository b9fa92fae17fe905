#include "diffbench/models/clip_model.hpp"
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

}  // namespace

ClipConfig ClipConfig::from_json(const JsonConfig& j) {
  const auto model_type = j.get<std::string>("model_type", "clip");
  if (model_type != "clip")
    throw InputError("expected a CLIPModel config (model_type 'clip'), got model_type '" + model_type + "'",
                     j.source());
  ClipConfig c;
  c.text_config = ClipTextConfig::from_json(sub_config(j, "text_config"));
  c.vision_config = ClipVisionConfig::from_json(sub_config(j, "vision_config"));
  c.projection_dim = j.get<int64_t>("projection_dim", c.projection_dim);
  c.logit_scale_init_value = j.get<double>("logit_scale_init_value", c.logit_scale_init_value);
  return c;
}

ClipModelImpl::ClipModelImpl(const ClipConfig& config) : config_(config) {
  text_model = register_module("text_model", ClipTextModel(config.text_config));
  vision_model = register_module("vision_model", ClipVisionModel(config.vision_config));
  visual_projection = register_module(
      "visual_projection",
      make_linear(torch::nn::LinearOptions(config.vision_config.hidden_size, config.projection_dim).bias(false)));
  text_projection = register_module(
      "text_projection",
      make_linear(torch::nn::LinearOptions(config.text_config.hidden_size, config.projection_dim).bias(false)));
  logit_scale = register_parameter("logit_scale", parameter_tensor({}, config.logit_scale_init_value));
}

at::Tensor ClipModelImpl::get_text_features(const at::Tensor& input_ids, const at::Tensor& attention_mask) {
  auto pooled = text_model(input_ids, attention_mask).pooled;  // [B, Dt]
  return linear(text_projection, pooled);                       // [B, E]
}

at::Tensor ClipModelImpl::get_image_features(const at::Tensor& pixel_values) {
  auto pooled = vision_model(pixel_values).pooled;  // [B, Dv]
  return linear(visual_projection, pooled);          // [B, E]
}

}  // namespace diffbench
