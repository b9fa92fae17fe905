// The evaluation protocol: baseline and candidate pipelines on the same prompts, seeds and batch
// size; time per image, CLIP score, speedup, quality loss, paired statistics, thresholds.
#pragma once

#include <csignal>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/eval/distribution_quality.hpp"
#include "diffbench/eval/metric_loss.hpp"
#include "diffbench/eval/preference_quality.hpp"
#include "diffbench/eval/quality.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "diffbench/eval/timing.hpp"
#include "diffbench/log.hpp"
#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

struct BaselineResult;  // eval/baseline_cache.hpp
class ProcessGroup;     // dist/process_group.hpp

// An evaluation stopped between two batches because a signal asked it to (EvalOptions::stop): its
// staging folder is kept and the message says how to continue (--resume). The command exits with
// 128 + signal (130 SIGINT, 143 SIGTERM).
class Interrupted : public Error {
 public:
  Interrupted(int signal, const std::string& message, const std::string& where = {})
      : Error(ErrorKind::Runtime, message, where), signal_(signal) {}
  int signal() const noexcept { return signal_; }
  int exit_code() const noexcept { return 128 + signal_; }

 private:
  int signal_;
};

struct EvalOptions {
  PipelineSpec candidate;
  std::optional<PipelineSpec> baseline;  // default: candidate.baseline()
  std::string prompts;                    // prompt source (see io/prompts.hpp)
  size_t num_samples = 32;
  int batch_size = 4;
  uint64_t seed = 42;
  std::vector<uint64_t> seeds;            // the protocol once per seed, same prompts (empty: just `seed`)
  int warmup = 1;                         // untimed batches before each pipeline's timed run
  NoiseMode noise = NoiseMode::PerPrompt;
  std::filesystem::path clip;             // CLIP scorer folder (when metrics.clip)
  nlohmann::json clip_source;             // how it was chosen (eval/protocol.hpp ScorerChoice), for the report
  std::vector<std::string> defaults_used; // "option=value" for each protocol option left at its default
  ClipScoreMode clip_score = ClipScoreMode::PerSampleClamp;
  double max_quality_loss = 5.0;          // percent
  MetricSet metrics = {true, true, true};  // clip, psnr, ssim (lpips, kid, fid): --metrics
  FidelityThresholds fidelity;            // --min-psnr, --min-ssim, --max-lpips
  std::filesystem::path lpips;            // LPIPS weights (safetensors), for metrics.lpips
  std::filesystem::path inception;        // FID Inception-v3 weights (safetensors), for metrics.kid / fid
  std::filesystem::path reference_images; // PNGs both runs' image sets are also compared with (KID/FID)
  DistributionThresholds distribution;    // --max-fid-increase, --max-kid
  MetricLossLimits max_metric_loss;       // --max-metric-loss NAME=PCT
  std::filesystem::path pickscore, hps;   // preference scorer folders, for metrics.pickscore / hps
  std::optional<double> min_speedup;
  std::optional<double> max_latency;      // candidate seconds per image
  bool allow_model_mismatch = false;
  bool allow_identical = false;           // a candidate equal to its baseline (to measure timing noise)
  bool allow_task_change = false;         // baseline and candidate differ in size or guidance
  bool allow_nonfinite = false;           // NaN/inf latents or images do not stop the run
  int repeats = 1;                        // timed passes over the prompt set per side
  bool auto_repeats = false;              // --repeats not given: more interleaved passes while the timing
                                          // needs them (eval/timing.hpp run_automatic_passes)
  std::optional<Schedule> schedule;       // default: interleaved when both pipelines fit in memory
  std::optional<int64_t> memory_budget;   // bytes taken as free instead of measuring (for the schedule)
  std::filesystem::path out;              // report folder
  bool embed_images = false;              // report.html carries its images as data URIs
  bool force = false;
  // Continue the interrupted run of `out` from its journal (eval_journal.hpp) instead of removing it,
  // whatever the world size of the run that made it and of this one.
  bool resume = false;
  // Set (to the signal's number) by a signal handler: the run stops after the batch under way,
  // keeps its staging folder and throws Interrupted. Null: nothing asks it to stop.
  const volatile std::sig_atomic_t* stop = nullptr;
  // A baseline already run with this baseline spec and protocol (a suite's shared one, a cache
  // entry): its images and CLIP scores are reused; its times too under the sequential schedule,
  // while the interleaved schedule times the baseline again beside the candidate.
  std::shared_ptr<const BaselineResult> baseline_result;
  // Seconds spent before the run on its baseline cache key (run_eval_cached: hashing the model's and
  // the scorer's files the first time they are seen): the wall-clock breakdown names them apart from
  // the process's set-up.
  double cache_key_s = 0;
  // A multi-process run's group (not owned; null: one process). Each rank generates a contiguous
  // shard of whole batches, writing and journalling its PNGs in rank 0's staging folder when every
  // rank sees it (else rank 0 gathers the images); rank 0 gathers the timings, scores, and writes the
  // report (docs/distributed.md). The other ranks return an EvalResult with an empty report. A signal
  // to any rank (`stop`) stops every rank after its batch under way.
  ProcessGroup* group = nullptr;
};

struct PipelineRun {
  PipelineSpec spec;
  std::vector<double> batch_seconds;   // every timed batch, all passes, in prompt order per pass
  std::vector<double> batch_device_seconds;  // the same batches by CUDA events (empty off CUDA)
  std::vector<size_t> batch_images;    // images in each of those batches
  std::vector<double> batch_start_s;   // when each began, seconds after the first timed batch of either side
  std::vector<int> batch_process;      // which process timed each (0 unless the run was resumed: --resume)
  double seconds_per_image = 0;
  StageTimes stages;
  double unet_calls_per_image = 0;
  double skipped_module_fraction = 0;  // skipped / asked before_module hooks (0 without methods)
  int64_t peak_memory_bytes = -1;  // device allocator peak on CUDA, process peak RSS on the CPU
  std::string peak_memory_kind;    // "cuda" | "host-rss"; "...+both-loaded" when interleaved
  nlohmann::json reused_components = nlohmann::json::array();  // taken from the pipeline before
  nlohmann::json load_s = nlohmann::json::object();  // the pipeline's load report (seconds per component)
  double load_wall_s = 0;    // Txt2ImgPipeline::load, wall clock (summed over loads when sequential)
  double warmup_wall_s = 0;  // the untimed warm-up batches
  std::vector<double> per_sample_clip;               // the first seed's, in prompt order
  std::vector<std::vector<double>> per_seed_clip;   // every seed's (seed-major)
  double clip_score = 0;                            // over every (prompt, seed)
  nlohmann::json methods = nlohmann::json::array();  // counters of the first timed pass
  std::vector<BatchRecord> nonfinite;  // batches (first pass) with NaN/inf, when allowed
};

struct EvalResult {
  nlohmann::json report;  // the whole report.json
  bool passed = true;
  std::vector<std::string> failures;
  // One per failure: quality_loss (CLIP), fidelity (PSNR/SSIM/LPIPS), too_slow, latency.
  std::vector<std::string> failure_codes;
  std::filesystem::path out;
  std::shared_ptr<const BaselineResult> baseline_result;  // the baseline this run generated or reused
};

// Same model (weight-file contents), same pipeline type: returns the consistency section of the
// report; a model mismatch is an InputError unless allowed.
nlohmann::json check_consistency(const PipelineSpec& baseline, const PipelineSpec& candidate, bool allow_mismatch);

// Is this a meaningful comparison? A candidate identical to its baseline (same model, as the
// consistency section says, and the same spec and methods) is a UsageError unless allowed; a
// different size or guidance changes the task and is a UsageError unless allowed. Returns the
// notes for the report ("identical" when allowed).
nlohmann::json check_comparable(const PipelineSpec& baseline, const PipelineSpec& candidate,
                                const nlohmann::json& consistency, const EvalOptions& options);

// The seeds the protocol runs with: `seeds`, or `seed` alone.
std::vector<uint64_t> eval_seeds(const EvalOptions& options);

// The protocol each side's generations run under (its seed: the first of eval_seeds).
RunProtocol eval_protocol(const EvalOptions& options);

// Range checks of every number in the options (UsageError naming the option).
void validate_eval_options(const EvalOptions& options);

EvalResult run_eval(const EvalOptions& options, const Logger& log);

}  // namespace diffbench
