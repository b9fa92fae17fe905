// The journal of an evaluation's finished batches, so that an interrupted `eval` can be resumed
// (`--resume`) to the same images, scores and report as an uninterrupted run, by one process or by
// a multi-process run of any world size.
//
// `journal.jsonl` lies in the run's staging folder beside the batches' PNGs. Line 1 is the header:
// the key material (everything the images, times and scores depend on: both specs with their
// model files' hashes, prompts, seeds, batch size, noise mode, repeats, warm-up, metrics, CLIP
// scorer files, device, version; not the world size) and the schedule chosen. Each process (a
// multi-process run's ranks together count as one) adds a `process` line with its world size;
// each finished batch a `batch` line (side, pass, batch, its record and timings, per-prompt CLIP
// scores, the method counters of that batch alone, the noise generator's state), written after the
// batch's PNGs, in one write() with O_APPEND, then fsync'ed. One process writes its batch lines
// into journal.jsonl; rank R of a multi-process run into `journal.rank-R.jsonl` (one writer per
// file, as appends from several machines to one file are not atomic on network file systems).
// Batch lines name their batch globally (batch index and first prompt of the whole prompt list),
// so a resumed run of another world size finds them. A kill at any moment leaves every complete
// line readable; a torn last line (no newline) is ignored, and dropped on resume.
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
  int rank = 0;                      // and which of its ranks
  BatchRecord record;                // prompts, stage times, counters, non-finite flags
  double start_s = 0;                // seconds after that process's first timed batch
  std::optional<double> device_seconds;  // the batch by CUDA events (none off CUDA)
  int64_t peak_memory_bytes = -1;
  std::string peak_memory_kind;
  nlohmann::json methods;            // pass 0: the side's method counters of this batch alone
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

// Sums the integer counters of two MethodStack::to_json() arrays (the stats of the same methods);
// `a` null or empty: `b`.
nlohmann::json add_method_counters(const nlohmann::json& a, const nlohmann::json& b);
// The counters of `after` minus those of `before` (the stats of the same methods, later): what one
// batch counted. Values that are not integer counters are `after`'s.
nlohmann::json method_counters_delta(const nlohmann::json& before, const nlohmann::json& after);

// A batch line and back (also how rank 0 hands the finished batches to the other ranks).
nlohmann::json journal_batch_json(const JournalBatch& batch);
JournalBatch journal_batch_from_json(const nlohmann::json& line);
ScheduleChoice schedule_from_json(const nlohmann::json& j);  // ScheduleChoice::to_json() back

class EvalJournal {
 public:
  static constexpr const char* kFile = "journal.jsonl";

  // Starts the journal of a new run in `dir` (by one process, or rank 0 of `world_size`).
  static EvalJournal create(const std::filesystem::path& dir, const nlohmann::json& material,
                            const ScheduleChoice& schedule, int world_size = 1);
  // Continues the journal in `dir` (every batch file: journal.jsonl's and the ranks'): UsageError
  // naming what differs when its material is not `material`; InputError when it is damaged (a torn
  // last line is not damage: it is dropped).
  static EvalJournal resume(const std::filesystem::path& dir, const nlohmann::json& material, int world_size = 1);
  // The journal as rank `rank` (not 0) of a multi-process run uses it: what rank 0 read
  // (`batches`, `schedule`, `process`), its batch lines going to journal.rank-R.jsonl.
  static EvalJournal for_rank(const std::filesystem::path& dir, int rank, int process, std::vector<JournalBatch> batches,
                              const ScheduleChoice& schedule);
  // Rank 0 of a multi-process run: its batch lines go to journal.rank-0.jsonl from now on.
  void write_batches_as_rank(int rank);

  const std::vector<JournalBatch>& batches() const { return batches_; }
  std::vector<JournalBatch>& batches() { return batches_; }
  const ScheduleChoice& schedule() const { return schedule_; }
  int process() const { return process_; }     // this process's index
  int processes() const { return process_ + 1; }
  // Each process's world size, this one's last (rank 0 and one process only).
  const std::vector<int>& world_sizes() const { return world_sizes_; }
  const std::filesystem::path& file() const { return file_; }

  void append(const JournalBatch& batch) const;  // one line, durable when it returns
  // Removes journal.jsonl and every rank's batch file (the finished report does not need them).
  void remove_files() const;

 private:
  void append_line(const std::filesystem::path& file, const nlohmann::json& line) const;
  std::filesystem::path file_;        // journal.jsonl
  std::filesystem::path batch_file_;  // where this process's batch lines go
  std::vector<JournalBatch> batches_;
  ScheduleChoice schedule_;
  int process_ = 0;
  int rank_ = 0;
  std::vector<int> world_sizes_;
};

}  // namespace diffbench
