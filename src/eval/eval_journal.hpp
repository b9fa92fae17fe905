// The journal of an evaluation's finished batches, so that an interrupted `eval` can be resumed
// (`--resume`) to the same images, scores and report as an uninterrupted run.
//
// `journal.jsonl` lies in the run's staging folder beside the batches' PNGs. Line 1 is the header:
// the key material (everything the images, times and scores depend on: both specs with their
// model files' hashes, prompts, seeds, batch size, noise mode, repeats, warm-up, metrics, CLIP
// scorer files, device, version) and the schedule chosen. Each process that works on the run
// adds a `process` line; each finished batch a `batch` line (side, pass, batch, its record and
// timings, per-prompt CLIP scores, method counters, the noise generator's state), written after
// the batch's PNGs, in one write() with O_APPEND, then fsync'ed. A kill at any moment leaves every
// complete line readable; a torn last line (no newline) is ignored.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/eval/evaluator.hpp"
#include "diffbench/eval/timing.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

// One finished timed batch as the journal holds it.
struct JournalBatch {
  TimedBatch at;                     // side (0 baseline, 1 candidate), pass, batch within the pass
  int process = 0;                   // which process ran it (0: the first)
  BatchRecord record;                // prompts, stage times, counters, non-finite flags
  double start_s = 0;                // seconds after that process's first timed batch
  std::optional<double> device_seconds;  // the batch by CUDA events (none off CUDA)
  int64_t peak_memory_bytes = -1;
  std::string peak_memory_kind;
  nlohmann::json methods;            // pass 0: the side's method counters so far (summed over processes)
  std::vector<uint8_t> noise_state;  // diffusers noise mode: the generator after this batch
  bool images = false;               // its images are PNGs in the staging folder
  std::vector<double> clip;          // per-prompt CLIP scores (image passes, when scored here)
};

// What the journal's key is made of (see above); `prompts` are the loaded prompt texts.
nlohmann::json eval_journal_material(const PipelineSpec& baseline, const PipelineSpec& candidate,
                                     const EvalOptions& options, const std::vector<std::string>& prompts);

// The paths (a.b.c) where two materials differ, each with both values shortened, at most `max`.
std::vector<std::string> material_differences(const nlohmann::json& journal, const nlohmann::json& now,
                                              size_t max = 6);

// Sums the integer counters of two MethodStack::to_json() arrays (the stats of the same methods).
nlohmann::json add_method_counters(const nlohmann::json& a, const nlohmann::json& b);

class EvalJournal {
 public:
  static constexpr const char* kFile = "journal.jsonl";

  // Starts the journal of a new run in `dir`.
  static EvalJournal create(const std::filesystem::path& dir, const nlohmann::json& material,
                            const ScheduleChoice& schedule);
  // Continues the journal in `dir`: UsageError naming what differs when its material is not
  // `material`; InputError when it is damaged (a torn last line is not damage).
  static EvalJournal resume(const std::filesystem::path& dir, const nlohmann::json& material);

  const std::vector<JournalBatch>& batches() const { return batches_; }
  const ScheduleChoice& schedule() const { return schedule_; }
  int process() const { return process_; }     // this process's index
  int processes() const { return process_ + 1; }
  const std::filesystem::path& file() const { return file_; }

  void append(const JournalBatch& batch) const;  // one line, durable when it returns

 private:
  void append_line(const nlohmann::json& line) const;
  std::filesystem::path file_;
  std::vector<JournalBatch> batches_;
  ScheduleChoice schedule_;
  int process_ = 0;
};

}  // namespace diffbench
