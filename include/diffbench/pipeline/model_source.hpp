// Where a Stable Diffusion pipeline's parts come from, whatever the layout: a diffusers folder
// (io/diffusers_folder.hpp) or a single original-layout checkpoint (pipeline/single_file.hpp), plus the
// LoRAs fused into it. The loader, the evaluator's same-model check and its memory estimate all read
// a model through this, so a single file or a LoRA is one model to all of them.
#pragma once

#include <filesystem>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/io/safetensors.hpp"
#include "diffbench/log.hpp"
#include "diffbench/pipeline/lora.hpp"
#include "diffbench/pipeline/single_file.hpp"

namespace diffbench {

struct ModelSourceOptions {
  std::string variant;                 // diffusers folders: the weights variant to prefer
  std::string prediction_type;         // over the scheduler config's ("" = keep it)
  std::filesystem::path config_dir;    // single files: a diffusers folder whose configs are used
};

struct ComponentSource {
  std::filesystem::path weights;       // the file its tensors are read from (the checkpoint for a single file)
  nlohmann::json config;               // its config.json, read or inferred
  std::string config_source;           // where the config came from, for errors
  std::vector<CheckpointPart> parts;   // the tensors under diffusers' names (empty: weights as they are)
};

class ModelSource {
 public:
  // A folder is opened as a diffusers pipeline, a file as a single-file checkpoint (see those headers
  // for the errors).
  static ModelSource open(const std::filesystem::path& model, const ModelSourceOptions& options = {},
                          const Logger& log = Logger::silent());
  // Movable, not copyable: a single file's parts point into its own tensor lists.
  ModelSource(ModelSource&&) = default;
  ModelSource& operator=(ModelSource&&) = default;
  ModelSource(const ModelSource&) = delete;
  ModelSource& operator=(const ModelSource&) = delete;

  const std::filesystem::path& path() const { return path_; }
  bool single_file() const { return single_.has_value(); }
  // "StableDiffusionPipeline" (the folder's model_index.json, or "SD 1.x single file" / "SD 2.x ..." /
  // "SDXL single file").
  const std::string& pipeline_class() const { return pipeline_class_; }
  // "text_encoder", "unet", "vae", and "text_encoder_2" where the folder has one (SDXL)
  const ComponentSource& component(const std::string& name) const;
  bool has_component(const std::string& name) const { return components_.count(name) != 0; }
  const std::filesystem::path& tokenizer_dir() const { return tokenizer_dir_; }
  const std::string& pad_token() const { return pad_token_; }  // "" = the tokenizer's own
  // SDXL's second tokenizer (empty path otherwise) and its pad token ("" = the tokenizer's own).
  const std::filesystem::path& tokenizer_2_dir() const { return tokenizer_2_dir_; }
  const std::string& pad_token_2() const { return pad_token_2_; }
  // SDXL single files: text_encoder_2's text_projection is open_clip's transposed matrix.
  bool text_projection_transposed() const { return text_projection_transposed_; }
  // model_index.json's (true for single files, as SDXL base's).
  bool force_zeros_for_empty_prompt() const { return force_zeros_for_empty_prompt_; }
  // An SDXL pipeline: a StableDiffusionXLPipeline folder or an SDXL single file.
  bool sdxl() const { return has_component("text_encoder_2"); }
  const nlohmann::json& scheduler_config() const { return scheduler_config_; }
  const std::string& scheduler_source() const { return scheduler_source_; }
  // What the load report says about the source: {"layout": "diffusers" | "single_file", ...}.
  nlohmann::json describe() const;

 private:
  ModelSource() = default;
  std::filesystem::path path_;
  std::optional<SingleFileCheckpoint> single_;
  std::string pipeline_class_;
  std::map<std::string, ComponentSource> components_;
  std::filesystem::path tokenizer_dir_;
  std::string pad_token_;
  std::filesystem::path tokenizer_2_dir_;
  std::string pad_token_2_;
  bool text_projection_transposed_ = false;
  bool force_zeros_for_empty_prompt_ = true;
  nlohmann::json scheduler_config_;
  std::string scheduler_source_;
};

}  // namespace diffbench
