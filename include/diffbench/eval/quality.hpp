// Quality beyond the CLIP score: how close each candidate image is to its reference image (eval:
// the baseline's image of the same prompt and seed; score --against: the image of the same name),
// as PSNR and SSIM per image, their means with a bootstrap interval, per-metric thresholds and the
// per-prompt table sorted worst first.
#pragma once

#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/metrics/lpips.hpp"
#include "diffbench/metrics/metric_set.hpp"
#include "diffbench/metrics/psnr.hpp"

namespace diffbench {

struct FidelityThresholds {
  std::optional<double> min_psnr;  // dB, on the mean over images (--min-psnr)
  std::optional<double> min_ssim;  // on the mean over images (--min-ssim)
  std::optional<double> max_lpips; // on the mean over images (--max-lpips)
};

// Per-image scores; entry i belongs to image i. Only the metrics asked for are filled.
struct FidelityScores {
  std::vector<CappedPsnr> psnr;
  std::vector<double> ssim;
  std::vector<double> lpips;

  // Scores one pair of uint8 [3,H,W] images (same size) and appends the results; `lpips` is
  // needed when metrics.lpips is set.
  void add(const at::Tensor& reference_u8, const at::Tensor& image_u8, const MetricSet& metrics,
           const Lpips* lpips = nullptr);
  // Every pair of two uint8 [N,3,H,W] batches. PSNR and SSIM run in float64 on `device`: on CUDA
  // one pair after another there, on the CPU each pair on a thread of its own (LPIPS where its
  // weights are, the CPU).
  void add_batch(const at::Tensor& reference_u8, const at::Tensor& images_u8, const MetricSet& metrics,
                 const Lpips* lpips = nullptr, const at::Device& device = at::kCPU);
};

// report.json's metrics.psnr, metrics.ssim and metrics.lpips (only those computed): what is
// compared, the direction ("higher-is-better"; LPIPS "lower-is-better"), mean with a 95 %
// percentile-bootstrap interval of the mean (bootstrap_mean, 10,000 resamples, `seed`), median,
// worst value and its index, per-image values,
// for PSNR the cap and how many images were capped or identical, for SSIM loss_pct = (1 - mean) x 100
// (--max-metric-loss); with a threshold, the threshold
// and whether the mean passed it. A failed threshold adds a sentence naming the option to *failures.
nlohmann::json fidelity_metrics_json(const FidelityScores& scores, const std::string& compares,
                                     const FidelityThresholds& thresholds, uint64_t seed,
                                     std::vector<std::string>* failures);

// report.json's per_prompt: one object per prompt {index, prompt, clip_baseline, clip_candidate,
// clip_drop (baseline - candidate), psnr_db, psnr_capped, ssim, lpips} (fields of metrics not computed are
// left out), worst prompt first: lowest PSNR when computed, else lowest SSIM, else highest LPIPS, else largest CLIP
// drop (ties by index). `order` receives a description of that order, e.g. "psnr_db ascending".
nlohmann::json per_prompt_rows(const std::vector<std::string>& prompts, const std::vector<double>& clip_baseline,
                               const std::vector<double>& clip_candidate, const FidelityScores& fidelity,
                               std::string* order);

}  // namespace diffbench
