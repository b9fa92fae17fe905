#include "diffbench/pipeline/outputs.hpp"

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/staging_dir.hpp"

namespace diffbench {

namespace fs = std::filesystem;

nlohmann::json to_json(const StageTimes& t) {
  return {{"text_encoder_s", t.text_encoder}, {"denoise_s", t.denoise}, {"vae_decode_s", t.vae_decode}, {"total_s", t.total}};
}

StageTimes stage_times_from_json(const nlohmann::json& j) {
  StageTimes t;
  t.text_encoder = j.at("text_encoder_s").get<double>();
  t.denoise = j.at("denoise_s").get<double>();
  t.vae_decode = j.at("vae_decode_s").get<double>();
  t.total = j.at("total_s").get<double>();
  return t;
}

void save_generation(const fs::path& out, bool replace, const GenerationResult& result,
                     const std::vector<std::string>& prompts, const nlohmann::json& settings) {
  StagingDir staging(out, replace);
  save_generation(staging, result, prompts, settings);
}

void save_generation(StagingDir& staging, const GenerationResult& result, const std::vector<std::string>& prompts,
                     const nlohmann::json& settings) {
  write_png_sequence(staging.path(), to_uint8(result.images));  // [N,3,H,W]
  nlohmann::json run;
  run["schema"] = "diffbench.generate/1";
  run["settings"] = settings;
  run["prompts"] = prompts;
  run["height"] = result.height;
  run["width"] = result.width;
  run["scheduler"] = {{"name", result.scheduler}, {"config", result.scheduler_config}};
  nlohmann::json batches = nlohmann::json::array();
  for (const auto& b : result.batches)
    batches.push_back({{"first", b.first},
                       {"count", b.count},
                       {"unet_calls", b.unet_calls},
                       {"guided_unet_calls", b.guided_calls},
                       {"module_hooks", b.module_calls},
                       {"skipped_modules", b.module_skips},
                       {"times", to_json(b.times)}});
  run["batches"] = batches;
  run["times"] = to_json(result.times);
  run["images"] = prompts.size();
  run["seconds_per_image"] = result.times.total / static_cast<double>(prompts.size());
  run["unet_calls_per_image"] = result.unet_calls_per_image();
  run["skipped_module_fraction"] = result.skipped_module_fraction();
  write_file_atomic(staging.path() / "run.json", run.dump(2) + "\n");
  staging.commit();
}

}  // namespace diffbench
