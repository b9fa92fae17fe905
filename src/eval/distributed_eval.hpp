// A multi-process evaluation (dist/): which prompts a rank generates, and how rank 0 puts every
// rank's images and timings together into the one-process run's shape, from which it computes
// every score and writes the report as one process would.
#pragma once

#include <cstddef>

#include <nlohmann/json.hpp>

#include "diffbench/dist/process_group.hpp"
#include "timed_runs.hpp"

namespace diffbench {

// Prompts [first, end) of the global list.
struct Shard {
  size_t first = 0;
  size_t end = 0;
  size_t size() const { return end - first; }
};

// Contiguous shards of whole batches (the first ranks take one batch more when the batches do not
// divide evenly), so every batch is one of the one-process run's batches and its images are
// bit-identical. Fewer batches than ranks is a UsageError (a rank would have nothing to do).
Shard shard_prompts(size_t prompts, int batch_size, const World& world);

// Rank 0: every rank's runs merged in rank order: images per seed in global prompt order, batch
// lists rank after rank, stage times summed, UNet calls and skipped fractions weighted by images,
// peak memory the highest. `distributed` (rank 0 only) gets the report's "distributed" section:
// world size, each rank's share, seconds per image and timed wall clock, and the aggregate
// throughput. The other ranks get their own runs back. `timed_wall_s`: this rank's wall clock of
// its timed batches (loads and warm-ups excluded).
TimedRuns gather_timed_runs(ProcessGroup& group, TimedRuns local, const Shard& shard, double timed_wall_s,
                            const std::string& device, nlohmann::json* distributed);

}  // namespace diffbench
