// Layering: the run layer is in accel/, not beside the spec in pipeline/, because it makes the spec's
// methods through the MethodRegistry, which sits above the pipeline; it knows no command or report.
//
// One pipeline spec made ready to run, the one place generate, bench and eval turn a spec into what
// Txt2ImgPipeline takes: its methods created in order (a bad method or parameter fails before any
// model loads), the model options, and the generate options for a protocol with the methods attached.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/accel/method.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

// A spec's [[accelerate]] methods, created and owned together, with the entries they came from.
class MethodStack {
 public:
  MethodStack() = default;
  // Creates every entry in order through `registry` (MethodRegistry::with_builtins() when null),
  // checking that the stack is compatible. Errors are InputErrors naming `source` (the spec file,
  // or the option the entries came from), line and key.
  MethodStack(std::vector<AccelEntry> entries, const std::string& source, MethodRegistry* registry = nullptr);

  // Adds the methods, in order, as the hooks (and hook names) of a generation.
  void attach(GenerateOptions& options) const;
  // Zeroes every method's counters (before a timed run, so they count only it).
  void reset_stats();
  // [{"method", "params", "stats", "plugin" (when one)}], the methods as they ran.
  nlohmann::json to_json() const;

  size_t size() const { return methods_.size(); }
  bool empty() const { return methods_.empty(); }
  Method& operator[](size_t i) const { return *methods_.at(i); }

 private:
  std::vector<AccelEntry> entries_;
  std::vector<std::unique_ptr<Method>> methods_;
};

// A spec with its methods and the options that load and run it.
struct SpecRun {
  PipelineSpec spec;
  MethodStack methods;
  ModelOptions model;        // spec.model_options(tuning)
  GenerateOptions generate;  // spec.generate_options(protocol), the methods attached
};

// Creates the methods first (nothing is loaded), then the options. `methods_source` names where the
// [[accelerate]] entries came from in error messages (default: the spec file).
SpecRun prepare_run(const PipelineSpec& spec, const RunProtocol& protocol, const CudaTuning& tuning = {},
                    const std::string& methods_source = {});

}  // namespace diffbench
