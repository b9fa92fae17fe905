// Timing verdicts: in which order the evaluator times the two pipelines' batches, and what the
// paired batch times say about the speedup (an interval, noise measures, the --min-speedup check).
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffbench {

enum class Schedule {
  Interleaved,  // both pipelines loaded; timed batches in ABBA order (baseline, candidate, candidate, baseline, ...)
  Sequential,   // one pipeline loaded at a time: every baseline batch, then every candidate batch
};
// Seconds since this process started (Linux /proc, 10 ms steps; 0 where unknown): the set-up
// before a command's own clock starts (loading the libraries) in its wall-clock breakdown.
double process_age_s();

Schedule parse_schedule(const std::string& name);  // "interleaved" | "sequential"
std::string to_string(Schedule schedule);

// One timed batch: side 0 is the baseline, 1 the candidate; `pass` counts the --repeats passes
// over the prompt set, `batch` the batch within the pass.
struct TimedBatch {
  int side = 0;
  int pass = 0;
  size_t batch = 0;
  bool operator==(const TimedBatch& o) const { return side == o.side && pass == o.pass && batch == o.batch; }
};

// Every timed batch of both sides in the order they run. Interleaved: pair k (pass k / batches,
// batch k % batches) runs baseline then candidate for even k and candidate then baseline for odd k,
// so a drift or burst of other load hits both sides alike. Sequential: all baseline passes, then
// all candidate passes.
std::vector<TimedBatch> timing_order(Schedule schedule, size_t batches_per_pass, int repeats);

struct ScheduleChoice {
  Schedule schedule = Schedule::Interleaved;
  bool asked = false;             // chosen with --schedule rather than by memory
  int64_t estimated_bytes = 0;    // both pipelines' weights at their dtype, shared components once
  int64_t free_bytes = 0;         // measured (or --memory-budget) free memory of the device
  std::string reason;             // one sentence for the report
  nlohmann::json to_json() const;
};

// Interleaved when asked for, or (not asked) when the estimate fits in kInterleaveMemoryFraction of
// the free memory; sequential otherwise. The reason says which and why, with both numbers.
constexpr double kInterleaveMemoryFraction = 0.8;
ScheduleChoice choose_schedule(std::optional<Schedule> asked, int64_t estimated_bytes, int64_t free_bytes);

// Above these the timing is flagged as noisy (the `timing_noise` warning).
constexpr double kNoisyIntervalFraction = 0.10;  // an interval end further than 10 % from the speedup
constexpr double kNoisyBatchCv = 0.10;           // a side's coefficient of variation over 10 %
constexpr size_t kFewPairs = 5;                   // fewer timed batch pairs: the interval is rough

struct SpeedupStats {
  double speedup = 0;      // total baseline seconds / total candidate seconds
  double ci_low = 0;       // 95 % bootstrap interval over batch pairs (metrics/stats ratio_bootstrap)
  double ci_high = 0;
  size_t pairs = 0;
  std::vector<double> batch_ratios;  // baseline / candidate seconds of each pair
  double cv_baseline = 0;  // coefficient of variation of each side's seconds per image, batch by batch
  double cv_candidate = 0;
  std::vector<std::string> noise;  // why the timing is flagged as noisy (empty: not noisy)
  bool noisy() const { return !noise.empty(); }
  nlohmann::json to_json() const;
};

// From the two sides' seconds per batch, in pair order (pair k: the same prompts), and each
// batch's image count. Throws UsageError when the lengths differ or a time is not positive.
SpeedupStats speedup_stats(const std::vector<double>& baseline_seconds, const std::vector<double>& candidate_seconds,
                           const std::vector<size_t>& images_per_batch, uint64_t seed, size_t resamples = 10000);

// Automatic timing passes: when --repeats is not given, the interleaved schedule runs up to
// kMaxAutomaticPasses more timed passes over the prompts (both sides, ABBA order continued) while the
// speedup's interval reaches further than ±kNoisyIntervalFraction from it or fewer than kFewPairs
// batch pairs were timed. A side's batch-time CV alone does not ask for more passes.
constexpr int kMaxAutomaticPasses = 4;

// Why the timing needs another pass (empty: it does not).
std::string automatic_pass_reason(const SpeedupStats& stats);

struct AutomaticPasses {
  bool enabled = false;               // --repeats not given (and the interleaved schedule)
  int passes = 0;                     // extra passes run
  std::vector<std::string> reasons;   // why each ran, in order
  std::string note() const;           // one sentence for the report ("" when none ran)
  nlohmann::json to_json() const;
};

// Calls run_pass(reason) while automatic_pass_reason(stats()) is not empty, at most max_passes
// times; stats() measures the batches timed so far.
AutomaticPasses run_automatic_passes(const std::function<SpeedupStats()>& stats,
                                     const std::function<void(const std::string&)>& run_pass,
                                     int max_passes = kMaxAutomaticPasses);

// --min-speedup X fails only when the interval's upper end is below X. A pass whose point
// estimate or lower end is below X, or whose timing is noisy, is `uncertain` and says why.
struct SpeedupCheck {
  bool failed = false;
  bool uncertain = false;
  std::string message;  // the failure, or the note on an uncertain pass (empty for a clear pass)
};
SpeedupCheck check_min_speedup(const SpeedupStats& stats, double min_speedup);

}  // namespace diffbench
