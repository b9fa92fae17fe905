// Writing a diffusers folder with random weights, so speed can be measured without a download.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

namespace diffbench {

struct RandomPipelineOptions {
  std::string arch = "tiny";               // "sd15": the SD 1.5 topology at full size; "tiny": a small one
  uint64_t seed = 0;
  std::filesystem::path tokenizer;         // folder with vocab.json + merges.txt (or tokenizer.json)
  at::ScalarType weights_dtype = at::kFloat;
  std::string prediction_type = "epsilon"; // or "v_prediction" (written into the scheduler config)
};

// model_index.json of a Stable Diffusion 1.x folder as this project writes them: PNDM scheduler, CLIP
// text encoder and tokenizer, UNet, VAE; no safety checker, feature extractor or image encoder.
nlohmann::json sd_model_index();

// Writes model_index.json, scheduler/, tokenizer/, text_encoder/, unet/ and vae/ into `out`
// (which must not exist or be empty). Weights are drawn from a generator seeded `seed`.
void write_random_pipeline(const std::filesystem::path& out, const RandomPipelineOptions& options);

}  // namespace diffbench
