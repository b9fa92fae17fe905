// The tiny-sd fixture pipeline and its reference runs, shared by the pipeline and method tests.
#pragma once

#include <algorithm>
#include <iostream>
#include <limits>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "diffbench/accel/method.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "test_support.hpp"

namespace diffbench::test {

struct Reference {
  std::vector<std::string> prompts;
  std::shared_ptr<const SafetensorsFile> tensors;
};

// DIR/NAME.json (its "prompts") and DIR/NAME.safetensors, read once per file.
inline const Reference& reference_file(const std::filesystem::path& dir, const std::string& name) {
  static std::map<std::string, Reference> cache;
  const std::string key = (dir / name).string();
  auto it = cache.find(key);
  if (it == cache.end()) {
    Reference r;
    r.prompts = read_json_file(dir / (name + ".json")).at("prompts").get<std::vector<std::string>>();
    r.tensors = SafetensorsFile::open(dir / (name + ".safetensors"));
    it = cache.emplace(key, std::move(r)).first;
  }
  return it->second;
}

// The shared fixtures' reference runs: fixtures/NAME.{json,safetensors}.
inline const Reference& reference(const std::string& name = "tiny-sd-reference") {
  return reference_file(fixture(""), name);
}

// The project's own per-step references on tiny-sd (tests/pipeline/data/step_refs.*, written by
// tools/refs/make_step_refs.py): ToMe's per-step latents and DDIM without clip_sample.
inline const Reference& step_reference() {
  return reference_file(std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data", "step_refs");
}

// fixtures/tiny-sd loaded once (float32, CPU).
inline Txt2ImgPipeline& tiny_sd() {
  static std::unique_ptr<Txt2ImgPipeline> pipe = [] {
    ModelOptions mo;
    mo.dir = fixture("tiny-sd");
    return Txt2ImgPipeline::load(mo);
  }();
  return *pipe;
}

// The reference runs' protocol: the 4 prompts in one batch with one diffusers-style generator seeded
// 42, guidance 7.5, PNDM for `steps` steps.
inline GenerateOptions reference_protocol(std::vector<PipelineHooks*> hooks = {}, int steps = 50) {
  GenerateOptions opt;
  opt.steps = steps;
  opt.guidance = 7.5;
  opt.seed = 42;
  opt.batch_size = 4;
  opt.noise = NoiseMode::Diffusers;
  opt.hooks = std::move(hooks);
  return opt;
}

// Teacher forcing: generates the reference prompts with `opt` and, after every scheduler step i,
// records how far our latents are from the reference's latents after step i (`per_step[i]`), then
// overwrites ours with the reference's, so that step i+1 starts where the reference's did. Errors
// then do not accumulate over the run: each step's difference is that step's own (UNet, guidance
// and scheduler update on the same input), which a tight tolerance can bound on any CPU.
// Returns the per-step max abs differences.
// The tiny SDXL references' protocol (tools/refs/make_sdxl_refs.py and make_sdxl_accel_refs.py): 2
// prompts in one batch, one diffusers-style generator seeded 42, guidance 5.0, 10 steps of the folder's
// scheduler, its default size.
inline GenerateOptions sdxl_reference_protocol() {
  GenerateOptions opt;
  opt.steps = 10;
  opt.guidance = 5.0;
  opt.seed = 42;
  opt.batch_size = 2;
  opt.noise = NoiseMode::Diffusers;
  return opt;
}

inline std::vector<double> teacher_forced_step_errors(const at::Tensor& per_step, const GenerateOptions& opt) {
  std::vector<double> diffs;
  tiny_sd().generate(reference().prompts, opt, [&](size_t, size_t step, size_t, const at::Tensor& latents) {
    if (static_cast<int64_t>(step) >= per_step.size(0)) {
      diffs.push_back(std::numeric_limits<double>::infinity());  // more steps than the reference
      return;
    }
    diffs.push_back(max_abs_diff(latents, per_step[step]));
    latents.copy_(per_step[step]);  // the pipeline's own latents tensor, updated in place
  });
  return diffs;
}

// Checks teacher-forced per-step errors against `tol`, naming the worst step, and prints them.
inline void expect_teacher_forced(const std::string& what, const at::Tensor& per_step, const GenerateOptions& opt,
                                  double tol) {
  const auto diffs = teacher_forced_step_errors(per_step, opt);
  ASSERT_EQ(static_cast<int64_t>(diffs.size()), per_step.size(0)) << what << ": scheduler steps";
  const auto worst = std::max_element(diffs.begin(), diffs.end());
  std::cout << "[ forced   ] " << what << ": worst step " << (worst - diffs.begin()) << " max abs diff " << *worst
            << "\n";
  EXPECT_LE(*worst, tol) << what << ": step " << (worst - diffs.begin()) << " differs by " << *worst;
}

// A built-in method with these parameters, as a spec's [[accelerate]] table creates it.
inline std::unique_ptr<Method> builtin_method(const std::string& name, nlohmann::json params) {
  AccelEntry e;
  e.method = name;
  e.params = std::move(params);
  return MethodRegistry::with_builtins().create(e, "test.toml");
}

}  // namespace diffbench::test
