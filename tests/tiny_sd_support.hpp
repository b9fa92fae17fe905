// The tiny-sd fixture pipeline and its reference runs, shared by the pipeline and method tests.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

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

}  // namespace diffbench::test
