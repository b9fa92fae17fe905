#include "diffbench/io/diffusers_folder.hpp"

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {
const std::vector<std::string> kNotRun = {"safety_checker", "feature_extractor", "image_encoder"};
}

DiffusersFolder DiffusersFolder::open(const fs::path& root, const std::vector<std::string>& required,
                                      const Logger& log) {
  if (!fs::is_directory(root)) throw InputError("model folder does not exist or is not a folder", root.string());
  const fs::path index_file = root / "model_index.json";
  if (!fs::exists(index_file))
    throw InputError("not a diffusers pipeline folder: model_index.json is missing", root.string());
  const auto index = JsonConfig::load(index_file);
  DiffusersFolder out;
  out.root_ = root;
  out.pipeline_class_ = index.get<std::string>("_class_name", "");
  for (auto it = index.raw().begin(); it != index.raw().end(); ++it) {
    const std::string& key = it.key();
    if (key.empty() || key[0] == '_' || !it.value().is_array()) continue;
    const auto& v = it.value();
    if (v.size() != 2 || v[0].is_null() || v[1].is_null()) continue;  // component saved as None
    if (std::find(kNotRun.begin(), kNotRun.end(), key) != kNotRun.end()) {
      out.skipped_.push_back(key);
      log.info("skipping component '" + key + "': the text-to-image pipeline does not run it");
      continue;
    }
    if (!v[0].is_string() || !v[1].is_string())
      throw InputError("entry '" + key + "' must be [library, class]", index_file.string());
    out.components_[key] = ComponentEntry{key, v[0].get<std::string>(), v[1].get<std::string>(), root / key};
  }
  for (const auto& name : required) {
    if (!out.components_.count(name))
      throw InputError("model_index.json does not list the required component '" + name + "'", index_file.string());
    if (!fs::is_directory(out.components_[name].dir))
      throw InputError("component folder is missing", out.components_[name].dir.string());
  }
  return out;
}

const ComponentEntry& DiffusersFolder::component(const std::string& name) const {
  auto it = components_.find(name);
  if (it == components_.end()) throw InputError("pipeline has no component '" + name + "'", root_.string());
  return it->second;
}

fs::path DiffusersFolder::config_file(const std::string& name) const {
  const auto& c = component(name);
  fs::path p = c.dir / (name == "scheduler" ? "scheduler_config.json" : "config.json");
  if (!fs::exists(p)) throw InputError("component config is missing", p.string());
  return p;
}

fs::path DiffusersFolder::weights_file(const std::string& name, const std::string& variant) const {
  return find_weights_file(component(name).dir, variant);
}

fs::path find_weights_file(const fs::path& dir, const std::string& variant) {
  std::vector<std::string> names;
  for (const char* base : {"diffusion_pytorch_model", "model"}) {
    if (!variant.empty()) {
      names.push_back(std::string(base) + "." + variant + ".safetensors");
      names.push_back(std::string(base) + ".safetensors.index." + variant + ".json");
      names.push_back(std::string(base) + "." + variant + ".safetensors.index.json");
    }
    names.push_back(std::string(base) + ".safetensors");
    names.push_back(std::string(base) + ".safetensors.index.json");
  }
  for (const auto& n : names)
    if (fs::exists(dir / n)) return dir / n;
  for (const char* pickle : {"diffusion_pytorch_model.bin", "pytorch_model.bin", "model.ckpt", "model.bin"})
    if (fs::exists(dir / pickle))
      throw InputError(std::string("only pickle weights (") + pickle +
                           ") are present; diffbench reads safetensors only. Convert with diffusers: "
                           "Pipeline.from_pretrained(DIR).save_pretrained(DIR, safe_serialization=True)",
                       dir.string());
  throw InputError("no weights file (diffusion_pytorch_model.safetensors or model.safetensors)", dir.string());
}

}  // namespace diffbench
