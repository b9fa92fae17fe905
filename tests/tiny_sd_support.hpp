// The tiny-sd fixture pipeline and its reference runs, shared by the pipeline and method tests.
#pragma once

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

// fixtures/NAME.json (its "prompts") and fixtures/NAME.safetensors, read once per name.
inline const Reference& reference(const std::string& name = "tiny-sd-reference") {
  static std::map<std::string, Reference> cache;
  auto it = cache.find(name);
  if (it == cache.end()) {
    Reference r;
    r.prompts = read_json_file(fixture(name + ".json")).at("prompts").get<std::vector<std::string>>();
    r.tensors = SafetensorsFile::open(fixture(name + ".safetensors"));
    it = cache.emplace(name, std::move(r)).first;
  }
  return it->second;
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

// A built-in method with these parameters, as a spec's [[accelerate]] table creates it.
inline std::unique_ptr<Method> builtin_method(const std::string& name, nlohmann::json params) {
  AccelEntry e;
  e.method = name;
  e.params = std::move(params);
  return MethodRegistry::with_builtins().create(e, "test.toml");
}

}  // namespace diffbench::test
