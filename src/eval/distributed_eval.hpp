// A multi-process evaluation (dist/; the shards: eval/distributed.hpp): how rank 0 puts every
// rank's images and timings together into the one-process run's shape, from which it computes
// every score and writes the report as one process would.
#pragma once

#include <cstddef>
#include <filesystem>
#include <optional>

#include <nlohmann/json.hpp>

#include "diffbench/dist/process_group.hpp"
#include "diffbench/eval/distributed.hpp"
#include "eval_journal.hpp"
#include "timed_runs.hpp"

namespace diffbench {

// Rank 0: every rank's runs merged in rank order: images per seed in global prompt order, batch
// lists rank after rank, stage times summed, UNet calls and skipped fractions weighted by images,
// peak memory the highest. `distributed` (rank 0 only) gets the report's "distributed" section:
// world size, each rank's share, seconds per image and timed wall clock, and the aggregate
// throughput. The other ranks get their own runs back. `timed_wall_s`: this rank's wall clock of
// its timed batches (loads and warm-ups excluded).
TimedRuns gather_timed_runs(ProcessGroup& group, TimedRuns local, const Shard& shard, double timed_wall_s,
                            const std::string& device, nlohmann::json* distributed);

// Rank 0's staging folder as every rank sees it (`staging`: rank 0's, null elsewhere): rank 0 writes
// a token into it and sends its path and the token; each rank reads the token back there. Every rank
// gets the folder when all of them saw it (a shared file system), so each can write its batches'
// PNGs and journal lines there; else none does (rank 0 logs which ranks did not see it).
std::optional<std::filesystem::path> shared_staging(ProcessGroup& group, const std::filesystem::path* staging,
                                                    const Logger& log);

// Rank 0's journal (`root`: created or resumed there; null elsewhere) handed to every rank: its
// process index, schedule and finished batches. Rank 0's and the other ranks' batch lines then go
// to journal.rank-R.jsonl in `dir`. Returns this rank's journal (rank 0: `*root`).
EvalJournal share_journal(ProcessGroup& group, const std::filesystem::path& dir, EvalJournal* root);

}  // namespace diffbench
