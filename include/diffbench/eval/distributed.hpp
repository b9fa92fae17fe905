// What the commands share in a multi-process run (dist/, docs/distributed.md): which prompts (or
// images) a rank takes, and `generate` spread over the ranks. The eval-specific gathering of timed
// runs is src/eval/distributed_eval.hpp.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/dist/process_group.hpp"
#include "diffbench/log.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

// Prompts [first, end) of the global list.
struct Shard {
  size_t first = 0;
  size_t end = 0;
  size_t size() const { return end - first; }
};

// Contiguous shards of whole batches (the first ranks take one batch more when the batches do not
// divide evenly), so every batch is one of the one-process run's batches and its images are
// bit-identical. Fewer batches than ranks is a UsageError naming `option` (a rank would have nothing
// to do) unless `allow_idle`, where the last ranks get empty shards.
Shard shard_prompts(size_t prompts, int batch_size, const World& world, bool allow_idle = false,
                    const std::string& option = "--batch-size");

// `--noise diffusers` draws every prompt's noise from one generator in prompt order, so a rank cannot
// start mid-way: a UsageError naming --noise unless `noise` is per-prompt.
void require_per_prompt_noise(NoiseMode noise);

// One rank's part of a multi-process `generate`: this rank generates its shard of `prompts` (noise
// seeded by each prompt's global index, so its images equal the one-process run's); rank 0 gets
// every rank's images and batch records merged in prompt order (batch `first` global, stage times
// summed), the one-process result but for its times, and `distributed` (rank 0 only) the ranks'
// shares, seconds per image and the aggregate throughput. The other ranks get their own result.
GenerationResult generate_over_ranks(Txt2ImgPipeline& pipe, const std::vector<std::string>& prompts,
                                     GenerateOptions options, ProcessGroup& group, const Logger& log,
                                     nlohmann::json* distributed);

// The host name this rank runs on (for the ranks' rows of a report).
std::string rank_host_name();

}  // namespace diffbench
