#include "diffbench/models/clip_vision.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include <ATen/ATen.h>

#include "diffbench/error.hpp"

namespace diffbench {

ClipVisionConfig ClipVisionConfig::from_json(const JsonConfig& j) {
  ClipVisionConfig c;
  read_encoder_sizes(j, c);
  c.num_channels = j.get_int("num_channels", c.num_channels, 1, 16);
  c.image_size = square_size(j, "image_size", c.image_size);
  c.patch_size = square_size(j, "patch_size", c.patch_size);
  c.hidden_act = j.get<std::string>("hidden_act", c.hidden_act);
  c.layer_norm_eps = j.get<double>("layer_norm_eps", c.layer_norm_eps);
  if (c.patch_size <= 0 || c.image_size % c.patch_size != 0)
    throw InputError("image_size " + std::to_string(c.image_size) + " is not a multiple of patch_size " +
                         std::to_string(c.patch_size),
                     j.source());
  c.encoder(j.source());
  return c;
}

ClipEncoderConfig ClipVisionConfig::encoder(const std::string& where) const {
  return ClipEncoderConfig::from_fields(hidden_size, intermediate_size, num_hidden_layers, num_attention_heads,
                                        layer_norm_eps, hidden_act, where);
}

ClipVisionEmbeddingsImpl::ClipVisionEmbeddingsImpl(const ClipVisionConfig& c) : image_size_(c.image_size) {
  const int64_t grid = c.image_size / c.patch_size;
  class_embedding = register_parameter("class_embedding", parameter_tensor({c.hidden_size}));
  patch_embedding = register_module(
      "patch_embedding",
      make_conv2d(torch::nn::Conv2dOptions(c.num_channels, c.hidden_size, c.patch_size).stride(c.patch_size).bias(false)));
  position_embedding = register_module("position_embedding", make_embedding(grid * grid + 1, c.hidden_size));
}

at::Tensor ClipVisionEmbeddingsImpl::forward(const at::Tensor& pixel_values) {
  if (pixel_values.dim() != 4 || pixel_values.size(2) != image_size_ || pixel_values.size(3) != image_size_)
    throw UsageError("pixel_values must be [batch, channels, " + std::to_string(image_size_) + ", " +
                         std::to_string(image_size_) + "]",
                     "ClipVisionModel");
  const int64_t batch = pixel_values.size(0);
  auto patches = patch_embedding(pixel_values.to(patch_embedding->weight.scalar_type()));  // [B, D, g, g]
  patches = patches.flatten(2).transpose(1, 2);                                             // [B, g*g, D]
  auto cls = class_embedding.expand({batch, 1, -1});                                        // [B, 1, D]
  auto x = at::cat({cls, patches}, 1);                                                      // [B, 1+g*g, D]
  return x + position_embedding->weight.unsqueeze(0);                                       // [B, 1+g*g, D]
}

ClipVisionModelImpl::ClipVisionModelImpl(const ClipVisionConfig& config) : config_(config) {
  auto ln = torch::nn::LayerNormOptions({config.hidden_size}).eps(config.layer_norm_eps);
  embeddings = register_module("embeddings", ClipVisionEmbeddings(config));
  pre_layrnorm = register_module("pre_layrnorm", make_layer_norm(ln));
  encoder = register_module("encoder", ClipEncoder(config.encoder()));
  post_layernorm = register_module("post_layernorm", make_layer_norm(ln));
}

ClipVisionOutput ClipVisionModelImpl::forward(const at::Tensor& pixel_values) {
  auto x = pre_layrnorm(embeddings(pixel_values));  // [B, T, D]
  x = encoder(x);                                   // [B, T, D]
  ClipVisionOutput out;
  out.last_hidden_state = x;
  out.pooled = post_layernorm(x.select(1, 0));  // [B, D]
  return out;
}

}  // namespace diffbench
