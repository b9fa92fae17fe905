// The demo models' shapes and their on-disk layouts: a transformers CLIPModel folder (the scorer,
// whose text tower also conditions the UNet) and a diffusers StableDiffusionPipeline folder
// (CLIPTextModel text encoder, AutoencoderKL with 8× down-sampling, UNet2DConditionModel of the
// SD1.x topology, PNDM scheduler), both with the demo's own BPE vocabulary.
#pragma once

#include <cstdint>
#include <filesystem>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/demo/vocab.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/models/clip_model.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/models/vae.hpp"

namespace diffbench::demo {

// Widths and depths. standard() is what train-demo builds by default; tiny() is for quick tests.
struct DemoArch {
  int64_t text_hidden = 128, text_layers = 4, text_heads = 4, text_intermediate = 512;
  int64_t vision_hidden = 128, vision_layers = 4, vision_heads = 4, vision_intermediate = 512, patch_size = 8;
  int64_t projection_dim = 128;
  std::vector<int64_t> vae_channels = {32, 64, 64, 128};
  int64_t vae_layers_per_block = 1;
  int64_t vae_norm_groups = 16;
  std::vector<int64_t> unet_channels = {64, 128, 128, 128};
  int64_t unet_layers_per_block = 2;
  int64_t unet_heads = 4;
  int64_t unet_norm_groups = 16;

  static DemoArch standard() { return {}; }
  static DemoArch tiny();
};

// config.json of the CLIPModel scorer (image_size 64, the vocabulary's special-token ids).
nlohmann::json clip_config(const DemoArch& arch, const BpeVocab& vocab);
// processor_config.json: CLIPImageProcessor at 64 pixels (no resize for the demo's pictures).
nlohmann::json clip_processor_config();
// config.json of the pipeline's CLIPTextModel (the scorer's text tower).
nlohmann::json text_encoder_config(const DemoArch& arch, const BpeVocab& vocab);
nlohmann::json vae_config(const DemoArch& arch, double scaling_factor);
nlohmann::json unet_config(const DemoArch& arch);
// SD1.5's PNDM scheduler config.
nlohmann::json scheduler_config();

// Parameters and buffers of `module` as a state dict, floating-point tensors cast to `dtype`,
// keys prefixed with `prefix`.
StateDict module_state(torch::nn::Module& module, at::ScalarType dtype, const std::string& prefix = {});

// Writes DIR/{config.json, processor_config.json, model.safetensors, vocab.json, merges.txt, ...}.
void write_clip_folder(const std::filesystem::path& dir, ClipModel& clip, const nlohmann::json& config,
                       const BpeVocab& vocab, at::ScalarType dtype);

// Writes the diffusers folder DIR (model_index.json, scheduler/, tokenizer/, text_encoder/, vae/,
// unet/); the text encoder is the CLIP model's text tower.
void write_sd_folder(const std::filesystem::path& dir, ClipModel& clip, AutoencoderKL& vae, UNet2DConditionModel& unet,
                     const DemoArch& arch, const BpeVocab& vocab, double scaling_factor, at::ScalarType dtype);

}  // namespace diffbench::demo
