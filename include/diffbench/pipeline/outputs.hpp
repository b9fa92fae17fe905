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

// Per-stage timings as JSON (seconds: text_encoder_s, denoise_s, vae_decode_s, total_s), and back
// (a missing key is nlohmann's out_of_range).
nlohmann::json to_json(const StageTimes& t);
StageTimes stage_times_from_json(const nlohmann::json& j);

// Writes `out`/NNNNNN.png for every image, and `out`/run.json holding `settings`, the prompts,
// per-batch and per-stage timings and the environment; the folder appears only when complete.
void save_generation(const std::filesystem::path& out, bool replace, const GenerationResult& result,
                     const std::vector<std::string>& prompts, const nlohmann::json& settings);
// The same into a staging folder the caller opened before generating (so that a bad --out fails
// before any work), committed here.
void save_generation(StagingDir& staging, const GenerationResult& result, const std::vector<std::string>& prompts,
                     const nlohmann::json& settings);

}  // namespace diffbench
