// Saving a generation: NNNNNN.png in prompt order and run.json, all or nothing.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/io/staging_dir.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

// Per-stage timings as JSON (seconds).
nlohmann::json to_json(const StageTimes& t);

// Writes `out`/NNNNNN.png for every image, and `out`/run.json holding `settings`, the prompts,
// per-batch and per-stage timings and the environment; the folder appears only when complete.
void save_generation(const std::filesystem::path& out, bool replace, const GenerationResult& result,
                     const std::vector<std::string>& prompts, const nlohmann::json& settings);
// The same into a staging folder the caller opened before generating (so that a bad --out fails
// before any work), committed here.
void save_generation(StagingDir& staging, const GenerationResult& result, const std::vector<std::string>& prompts,
                     const nlohmann::json& settings);

}  // namespace diffbench
