// Pipeline specs: the TOML file a user writes instead of a Python script.
//
//   [pipeline]
//   model = "path/to/stable-diffusion-v1-5"   # relative paths are relative to the spec file
//   scheduler = "pndm"    steps = 50    guidance = 7.5    height = 512    width = 512
//   dtype = "fp16"        device = "cuda"
//   scheduler_options = { timestep_spacing = "trailing" }   # optional: as Scheduler.from_config(config, **options)
//   # model may also be a Hugging Face id, "ORG/NAME", found in the local hub cache (io/hub_cache.hpp),
//   # with optional revision = "main", variant = "fp16", cache_dir = "..."
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
#include "diffbench/io/hub_cache.hpp"

namespace diffbench {

struct PipelineSpec {
  std::filesystem::path file;  // where it came from (empty when derived)
  std::string name;            // file stem, or "<candidate>-baseline" when derived
  std::filesystem::path model;  // the diffusers folder (after resolve_spec_model: the hub snapshot)
  std::string model_ref;         // `model` as written: a path or an "ORG/NAME" id
  std::string revision;          // hub revision ("" = main)
  std::string variant;           // weights variant to prefer, e.g. "fp16"
  std::filesystem::path cache_dir;  // hub cache ("" = from the environment)
  std::optional<HubModel> hub;   // set when model_ref was resolved through the hub cache
  std::string scheduler;       // "" = the checkpoint's own
  nlohmann::json scheduler_options = nlohmann::json::object();  // config keys over the checkpoint's
  int steps = 50;
  double guidance = 7.5;
  int height = 0;              // 0 = from the model
  int width = 0;
  std::string dtype = "fp32";
  std::string device = "cpu";
  std::vector<AccelEntry> accelerate;
  // Where a spec translated from a Python pipeline file came from (eval/pyimport.hpp):
  // {"python": FILE, "pipeline_class": ..., "statements": [...], "ignored": [...]}; null otherwise.
  nlohmann::json origin;

  // The unaccelerated pipeline: every [[accelerate]] entry dropped.
  PipelineSpec baseline() const;
  nlohmann::json to_json() const;
};

// Parses and validates a spec. Unknown keys, wrong types and bad values are InputErrors whose
// where() is "FILE:LINE" and whose message names the key. load_spec also resolves the model
// (resolve_spec_model); parse_spec leaves it as written.
PipelineSpec load_spec(const std::filesystem::path& file);
PipelineSpec parse_spec(const std::string& text, const std::filesystem::path& file);

// A `model` that is not an existing folder (nor the alias "demo") and looks like "ORG/NAME" is
// looked up in the local hub cache; `model` becomes the snapshot folder and `hub` records it.
// Not cached: InputError listing the folders looked in and the download command.
void resolve_spec_model(PipelineSpec& spec);

// Differences between two specs that the report lists (steps, scheduler, guidance, size, ...).
std::vector<std::string> spec_differences(const PipelineSpec& a, const PipelineSpec& b);

}  // namespace diffbench
