// The timed part of an evaluation: both pipelines loaded and warmed up, then their batches timed
// in the schedule's order (eval/timing.hpp). A side makes --repeats passes over the prompts per
// seed (pass p uses seed p / repeats); images come from each seed's first pass, method counters
// from the very first, times from all. Without --repeats (EvalOptions::auto_repeats) the interleaved
// schedule may add passes over the first seed's prompts (eval/timing.hpp run_automatic_passes). On
// CUDA each timed batch is also timed by CUDA events (eval/device_timer.hpp).
// Images are handed to the hooks a batch at a time and not kept, unless TimedRunHooks::keep_images.
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

struct JournalBatch;  // eval_journal.hpp

struct TimedRuns {
  PipelineRun baseline, candidate;
  // Per seed, uint8 [N,3,H,W]: only with TimedRunHooks::keep_images (a multi-process run, whose
  // images are gathered to rank 0), and the baseline's only when it was timed.
  std::vector<at::Tensor> baseline_images, candidate_images;
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

// The schedule chosen by memory (or options.schedule): both pipelines' weights against the
// device's free memory (or options.memory_budget).
ScheduleChoice eval_schedule(const SpecRun& baseline, const SpecRun& candidate, const EvalOptions& options);

// What the caller does around the timed batches; every member may be left empty.
struct TimedRunHooks {
  // Runs once, right before the first timed batch: work overlapping the loads (the CLIP scorer's)
  // is finished there, so it never overlaps a timed batch.
  std::function<void()> before_timing;
  // Runs before each batch this process times, and after it (with its journal entry, and its
  // images, uint8 [n,3,H,W] on the CPU, for the passes that keep images; else undefined): scores,
  // writes and journals the batch. Either may throw (an interruption) to stop the run. The entry
  // names the batch globally: `at.batch` and `record.first` count from the whole prompt list's
  // start, not this rank's shard's.
  std::function<void()> before_batch;
  std::function<void(JournalBatch&, const at::Tensor&)> after_batch;
  // Batches earlier processes finished (globally named, as above; those outside this rank's shard
  // are ignored), skipped here wherever the timing order reaches them; for those of the passes that
  // keep images, finished_images runs in their place (to read them back, and score them when the
  // entry has no CLIP scores).
  const std::vector<JournalBatch>* finished = nullptr;
  std::function<void(JournalBatch&)> finished_images;
  int process = 0;  // this process's index (all ranks of a multi-process run share it), for the journal entries
  // Keep the image-keeping passes' images in TimedRuns (a multi-process run gathers them to rank 0);
  // else they are only handed to after_batch.
  bool keep_images = false;
};

// Runs both sides as prepared (accel/spec_run.hpp) under `schedule`; the generate options' seed is
// set per pass. The sides' per_seed_clip are the scores after_batch put into the entries (and
// the finished batches'), when it scored. `first_index` is the global index of prompts[0] (a
// rank's shard in a multi-process run), which seeds per-prompt noise (GenerateOptions::first_index).
TimedRuns run_timed(SpecRun& baseline, SpecRun& candidate, const std::vector<std::string>& prompts,
                    const EvalOptions& options, const ScheduleChoice& schedule, const Logger& log,
                    const TimedRunHooks& hooks = {}, size_t first_index = 0);

}  // namespace diffbench
