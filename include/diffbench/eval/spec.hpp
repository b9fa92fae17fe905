// Pipeline specs: the TOML file a user writes instead of a Python script.
//
//   [pipeline]
//   model = "path/to/stable-diffusion-v1-5"   # relative paths are relative to the spec file
//   scheduler = "pndm"    steps = 50    guidance = 7.5    height = 512    width = 512
//   dtype = "fp16"        device = "cuda"
//   [[accelerate]]        # zero or more, applied in order
//   method = "deepcache"  cache_interval = 3  cache_branch_id = 0   # plugin = "path/lib.so" for plugins
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/accel/method.hpp"

namespace diffbench {

struct PipelineSpec {
  std::filesystem::path file;  // where it came from (empty when derived)
  std::string name;            // file stem, or "<candidate>-baseline" when derived
  std::filesystem::path model;
  std::string scheduler;       // "" = the checkpoint's own
  int steps = 50;
  double guidance = 7.5;
  int height = 0;              // 0 = from the model
  int width = 0;
  std::string dtype = "fp32";
  std::string device = "cpu";
  std::vector<AccelEntry> accelerate;

  // The unaccelerated pipeline: every [[accelerate]] entry dropped.
  PipelineSpec baseline() const;
  nlohmann::json to_json() const;
};

// Parses and validates a spec. Unknown keys, wrong types and bad values are InputErrors whose
// where() is "FILE:LINE" and whose message names the key.
PipelineSpec load_spec(const std::filesystem::path& file);
PipelineSpec parse_spec(const std::string& text, const std::filesystem::path& file);

// Differences between two specs that the report lists (steps, scheduler, guidance, size, ...).
std::vector<std::string> spec_differences(const PipelineSpec& a, const PipelineSpec& b);

}  // namespace diffbench
