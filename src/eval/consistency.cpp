// Are baseline and candidate really the same model? Compare weight files by content, not path.
#include "diffbench/error.hpp"
#include "diffbench/eval/evaluator.hpp"
#include "diffbench/io/file_identity.hpp"
#include "diffbench/pipeline/model_source.hpp"

namespace diffbench {

namespace fs = std::filesystem;


namespace {

ModelSource open_source(const PipelineSpec& spec) {
  return ModelSource::open(spec.model, ModelSourceOptions{spec.variant, spec.prediction_type, spec.model_config});
}

// Same LoRAs in the same order, with the same scales and file contents (by content, not path).
bool same_loras(const std::vector<LoraSpec>& a, const std::vector<LoraSpec>& b, nlohmann::json& out) {
  auto list = [](const std::vector<LoraSpec>& v) {
    nlohmann::json j = nlohmann::json::array();
    for (const auto& l : v) j.push_back({{"file", l.file.string()}, {"scale", l.scale}, {"hash", content_hash(l.file)}});
    return j;
  };
  out = {{"baseline", list(a)}, {"candidate", list(b)}};
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i)
    if (a[i].scale != b[i].scale || out["baseline"][i]["hash"] != out["candidate"][i]["hash"]) return false;
  return true;
}

}  // namespace

nlohmann::json check_consistency(const PipelineSpec& baseline, const PipelineSpec& candidate, bool allow_mismatch) {
  const auto a = open_source(baseline);
  const auto b = open_source(candidate);
  std::vector<std::string> parts = {"text_encoder", "unet", "vae"};
  // SDXL's second text encoder: a weight of the model as much as the first.
  if (a.has_component("text_encoder_2") || b.has_component("text_encoder_2")) parts.push_back("text_encoder_2");
  nlohmann::json out;
  out["pipeline_type"] = {{"baseline", a.pipeline_class()}, {"candidate", b.pipeline_class()}};
  for (const auto& [run, spec] : {std::pair{"baseline", &baseline}, std::pair{"candidate", &candidate}})
    if (spec->origin.is_object())  // read from a Python file: the class it loads with (import-py)
      out["python_pipeline_class"][run] = spec->origin.value("pipeline_class", "");
  bool same = a.pipeline_class() == b.pipeline_class();
  std::vector<std::string> mismatched;
  for (const auto& part : parts) {
    if (!a.has_component(part) || !b.has_component(part)) {
      out["components"][part] = {{"baseline_file", a.has_component(part) ? a.component(part).weights.string() : ""},
                                 {"candidate_file", b.has_component(part) ? b.component(part).weights.string() : ""},
                                 {"identical", false}};
      mismatched.push_back(part);
      continue;
    }
    const fs::path fa = fs::weakly_canonical(a.component(part).weights),
                   fb = fs::weakly_canonical(b.component(part).weights);
    nlohmann::json c = {{"baseline_file", fa.string()}, {"candidate_file", fb.string()}};
    bool equal = fa == fb;
    if (!equal) {
      const auto ha = content_hash(fa), hb = content_hash(fb);
      c["baseline_hash"] = ha;
      c["candidate_hash"] = hb;
      equal = ha == hb && fs::file_size(fa) == fs::file_size(fb);
    }
    c["identical"] = equal;
    if (!equal) mismatched.push_back(part);
    out["components"][part] = c;
  }
  // A LoRA is part of the model: fused into the text encoder and UNet.
  if (!baseline.loras.empty() || !candidate.loras.empty()) {
    nlohmann::json l;
    const bool equal = same_loras(baseline.loras, candidate.loras, l);
    l["identical"] = equal;
    out["components"]["lora"] = l;
    if (!equal) mismatched.push_back("lora");
  }
  same = same && mismatched.empty();
  out["same_model"] = same;
  out["differences"] = spec_differences(baseline, candidate);
  if (!same && !allow_mismatch) {
    std::string what = mismatched.empty() ? "pipeline types differ" : "weights differ in";
    for (const auto& m : mismatched) what += " " + m;
    throw InputError("baseline and candidate do not use the same model (" + what +
                         "); pass --allow-model-mismatch to compare them anyway",
                     candidate.model.string());
  }
  return out;
}

nlohmann::json check_comparable(const PipelineSpec& baseline, const PipelineSpec& candidate,
                                const nlohmann::json& consistency, const EvalOptions& o) {
  nlohmann::json out = {{"identical", false}, {"task_changes", nlohmann::json::array()}};
  auto same_methods = [](const std::vector<AccelEntry>& a, const std::vector<AccelEntry>& b) {
    if (a.size() != b.size()) return false;
    for (size_t i = 0; i < a.size(); ++i)
      if (a[i].method != b[i].method || a[i].plugin != b[i].plugin || a[i].params != b[i].params) return false;
    return true;
  };
  const bool identical = consistency.value("same_model", false) && spec_differences(baseline, candidate).empty() &&
                         same_methods(baseline.accelerate, candidate.accelerate);
  if (identical) {
    if (!o.allow_identical)
      throw UsageError("the candidate (" + candidate.file.string() +
                           ") is identical to its baseline: same model, settings and methods, so there is nothing to "
                           "compare. Give --baseline BASE.toml, add [[accelerate]] to the spec, or pass "
                           "--allow-identical to measure timing noise (the speedup interval should contain 1)",
                       "--baseline");
    out["identical"] = true;
  }
  // Steps and scheduler are accelerations; size and guidance change what is generated.
  std::vector<std::string> changes;
  if (baseline.height != candidate.height || baseline.width != candidate.width)
    changes.push_back("image size " + std::to_string(baseline.height) + "x" + std::to_string(baseline.width) + " vs " +
                      std::to_string(candidate.height) + "x" + std::to_string(candidate.width) + " (0 = the model's)");
  if (baseline.guidance != candidate.guidance)
    changes.push_back("guidance " + std::to_string(baseline.guidance) + " vs " + std::to_string(candidate.guidance));
  if (!changes.empty() && !o.allow_task_change) {
    std::string what;
    for (const auto& c : changes) what += (what.empty() ? "" : "; ") + c;
    throw UsageError("baseline and candidate generate different things (" + what +
                         "): that is another task, not an acceleration. Pass --allow-task-change to compare them anyway",
                     "--baseline");
  }
  out["task_changes"] = changes;
  return out;
}

}  // namespace diffbench
