#include "diffbench/eval/metric_loss.hpp"

#include <cmath>

#include "diffbench/error.hpp"
#include "util/format.hpp"

namespace diffbench {

namespace {

constexpr const char* kOption = "--max-metric-loss";

bool computed(const MetricSet& m, const std::string& name) {
  return (name == "clip" && m.clip) || (name == "ssim" && m.ssim) || (name == "kid" && m.kid) ||
         (name == "fid" && m.fid) || (name == "psnr" && m.psnr) || (name == "lpips" && m.lpips) ||
         (name == "pickscore" && m.pickscore) || (name == "hps" && m.hps);
}

}  // namespace

void add_metric_loss_limit(const std::string& text, MetricLossLimits& limits) {
  const size_t eq = text.find('=');
  if (eq == std::string::npos || eq == 0)
    throw UsageError("expected NAME=PCT, e.g. ssim=5 (got '" + text + "')", kOption);
  const std::string name = text.substr(0, eq), pct_text = text.substr(eq + 1);
  double pct = 0;
  size_t used = 0;
  try {
    pct = std::stod(pct_text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (pct_text.empty() || used != pct_text.size() || !std::isfinite(pct) || pct < 0)
    throw UsageError("the limit of '" + name + "' must be a finite number >= 0 (got '" + pct_text + "')", kOption);
  if (!limits.emplace(name, pct).second) throw UsageError("metric '" + name + "' is given twice", kOption);
}

void validate_metric_loss_limits(const MetricLossLimits& limits, const MetricSet& m, bool reference_images) {
  for (const auto& [name, pct] : limits) {
    if (name == "psnr")
      throw UsageError("psnr has no relative loss (the baseline's PSNR with itself is infinite): use --min-psnr DB",
                       kOption);
    if (name == "lpips")
      throw UsageError("lpips has no relative loss (the baseline's LPIPS with itself is 0): use --max-lpips X", kOption);
    if (name != "clip" && name != "ssim" && name != "kid" && name != "fid" && name != "pickscore" && name != "hps")
      throw UsageError("unknown metric '" + name + "' (with a relative loss: clip, ssim, pickscore, hps, and kid, "
                                                   "fid with --reference-images)",
                       kOption);
    if (!computed(m, name)) throw UsageError("metric '" + name + "' is not computed: add it to --metrics", kOption);
    if ((name == "kid" || name == "fid") && !reference_images)
      throw UsageError(name + " has a relative loss only against reference images (--reference-images DIR); "
                              "without them use --max-" + (name == "kid" ? "kid X" : "fid-increase X"),
                       kOption);
  }
}

nlohmann::json apply_metric_loss_limits(const MetricLossLimits& limits, nlohmann::json& metrics,
                                        std::vector<std::string>* failures) {
  nlohmann::json out = nlohmann::json::object();
  for (const auto& [name, pct] : limits) {
    out[name] = pct;
    if (!metrics.contains(name)) continue;  // validate_metric_loss_limits named it before any work
    nlohmann::json& m = metrics[name];
    const nlohmann::json loss = m.value("loss_pct", nlohmann::json());
    const bool defined = loss.is_number() && std::isfinite(loss.get<double>());
    const bool passed = defined && loss.get<double>() <= pct;
    m["loss_threshold"] = {{"option", kOption}, {"max_loss_pct", pct}, {"passed", passed}};
    if (passed || !failures) continue;
    if (!defined)
      failures->push_back(name + " loss is undefined (the baseline's value is not above 0): " + kOption + " " + name +
                          "=" + fixed(pct, 2) + " % cannot be checked");
    else
      failures->push_back(name + " loss " + fixed(loss.get<double>(), 2) + " % exceeds " + kOption + " " + name + "=" +
                          fixed(pct, 2) + " %");
  }
  return out;
}

}  // namespace diffbench
