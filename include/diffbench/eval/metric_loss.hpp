// --max-metric-loss NAME=PCT: one threshold for any metric that scores the baseline's and the candidate's
// images on one scale, on the candidate's loss relative to the baseline in percent (the metric's loss_pct in
// report.json): clip (as --max-quality-loss), pickscore, hps, ssim (1 - mean SSIM: the baseline's SSIM with
// itself is 1), and,
// against --reference-images, fid and kid (the increase over the baseline's own value).
#pragma once

#include <map>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/metrics/metric_set.hpp"

namespace diffbench {

using MetricLossLimits = std::map<std::string, double>;  // metric name -> maximum loss in percent

// Parses "NAME=PCT" (PCT a finite number >= 0) into `limits`; UsageError naming --max-metric-loss for bad
// text or a name given twice.
void add_metric_loss_limit(const std::string& text, MetricLossLimits& limits);

// Before any work: every limit names a metric that is computed and has a relative loss. psnr and lpips have
// none (the baseline's value against itself is infinite or 0: UsageError pointing to --min-psnr and
// --max-lpips), nor have kid and fid without reference images.
void validate_metric_loss_limits(const MetricLossLimits& limits, const MetricSet& metrics, bool reference_images);

// Checks each limit against metrics[NAME]["loss_pct"] and records it there as "loss_threshold" {option,
// max_loss_pct, passed}; a loss above the limit, or an undefined one (null or absent), adds a sentence to
// *failures. Returns {NAME: PCT} for report.json's thresholds.
nlohmann::json apply_metric_loss_limits(const MetricLossLimits& limits, nlohmann::json& metrics,
                                        std::vector<std::string>* failures);

}  // namespace diffbench
