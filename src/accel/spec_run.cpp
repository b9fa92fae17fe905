#include "diffbench/accel/spec_run.hpp"

namespace diffbench {

MethodStack::MethodStack(std::vector<AccelEntry> entries, const std::string& source, MethodRegistry* registry)
    : entries_(std::move(entries)) {
  if (entries_.empty()) return;
  if (registry) {
    methods_ = registry->create_all(entries_, source);
  } else {
    MethodRegistry builtins = MethodRegistry::with_builtins();
    methods_ = builtins.create_all(entries_, source);  // plugins stay loaded after the registry goes
  }
}

void MethodStack::attach(GenerateOptions& options) const {
  for (const auto& m : methods_) {
    options.hooks.push_back(m.get());
    options.hook_names.push_back(m->name());
  }
}

void MethodStack::reset_stats() {
  for (auto& m : methods_) m->reset_stats();
}

nlohmann::json MethodStack::to_json() const {
  nlohmann::json out = nlohmann::json::array();
  for (size_t i = 0; i < methods_.size(); ++i) {
    nlohmann::json m = {{"method", methods_[i]->name()}, {"params", methods_[i]->params()}, {"stats", methods_[i]->stats()}};
    if (!entries_[i].plugin.empty()) m["plugin"] = entries_[i].plugin.string();
    out.push_back(m);
  }
  return out;
}

SpecRun prepare_run(const PipelineSpec& spec, const RunProtocol& protocol, const CudaTuning& tuning,
                    const std::string& methods_source) {
  SpecRun run;
  run.methods = MethodStack(spec.accelerate, methods_source.empty() ? spec.file.string() : methods_source);
  run.spec = spec;
  run.model = spec.model_options(tuning);
  run.generate = spec.generate_options(protocol);
  run.methods.attach(run.generate);
  return run;
}

}  // namespace diffbench
