#include "diffbench/pipeline/model_source.hpp"

#include "diffbench/error.hpp"
#include "diffbench/io/diffusers_folder.hpp"
#include "diffbench/io/json_config.hpp"

namespace diffbench {

namespace fs = std::filesystem;

ModelSource ModelSource::open(const fs::path& model, const ModelSourceOptions& options, const Logger& log) {
  ModelSource s;
  s.path_ = model;
  if (is_single_file(model)) {
    s.single_ = open_single_file(model, SingleFileOptions{options.prediction_type, options.config_dir});
    const SingleFileCheckpoint& ck = *s.single_;
    s.pipeline_class_ = to_string(ck.family) + " single file";
    const std::string where =
        ck.config_source == "inferred"
            ? model.string() + " (config inferred from the tensors; for other settings give config = a diffusers folder)"
            : ck.config_source;
    s.components_["unet"] = {model, ck.unet_config, where, ck.parts("unet")};
    s.components_["vae"] = {model, ck.vae_config, where, ck.parts("vae")};
    s.components_["text_encoder"] = {model, ck.text_config, where, ck.parts("text_encoder")};
    s.tokenizer_dir_ = ck.tokenizer_dir;
    s.pad_token_ = ck.pad_token;
    if (ck.family == CheckpointFamily::SDXL) {
      s.components_["text_encoder_2"] = {model, ck.text_config_2, where, ck.parts("text_encoder_2")};
      s.tokenizer_2_dir_ = ck.tokenizer_2_dir;
      s.pad_token_2_ = ck.pad_token_2;
      s.text_projection_transposed_ = ck.text_projection_transposed;
    }
    s.scheduler_config_ = ck.scheduler_config;
    s.scheduler_source_ = where;
    if (!ck.ignored.empty())
      log.info(model.string() + ": " + std::to_string(ck.ignored.size()) +
               " tensors are not part of the pipeline (EMA copies, schedule buffers, ...) and are not loaded");
    return s;
  }
  if (!options.config_dir.empty())
    throw UsageError("'config' applies to single-file checkpoints; the diffusers folder has its own configs",
                     options.config_dir.string());
  const auto folder = DiffusersFolder::open(model, {"text_encoder", "tokenizer", "unet", "vae", "scheduler"}, log);
  s.pipeline_class_ = folder.pipeline_class();
  for (const char* name : {"text_encoder", "unet", "vae", "text_encoder_2"}) {
    if (!folder.has(name)) continue;  // text_encoder_2: SDXL's
    const fs::path config = folder.config_file(name);
    s.components_[name] = {folder.weights_file(name, options.variant), JsonConfig::load(config).raw(), config.string(), {}};
  }
  s.tokenizer_dir_ = folder.component("tokenizer").dir;
  if (folder.has("tokenizer_2")) s.tokenizer_2_dir_ = folder.component("tokenizer_2").dir;
  s.force_zeros_for_empty_prompt_ = JsonConfig::load(model / "model_index.json").get<bool>("force_zeros_for_empty_prompt", true);
  const fs::path sched = folder.config_file("scheduler");
  s.scheduler_config_ = read_json_file(sched);
  s.scheduler_source_ = sched.string();
  if (!options.prediction_type.empty()) s.scheduler_config_["prediction_type"] = options.prediction_type;
  return s;
}

const ComponentSource& ModelSource::component(const std::string& name) const {
  auto it = components_.find(name);
  if (it == components_.end()) throw InputError("the model has no component '" + name + "'", path_.string());
  return it->second;
}

nlohmann::json ModelSource::describe() const {
  if (!single_) return {{"layout", "diffusers"}, {"pipeline_class", pipeline_class_}};
  return {{"layout", "single_file"},
          {"family", to_string(single_->family)},
          {"config", single_->config_source},
          {"tokenizer", single_->tokenizer_dir.string()},
          {"ignored_tensors", single_->ignored.size()}};
}

}  // namespace diffbench
