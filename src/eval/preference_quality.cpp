#include "diffbench/eval/preference_quality.hpp"

#include <numeric>

#include "diffbench/error.hpp"
#include "diffbench/metrics/stats.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

double average(const std::vector<double>& v) { return std::accumulate(v.begin(), v.end(), 0.0) / double(v.size()); }

}  // namespace

nlohmann::json preference_metrics_json(const PreferenceScorer& scorer, const std::vector<std::vector<double>>& base_scores,
                                       const std::vector<std::vector<double>>& cand_scores, uint64_t seed) {
  const size_t seeds = base_scores.size(), n = seeds ? base_scores.front().size() : 0;
  std::vector<double> all_base, all_cand, prompt_base(n, 0.0), prompt_cand(n, 0.0), first_base, first_cand;
  for (size_t k = 0; k < seeds; ++k) {
    const auto& b = base_scores[k];
    const auto& c = cand_scores[k];
    if (b.size() != n || c.size() != n) throw RuntimeFailure("preference scores: one per prompt and seed expected");
    if (k == 0) first_base = b, first_cand = c;
    for (size_t i = 0; i < n; ++i) {
      all_base.push_back(b[i]);
      all_cand.push_back(c[i]);
      prompt_base[i] += b[i] / double(seeds);
      prompt_cand[i] += c[i] / double(seeds);
    }
  }
  const double base = average(all_base), cand = average(all_cand);
  const PairedStats paired = paired_bootstrap(prompt_base, prompt_cand, 10000, seed);
  return {{"compares", "each image with its prompt"},
          {"direction", "higher-is-better"},
          {"definition", scorer.definition()},
          {"baseline", base},
          {"candidate", cand},
          {"loss_pct", base > 0 ? nlohmann::json((base - cand) / base * 100.0) : nlohmann::json()},
          {"paired",
           {{"diff", seeds > 1 ? "baseline - candidate, per prompt, averaged over its seeds" : "baseline - candidate, per prompt"},
            {"mean_diff", paired.mean_diff},
            {"ci95", {paired.ci_low, paired.ci_high}},
            {"resamples", 10000}}},
          {"baseline_per_image", first_base},
          {"candidate_per_image", first_cand}};
}

namespace {

nlohmann::json side_by_side(const PreferenceScorer& scorer, const std::vector<at::Tensor>& base_images,
                            const std::vector<at::Tensor>& cand_images, const std::vector<std::string>& prompts,
                            int batch_size, uint64_t seed) {
  std::vector<std::vector<double>> base, cand;
  for (size_t k = 0; k < base_images.size(); ++k) {
    base.push_back(scorer.score(base_images[k], prompts, batch_size));
    cand.push_back(scorer.score(cand_images[k], prompts, batch_size));
  }
  return preference_metrics_json(scorer, base, cand, seed);
}

}  // namespace

void validate_preference_options(const MetricSet& m, const fs::path& pickscore, const fs::path& hps) {
  if (m.pickscore && pickscore.empty())
    throw UsageError("PickScore needs its CLIPModel folder: --pickscore DIR", "--pickscore");
  if (m.hps && hps.empty()) throw UsageError("HPS v2 needs its open_clip folder: --hps DIR", "--hps");
}

PreferenceScorers load_preference_scorers(const MetricSet& m, const fs::path& pickscore, const fs::path& hps) {
  validate_preference_options(m, pickscore, hps);
  PreferenceScorers s;
  if (m.pickscore) s.pickscore = PreferenceScorer::load(PreferenceModel::PickScore, pickscore);
  if (m.hps) s.hps = PreferenceScorer::load(PreferenceModel::Hps, hps);
  return s;
}

nlohmann::json eval_preference_metrics(const PreferenceScorers& scorers, const std::vector<at::Tensor>& base_images,
                                       const std::vector<at::Tensor>& cand_images,
                                       const std::vector<std::string>& prompts, int batch_size, uint64_t seed,
                                       const Logger& log) {
  nlohmann::json out = nlohmann::json::object();
  for (const PreferenceScorer* s : {scorers.pickscore.get(), scorers.hps.get()}) {
    if (!s) continue;
    log.info("scoring with " + to_string(s->model()));
    out[to_string(s->model())] = side_by_side(*s, base_images, cand_images, prompts, batch_size, seed);
  }
  return out;
}

nlohmann::json with_preference_columns(nlohmann::json rows, const nlohmann::json& metrics) {
  for (const char* name : {"pickscore", "hps"}) {
    if (!metrics.contains(name)) continue;
    const nlohmann::json& m = metrics[name];
    const nlohmann::json& b = m.value("baseline_per_image", nlohmann::json::array());
    const nlohmann::json& c = m.value("candidate_per_image", nlohmann::json::array());
    for (auto& row : rows) {
      const size_t i = row["index"].get<size_t>();
      if (i >= b.size() || i >= c.size() || !b[i].is_number() || !c[i].is_number()) continue;
      row[std::string(name) + "_baseline"] = b[i];
      row[std::string(name) + "_candidate"] = c[i];
      row[std::string(name) + "_drop"] = b[i].get<double>() - c[i].get<double>();
    }
  }
  return rows;
}

nlohmann::json score_preference_json(const PreferenceScorer& scorer, const std::vector<double>& per_image) {
  return {{"direction", "higher-is-better"},
          {"definition", scorer.definition()},
          {"mean", per_image.empty() ? nlohmann::json() : nlohmann::json(average(per_image))},
          {"per_image", per_image}};
}

}  // namespace diffbench
