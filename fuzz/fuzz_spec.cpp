// libFuzzer target: the TOML pipeline-spec reader (parse_spec: toml++ behind diffbench's header
// guard, then the [pipeline], [[lora]] and [[accelerate]] tables) and --lora FILE[:SCALE] on arbitrary
// text. Any exception but InputError (UsageError for --lora) is a bug, and so is an accepted spec that
// cannot be written as JSON (report.json and run.json carry it) or differs from itself.
#include <cstddef>
#include <cstdint>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "fuzz_support.hpp"

using diffbench::fuzz::check;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string text(reinterpret_cast<const char*>(data), size);
  try {
    (void)diffbench::parse_lora_arg(text);
  } catch (const diffbench::UsageError&) {
  }
  diffbench::PipelineSpec spec;
  try {
    spec = diffbench::parse_spec(text, "specs/fuzz.toml");
  } catch (const diffbench::InputError&) {
    return 0;
  }
  check(!spec.model.empty(), "a spec without a model was accepted");
  (void)spec.to_json().dump();  // throws on text JSON cannot hold (invalid UTF-8)
  const auto base = spec.baseline();
  (void)base.to_json().dump();
  check(diffbench::spec_differences(spec, spec).empty(), "a spec differs from itself");
  // the baseline drops the methods and computes fp8's GEMMs in the dtype around them
  check(diffbench::spec_differences(spec, base).size() ==
            (spec.accelerate.empty() ? 0u : 1u) + (spec.dtype == "fp8" ? 1u : 0u),
        "the baseline differs in more than its methods and fp8");
  check(base.dtype != "fp8" && base.baseline().dtype == base.dtype, "the baseline's baseline is another dtype");
  (void)spec.generate_options(diffbench::RunProtocol{});
  return 0;
}
