// LoRA files fused into a pipeline's weights when it loads (W += scale · alpha/rank · up·down), so the
// denoiser runs exactly as without a LoRA: accelerations and timings see an ordinary model.
// Formats: kohya / A1111 (lora_unet_*, lora_te_* (SDXL: lora_te1_*, lora_te2_*) with .lora_down.weight,
// .lora_up.weight, .alpha;
// the flattened module names may be diffusers' or, for the UNet, the original layout's) and
// diffusers / PEFT (unet.* / text_encoder.* / text_encoder_2.* with .lora_A.weight / .lora_B.weight, alpha and rank from
// the file's lora_adapter_metadata as diffusers' save_lora_weights writes it, else alpha = rank).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/pipeline/single_file.hpp"

namespace torch::nn {
class Module;
}

namespace diffbench {

// One [[lora]] table of a spec, or one load_lora_weights + fuse_lora(lora_scale=...) of a .py file.
struct LoraSpec {
  std::filesystem::path file;
  double scale = 1.0;
  bool operator==(const LoraSpec& o) const { return file == o.file && scale == o.scale; }
};

// A component the LoRA may touch: its name ("unet", "text_encoder", "text_encoder_2"), its module
// (parameter names as the engine's, e.g. without "text_model." for the text encoders; null for a
// component reused from an earlier load that already holds the same LoRAs: its layers are skipped),
// and for the UNet the original-layout key rules, so kohya names taken from an original checkpoint
// resolve too.
struct LoraComponent {
  std::string name;
  torch::nn::Module* module = nullptr;
  std::vector<KeyRule> original_rules;
};

// Adds every LoRA of `loras`, in order, into the components' weights. A key that names no layer of the
// model, a pair with only one half, or a shape that does not fit its layer is a ModelError naming the
// file and the first few keys. Returns, per LoRA, {file, scale, format, layers: {component: count}}.
nlohmann::json fuse_loras(const std::vector<LoraSpec>& loras, const std::vector<LoraComponent>& components);

// The UNet's original-layout key rules for a diffusers UNet config (for LoraComponent).
struct UNetConfig;
std::vector<KeyRule> unet_original_rules(const UNetConfig& config);

}  // namespace diffbench
