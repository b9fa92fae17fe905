// One interface over the CLIP layouts a CLIP score can come from: a transformers CLIPModel folder
// (config.json + model.safetensors) or an open_clip folder (open_clip_config.json +
// open_clip_model.safetensors).
#pragma once

#include <array>
#include <filesystem>
#include <memory>
#include <string>

#include <ATen/ATen.h>
#include <torch/nn/module.h>

namespace diffbench {

// OpenAI CLIP's normalisation, the default of both libraries.
inline constexpr std::array<double, 3> kOpenAiClipMean = {0.48145466, 0.4578275, 0.40821073};
inline constexpr std::array<double, 3> kOpenAiClipStd = {0.26862954, 0.26130258, 0.27577711};

// What the image preprocessing must produce: RGB resized (bicubic) so the shorter side is
// `size`, centre-cropped to size x size, scaled to [0, 1], then (x - mean) / std per channel.
struct ClipImageSpec {
  int size = 224;
  std::array<double, 3> mean = kOpenAiClipMean;
  std::array<double, 3> std = kOpenAiClipStd;
};

class ClipScorerModel {
 public:
  virtual ~ClipScorerModel() = default;

  // pixel_values [B, 3, size, size] (normalised per image_spec()) -> [B, E], projected, not normalised.
  virtual at::Tensor image_features(const at::Tensor& pixel_values) = 0;
  // input_ids [B, L] int64 (L <= context_length()), attention_mask [B, L] of 1/0 or undefined
  // (open_clip ignores it) -> [B, E], projected, not normalised.
  virtual at::Tensor text_features(const at::Tensor& input_ids, const at::Tensor& attention_mask = {}) = 0;

  virtual ClipImageSpec image_spec() const = 0;
  virtual int64_t context_length() const = 0;
  // "transformers" or "open_clip". The tokenizers differ only in padding: transformers pads with
  // <|endoftext|> (49407), open_clip with 0; both pool at the first <|endoftext|>.
  virtual std::string layout() const = 0;
  virtual torch::nn::Module& module() = 0;

  // Moves the weights; inputs are moved to the weights' device and dtype on each call.
  void to(const at::Device& device, at::ScalarType dtype) { module().to(device, dtype); }
};

// Detects the layout of `dir`, builds the model from its config, loads its safetensors weights
// and reads the preprocessing constants (processor_config.json / preprocessor_config.json for
// transformers, preprocess_cfg for open_clip; OpenAI defaults otherwise). A folder holding only
// pickle weights (pytorch_model.bin, open_clip_pytorch_model.bin) is an InputError saying how to
// convert them; pickles are never loaded. The folder "demo" is the bundled demo scorer (io/assets.hpp).
// `target`: the device and dtype its parameters are made in and loaded into (float32 CPU by default).
std::unique_ptr<ClipScorerModel> load_clip_scorer(const std::filesystem::path& dir,
                                                  const at::TensorOptions& target = at::TensorOptions());

}  // namespace diffbench
