// Single-file checkpoints in the original layout (CompVis / Stability): model.diffusion_model.*,
// first_stage_model.*, and cond_stage_model.transformer.* (SD 1.x, OpenAI CLIP as transformers saves
// it) or cond_stage_model.model.* (SD 2.x, the open_clip text tower). One key table per component maps
// the original names onto the diffusers names the engine's modules carry (models/), so a single file
// loads into the same UNet, VAE and text encoder as a diffusers folder; no second implementation.
// The configuration is read from the tensors, as diffusers' from_single_file infers it; what the
// weights cannot tell (attention heads, norm groups, image size, prediction type) takes the family's
// defaults, or comes from a diffusers folder given as `config` (from_single_file(..., config=DIR)).
//
// SDXL (conditioner.embedders.0.transformer.* and conditioner.embedders.1.model.*) fits the same
// table: a family with two text-encoder components, the second with open_clip's rules, and the UNet's
// label_emb (the added conditioning) as add_embedding.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/io/safetensors.hpp"

namespace diffbench {

enum class CheckpointFamily { SD1, SD2, SDXL };
std::string to_string(CheckpointFamily family);

// One rename: a key starting with `original` becomes `diffusers` + the rest of the key.
struct KeyRule {
  enum class Transform {
    None,
    SplitQkv,   // open_clip's attn.in_proj_{weight,bias}: rows [q; k; v] -> q_proj, k_proj, v_proj
    Squeeze1x1  // a 1x1 convolution's [O, I, 1, 1] weight held by a linear layer as [O, I]
  };
  std::string original;
  std::string diffusers;
  Transform transform = Transform::None;
};

// The layout facts a key table depends on, read from the checkpoint's tensors.
struct UNetLayout {
  int blocks = 0;             // down (and up) blocks
  int layers_per_block = 0;   // resnets per down block (up blocks have one more)
  std::vector<bool> attention;  // per down block: has cross-attention (up blocks: the reverse)
};
struct VaeLayout {
  int blocks = 0;
  int layers_per_block = 0;   // encoder resnets per block (decoder: one more)
};

// A component's keys in the checkpoint: under `prefix`, renamed by `rules` (longest original prefix
// wins; a key no rule matches keeps its name), minus `ignored` (exact keys or prefixes ending in '.').
struct ComponentKeys {
  std::string component;  // "unet", "vae", "text_encoder", "text_encoder_2" (SDXL)
  std::string prefix;     // "model.diffusion_model.", ...
  std::vector<KeyRule> rules;
  std::vector<std::string> ignored;
};

// The table of a family: one ComponentKeys per component. `text_layers`: the open_clip text tower's
// layers as stored (SD 2.x keeps all of open_clip's; the last is skipped, as Stability's
// penultimate-layer conditioning does, and the tower's ln_final is applied to the layer before it;
// SDXL's second encoder uses them all).
std::vector<ComponentKeys> checkpoint_keys(CheckpointFamily family, const UNetLayout& unet, const VaeLayout& vae,
                                           int text_layers);

// A key under a component (prefix already removed) in diffusers' naming, by `rules`: one name, or
// three for a SplitQkv rule (q, k, v). `transform` receives the rule's transform.
std::vector<std::string> to_diffusers(const std::vector<KeyRule>& rules, const std::string& key,
                                      KeyRule::Transform* transform = nullptr);
// The inverse, for writing original-layout files (tests) and reading LoRAs named after the original
// modules: the original key of a diffusers name; a SplitQkv name maps to the joined in_proj key.
std::string to_original(const std::vector<KeyRule>& rules, const std::string& diffusers_key,
                        KeyRule::Transform* transform = nullptr);

struct SingleFileOptions {
  std::string prediction_type;            // "epsilon" / "v_prediction"; "" = the family's default
  std::filesystem::path config_dir;       // a diffusers folder whose configs (and tokenizer) are used
};

// An opened single-file checkpoint: each component's configuration and its tensors under diffusers'
// names (views of the file: the bytes are read when the component loads).
struct SingleFileCheckpoint {
  std::filesystem::path file;
  CheckpointFamily family = CheckpointFamily::SD1;
  std::shared_ptr<const SafetensorsFile> handle;
  nlohmann::json unet_config, vae_config, text_config, scheduler_config;
  nlohmann::json text_config_2;           // SDXL: text_encoder_2's (CLIPTextModelWithProjection)
  std::filesystem::path tokenizer_dir;    // assets/clip-tokenizer unless config_dir has a tokenizer/
  std::string pad_token;                  // the family's pad token for that tokenizer ("" = its own)
  std::filesystem::path tokenizer_2_dir;  // SDXL: as tokenizer_dir, for tokenizer_2/
  std::string pad_token_2;                // SDXL: "!" for the shipped tokenizer, as Stability's
  // SDXL: open_clip's text_projection is stored as [width, projection] (x @ P), the transpose of
  // transformers' text_projection.weight; its bytes load as [projection, width] and the loader
  // transposes them (diffusers' conversion script writes text_projection.weight as it is: false).
  bool text_projection_transposed = false;
  std::string config_source;              // where the configs came from: "inferred" or config_dir
  // Per component ("unet", "vae", "text_encoder", SDXL's "text_encoder_2"): the tensors under their
  // diffusers names.
  std::map<std::string, std::vector<TensorInfo>> tensors;
  std::vector<std::string> ignored;       // keys not loaded (EMA copies, schedule buffers, ...), for the log

  std::vector<CheckpointPart> parts(const std::string& component) const;
};

// True when `path` names a file to be read as a single-file checkpoint (.safetensors, .ckpt, ...),
// rather than a diffusers folder.
bool is_single_file(const std::filesystem::path& path);

// Opens and maps a checkpoint. Pickle files (.ckpt, .pt, .pth, .bin) are refused with the one-line
// conversion; an unknown layout, or an SD 2.x file without a prediction type, is a ModelError.
SingleFileCheckpoint open_single_file(const std::filesystem::path& file, const SingleFileOptions& options = {});

}  // namespace diffbench
