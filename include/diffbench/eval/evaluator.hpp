// The evaluation protocol: baseline and candidate pipelines on the same prompts, seeds and batch
// size; time per image, CLIP score, speedup, quality loss, paired statistics, thresholds.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/eval/quality.hpp"
#include "diffbench/eval/spec.hpp"
#include "diffbench/log.hpp"
#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

struct EvalOptions {
  PipelineSpec candidate;
  std::optional<PipelineSpec> baseline;  // default: candidate.baseline()
  std::string prompts;                    // prompt source (see io/prompts.hpp)
  size_t num_samples = 32;
  int batch_size = 4;
  uint64_t seed = 42;
  int warmup = 1;                         // untimed batches before each pipeline's timed run
  NoiseMode noise = NoiseMode::PerPrompt;
  std::filesystem::path clip;             // CLIP scorer folder
  ClipScoreMode clip_score = ClipScoreMode::PerSampleClamp;
  double max_quality_loss = 5.0;          // percent
  MetricSet metrics = {true, true, true};  // clip (required), psnr, ssim: --metrics
  FidelityThresholds fidelity;            // --min-psnr, --min-ssim, --max-lpips
  std::filesystem::path lpips;            // LPIPS weights (safetensors), for metrics.lpips
  std::optional<double> min_speedup;
  std::optional<double> max_latency;      // candidate seconds per image
  bool allow_model_mismatch = false;
  std::filesystem::path out;              // report folder
  bool force = false;
};

struct PipelineRun {
  PipelineSpec spec;
  std::vector<double> batch_seconds;
  double seconds_per_image = 0;
  StageTimes stages;
  double unet_calls_per_image = 0;
  double skipped_module_fraction = 0;  // skipped / asked before_module hooks (0 without methods)
  int64_t peak_memory_bytes = -1;  // device allocator peak on CUDA, process peak RSS on the CPU
  std::string peak_memory_kind;    // "cuda" | "host-rss"
  nlohmann::json reused_components = nlohmann::json::array();  // taken from the pipeline before
  std::vector<double> per_sample_clip;
  double clip_score = 0;
  nlohmann::json methods = nlohmann::json::array();
};

struct EvalResult {
  nlohmann::json report;  // the whole report.json
  bool passed = true;
  std::vector<std::string> failures;
  std::filesystem::path out;
};

// Same model (weight-file contents), same pipeline type: returns the consistency section of the
// report; a model mismatch is an InputError unless allowed.
nlohmann::json check_consistency(const PipelineSpec& baseline, const PipelineSpec& candidate, bool allow_mismatch);

EvalResult run_eval(const EvalOptions& options, const Logger& log);

}  // namespace diffbench
