// Preference scores (PickScore, HPS v2: metrics/preference.hpp) in eval and score: each image against its prompt,
// baseline and candidate side by side with the paired per-prompt difference and its bootstrap interval.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/log.hpp"
#include "diffbench/metrics/metric_set.hpp"
#include "diffbench/metrics/preference.hpp"

namespace diffbench {

struct PreferenceScorers {
  std::unique_ptr<PreferenceScorer> pickscore, hps;
  bool any() const { return pickscore || hps; }
};

// Checks (before any work) that each preference metric asked for has its folder: UsageError naming
// --pickscore / --hps.
void validate_preference_options(const MetricSet& metrics, const std::filesystem::path& pickscore,
                                 const std::filesystem::path& hps);

// Loads the scorers of the metrics asked for.
PreferenceScorers load_preference_scorers(const MetricSet& metrics, const std::filesystem::path& pickscore,
                                          const std::filesystem::path& hps);

// eval's metrics.pickscore / metrics.hps: direction higher-is-better, definition, baseline and candidate means
// over every (prompt, seed), loss_pct = (baseline - candidate) / baseline x 100 (null when the baseline's mean is
// not above 0), `paired` (baseline - candidate per prompt, averaged over its seeds, with a 95 % bootstrap interval
// of 10,000 resamples seeded with `seed`) and the first seed's per-image values of both sides. `baseline_images`
// and `candidate_images` hold one uint8 [N,3,H,W] batch per seed, in prompt order.
nlohmann::json eval_preference_metrics(const PreferenceScorers& scorers, const std::vector<at::Tensor>& baseline_images,
                                       const std::vector<at::Tensor>& candidate_images,
                                       const std::vector<std::string>& prompts, int batch_size, uint64_t seed,
                                       const Logger& log);

// The same from scores already computed (eval scores each batch as it comes): per seed, one per prompt.
nlohmann::json preference_metrics_json(const PreferenceScorer& scorer, const std::vector<std::vector<double>>& baseline,
                                       const std::vector<std::vector<double>>& candidate, uint64_t seed);

// report.json's per_prompt rows (per_prompt_rows in quality.hpp) with the preference scores of `metrics` added
// as the CLIP score's are: NAME_baseline, NAME_candidate and NAME_drop (baseline - candidate) for pickscore and
// hps, from the first seed's per-image values. Rows are returned unchanged when neither was computed.
nlohmann::json with_preference_columns(nlohmann::json per_prompt, const nlohmann::json& metrics);

// score's pickscore / hps: {direction, definition, mean, per_image} of per-image values.
nlohmann::json score_preference_json(const PreferenceScorer& scorer, const std::vector<double>& per_image);

}  // namespace diffbench
