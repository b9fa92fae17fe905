// The timed part of an evaluation: both pipelines loaded and warmed up, then their batches timed
// in the schedule's order (eval/timing.hpp). A side makes --repeats passes over the prompts per
// seed (pass p uses seed p / repeats); images come from each seed's first pass, method counters
// from the very first, times from all. Without --repeats (EvalOptions::auto_repeats) the interleaved
// schedule may add passes over the first seed's prompts (eval/timing.hpp run_automatic_passes). On
// CUDA each timed batch is also timed by CUDA events (eval/device_timer.hpp).
#pragma once

#include <functional>

#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/accel/spec_run.hpp"
#include "diffbench/eval/evaluator.hpp"
#include "diffbench/eval/timing.hpp"

namespace diffbench {

struct TimedRuns {
  PipelineRun baseline, candidate;
  std::vector<at::Tensor> baseline_images, candidate_images;  // per seed: uint8 [N,3,H,W]
  ScheduleChoice schedule;
  std::string order;  // the timed batches as run: B = baseline, C = candidate
  bool baseline_timed = true;  // false: options.baseline_result's run and images, the baseline not run
  AutomaticPasses automatic;  // the passes run because --repeats was not given (interleaved only)
};

// With options.baseline_result and the sequential schedule the baseline is not run: its times and
// images are the reused ones. The interleaved schedule times it again beside the candidate.
//
// Both pipelines' weights at their dtype, in bytes; a component whose files are identical in the
// two (as the evaluator shares them) is counted once.
int64_t estimate_weights_bytes(const ModelOptions& baseline, const ModelOptions& candidate);

// Runs both sides as prepared (accel/spec_run.hpp); the generate options' seed is set per pass.
// `first_index` is the global index of prompts[0] (a rank's shard in a multi-process run), which
// seeds per-prompt noise (GenerateOptions::first_index).
// `before_timing` (if set) runs once, right before the first timed batch: work overlapping the
// loads (the CLIP scorer's) is finished there, so it never overlaps a timed batch.
TimedRuns run_timed(SpecRun& baseline, SpecRun& candidate, const std::vector<std::string>& prompts,
                    const EvalOptions& options, const Logger& log, const std::function<void()>& before_timing = {},
                    size_t first_index = 0);

}  // namespace diffbench
