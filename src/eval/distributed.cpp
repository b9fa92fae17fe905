#include "diffbench/eval/distributed.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>

#include "diffbench/error.hpp"
#include "diffbench/pipeline/outputs.hpp"

namespace diffbench {

namespace {

nlohmann::json batch_json(const BatchRecord& b) {
  return {{"first", b.first},
          {"count", b.count},
          {"times", to_json(b.times)},
          {"unet_calls", b.unet_calls},
          {"module_calls", b.module_calls},
          {"module_skips", b.module_skips},
          {"guided_calls", b.guided_calls},
          {"first_nonfinite_step", b.first_nonfinite_step},
          {"nonfinite_images", b.nonfinite_images}};
}

BatchRecord batch_record(const nlohmann::json& j, size_t first_index) {
  BatchRecord b;
  b.first = first_index + j["first"].get<size_t>();
  b.count = j["count"].get<size_t>();
  const auto& t = j["times"];
  b.times = {t["text_encoder_s"].get<double>(), t["denoise_s"].get<double>(), t["vae_decode_s"].get<double>(),
             t["total_s"].get<double>()};
  b.unet_calls = j["unet_calls"].get<int64_t>();
  b.module_calls = j["module_calls"].get<int64_t>();
  b.module_skips = j["module_skips"].get<int64_t>();
  b.guided_calls = j["guided_calls"].get<int64_t>();
  b.first_nonfinite_step = j["first_nonfinite_step"].get<int64_t>();
  b.nonfinite_images = j["nonfinite_images"].get<bool>();
  return b;
}

}  // namespace

std::string rank_host_name() {
  char buf[256] = {};
  return ::gethostname(buf, sizeof buf - 1) == 0 ? std::string(buf) : std::string("?");
}

void require_per_prompt_noise(NoiseMode noise) {
  if (noise != NoiseMode::PerPrompt)
    throw UsageError("diffusers noise draws every prompt's noise from one generator in prompt order, so a rank "
                     "cannot start in the middle: a multi-process run needs --noise per-prompt",
                     "--noise");
}

Shard shard_prompts(size_t prompts, int batch_size, const World& world, bool allow_idle, const std::string& option) {
  const auto bs = static_cast<size_t>(batch_size);
  const size_t batches = (prompts + bs - 1) / bs;
  const auto ranks = static_cast<size_t>(world.size);
  if (batches < ranks && !allow_idle)
    throw UsageError(std::to_string(prompts) + " prompts make " + std::to_string(batches) + " batch(es) of " +
                         std::to_string(batch_size) + ", fewer than the " + std::to_string(ranks) +
                         " processes: use more prompts, a smaller " + option + " or fewer processes",
                     option);
  const auto r = static_cast<size_t>(world.rank);
  const size_t base = batches / ranks, extra = batches % ranks;
  const size_t first_batch = r * base + std::min(r, extra);
  const size_t count = base + (r < extra ? 1 : 0);
  return {std::min(prompts, first_batch * bs), std::min(prompts, (first_batch + count) * bs)};
}

GenerationResult generate_over_ranks(Txt2ImgPipeline& pipe, const std::vector<std::string>& prompts,
                                     GenerateOptions options, ProcessGroup& group, const Logger& log,
                                     nlohmann::json* distributed) {
  require_per_prompt_noise(options.noise);
  const World& world = group.world();
  const Shard shard = shard_prompts(prompts.size(), options.batch_size, world);
  const std::vector<std::string> mine(prompts.begin() + static_cast<std::ptrdiff_t>(shard.first),
                                      prompts.begin() + static_cast<std::ptrdiff_t>(shard.end));
  options.first_index = shard.first;
  log.info(world.describe() + ": generating prompts " + std::to_string(shard.first) + "-" +
           std::to_string(shard.end - 1) + " of " + std::to_string(prompts.size()));
  const auto t0 = std::chrono::steady_clock::now();
  GenerationResult local = pipe.generate(mine, options, {}, log);
  const double wall_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();

  nlohmann::json batches = nlohmann::json::array();
  for (const auto& b : local.batches) batches.push_back(batch_json(b));
  const nlohmann::json row = {{"rank", world.rank},
                              {"local_rank", world.local_rank},
                              {"host", rank_host_name()},
                              {"device", pipe.options().device.str()},
                              {"prompts", {shard.first, shard.end}},
                              {"seconds_per_image", local.times.total / static_cast<double>(shard.size())},
                              {"generation_wall_s", wall_s},
                              {"batches", batches}};
  const std::vector<std::string> rows = group.gather(row.dump());
  const std::vector<at::Tensor> images = group.gather(local.images);
  if (!group.root()) return local;  // rank 0 writes the images

  GenerationResult merged = std::move(local);
  merged.batches.clear();
  merged.times = {};
  nlohmann::json rank_rows = nlohmann::json::array();
  double slowest = 0;
  for (const auto& text : rows) {
    nlohmann::json r = nlohmann::json::parse(text);
    for (const auto& b : r["batches"]) {
      merged.batches.push_back(batch_record(b, r["prompts"][0].get<size_t>()));
      merged.times += merged.batches.back().times;
    }
    slowest = std::max(slowest, r["generation_wall_s"].get<double>());
    r.erase("batches");
    rank_rows.push_back(r);
  }
  merged.images = at::cat(images, 0);
  const auto n = static_cast<double>(prompts.size());
  *distributed = {{"world_size", world.size},
                  {"launcher", world.launcher},
                  {"backend", "gloo"},
                  {"split", "contiguous shards of whole batches; rank 0 writes every image"},
                  {"ranks", rank_rows},
                  {"images", prompts.size()},
                  {"generation_wall_s", slowest},
                  {"images_per_second", slowest > 0 ? n / slowest : 0.0}};
  return merged;
}

}  // namespace diffbench
