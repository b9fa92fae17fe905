// A diffusers pipeline folder: model_index.json naming the components, one sub-folder each with its
// config and weights. Only safetensors weights are read; pickle files are refused, never unpickled.
#pragma once

#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "diffbench/log.hpp"

namespace diffbench {

struct ComponentEntry {
  std::string name;        // "unet", "vae", ...
  std::string library;     // "diffusers", "transformers"
  std::string class_name;  // "UNet2DConditionModel", ...
  std::filesystem::path dir;
};

class DiffusersFolder {
 public:
  // Reads model_index.json and checks that `required` components are present as folders. `root` is
  // a folder: the alias "demo" is resolved where specs and options are read (pipeline/spec.hpp).
  // Components the pipeline does not run (safety_checker, feature_extractor, image_encoder) are
  // skipped and logged.
  static DiffusersFolder open(const std::filesystem::path& root, const std::vector<std::string>& required,
                              const Logger& log = Logger::silent());

  const std::filesystem::path& root() const { return root_; }
  const std::string& pipeline_class() const { return pipeline_class_; }
  bool has(const std::string& name) const { return components_.count(name) != 0; }
  const ComponentEntry& component(const std::string& name) const;
  const std::vector<std::string>& skipped() const { return skipped_; }

  // <component>/config.json (scheduler_config.json for schedulers).
  std::filesystem::path config_file(const std::string& name) const;
  // The component's weights: `<base>[.variant].safetensors` or a sharded index, for base
  // diffusion_pytorch_model or model. A requested variant (e.g. "fp16") is preferred and falls
  // back to the plain file. Only pickle files present -> InputError saying how to convert.
  std::filesystem::path weights_file(const std::string& name, const std::string& variant = {}) const;

 private:
  std::filesystem::path root_;
  std::string pipeline_class_;
  std::map<std::string, ComponentEntry> components_;
  std::vector<std::string> skipped_;
};

// The weights file of a single component folder (see DiffusersFolder::weights_file).
std::filesystem::path find_weights_file(const std::filesystem::path& dir, const std::string& variant = {});

}  // namespace diffbench
