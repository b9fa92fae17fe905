#include "diffbench/eval/quality.hpp"

#include <algorithm>
#include <cstdio>
#include <future>
#include <numeric>

#include "diffbench/error.hpp"
#include "diffbench/metrics/ssim.hpp"
#include "diffbench/metrics/stats.hpp"

namespace diffbench {

namespace {

constexpr size_t kResamples = 10000;

std::string fmt(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

// The summary every fidelity metric has.
nlohmann::json summary(const std::vector<double>& v, const std::string& compares, uint64_t seed,
                       bool higher_is_better = true) {
  const PairedStats s = bootstrap_mean(v, kResamples, seed);
  const auto worst = higher_is_better ? std::min_element(v.begin(), v.end()) : std::max_element(v.begin(), v.end());
  return {{"compares", compares},
          {"direction", higher_is_better ? "higher-is-better" : "lower-is-better"},
          {"mean", s.mean_diff},
          {"ci95", {s.ci_low, s.ci_high}},
          {"resamples", kResamples},
          {"median", median(v)},
          {"worst", *worst},
          {"worst_index", worst - v.begin()},
          {"n", v.size()},
          {"per_image", v}};
}

void check_min(nlohmann::json& m, const std::optional<double>& min, const char* option, const std::string& what,
               int digits, const std::string& unit, std::vector<std::string>* failures) {
  if (!min) return;
  const double mean = m["mean"].get<double>();
  const bool passed = mean >= *min;
  m["threshold"] = {{"option", option}, {"min_mean", *min}, {"passed", passed}};
  if (!passed && failures)
    failures->push_back("mean " + what + " " + fmt(mean, digits) + unit + " is below " + option + " " +
                        fmt(*min, digits) + unit + " (worst image #" + std::to_string(m["worst_index"].get<long>()) +
                        ": " + fmt(m["worst"].get<double>(), digits) + unit + ")");
}

void check_max(nlohmann::json& m, const std::optional<double>& max, const char* option, const std::string& what,
               int digits, std::vector<std::string>* failures) {
  if (!max) return;
  const double mean = m["mean"].get<double>();
  const bool passed = mean <= *max;
  m["threshold"] = {{"option", option}, {"max_mean", *max}, {"passed", passed}};
  if (!passed && failures)
    failures->push_back("mean " + what + " " + fmt(mean, digits) + " exceeds " + option + " " + fmt(*max, digits) +
                        " (worst image #" + std::to_string(m["worst_index"].get<long>()) + ": " +
                        fmt(m["worst"].get<double>(), digits) + ")");
}

}  // namespace

void FidelityScores::add(const at::Tensor& reference_u8, const at::Tensor& image_u8, const MetricSet& metrics,
                         const Lpips* lpips_net) {
  if (reference_u8.scalar_type() != at::kByte || image_u8.scalar_type() != at::kByte)
    throw UsageError("fidelity metrics need uint8 images", "fidelity");
  if (metrics.lpips && !lpips_net) throw UsageError("LPIPS needs its weights: --lpips FILE", "--lpips");
  if (metrics.psnr) psnr.push_back(psnr_capped(image_u8, reference_u8));
  if (metrics.ssim) ssim.push_back(diffbench::ssim(image_u8, reference_u8));
  if (metrics.lpips) lpips.push_back(lpips_net->distance(image_u8, reference_u8));
}

void FidelityScores::add_batch(const at::Tensor& reference_u8, const at::Tensor& images_u8, const MetricSet& metrics,
                               const Lpips* lpips_net, const at::Device& device) {
  if (reference_u8.sizes() != images_u8.sizes() || reference_u8.dim() != 4)
    throw UsageError("fidelity metrics need two image batches [N,3,H,W] of the same shape", "fidelity");
  MetricSet on_cpu = metrics;
  if (device.is_cuda() && (metrics.psnr || metrics.ssim)) {
    // PSNR and SSIM on the GPU (float64 there too), one pair after another.
    const at::Tensor ref = reference_u8.to(device), img = images_u8.to(device);
    MetricSet on_device = metrics;
    on_device.lpips = false;
    for (int64_t i = 0; i < img.size(0); ++i) add(ref[i], img[i], on_device);
    on_cpu.psnr = on_cpu.ssim = false;
    if (!on_cpu.lpips) return;
  }
  // Each image pair on a thread of its own (CPU metrics, one image at a time); results are kept in
  // image order.
  std::vector<std::future<FidelityScores>> parts;
  for (int64_t i = 0; i < images_u8.size(0); ++i)
    parts.push_back(std::async(std::launch::async, [&, i] {
      FidelityScores one;
      one.add(reference_u8[i], images_u8[i], on_cpu, lpips_net);
      return one;
    }));
  for (auto& part : parts) {
    const FidelityScores one = part.get();
    psnr.insert(psnr.end(), one.psnr.begin(), one.psnr.end());
    ssim.insert(ssim.end(), one.ssim.begin(), one.ssim.end());
    lpips.insert(lpips.end(), one.lpips.begin(), one.lpips.end());
  }
}

nlohmann::json fidelity_metrics_json(const FidelityScores& f, const std::string& compares,
                                     const FidelityThresholds& t, uint64_t seed, std::vector<std::string>* failures) {
  nlohmann::json out = nlohmann::json::object();
  if (!f.psnr.empty()) {
    std::vector<double> db;
    size_t capped = 0, identical = 0;
    for (const auto& p : f.psnr) {
      db.push_back(p.db);
      capped += p.capped;
      identical += p.identical;
    }
    nlohmann::json m = summary(db, compares, seed);
    m["unit"] = "dB";
    m["definition"] = "10·log10(255² / MSE) on uint8 RGB, per image";
    m["cap_db"] = kPsnrCapDb;
    m["capped"] = capped;
    m["identical"] = identical;
    check_min(m, t.min_psnr, "--min-psnr", "PSNR", 2, " dB", failures);
    out["psnr"] = m;
  }
  if (!f.ssim.empty()) {
    nlohmann::json m = summary(f.ssim, compares, seed);
    m["definition"] = "torchmetrics SSIM: Gaussian window 11, sigma 1.5, K1 0.01, K2 0.03, data range 255, "
                      "mean over RGB channels and pixels; 1 = identical";
    m["loss_pct"] = (1.0 - m["mean"].get<double>()) * 100.0;  // the baseline's SSIM with itself is 1
    check_min(m, t.min_ssim, "--min-ssim", "SSIM", 4, "", failures);
    out["ssim"] = m;
  }
  if (!f.lpips.empty()) {
    nlohmann::json m = summary(f.lpips, compares, seed, false);
    m["definition"] = "lpips.LPIPS(net='alex', version='0.1') on images scaled to [-1, 1]; 0 = identical";
    check_max(m, t.max_lpips, "--max-lpips", "LPIPS", 4, failures);
    out["lpips"] = m;
  }
  return out;
}

nlohmann::json per_prompt_rows(const std::vector<std::string>& prompts, const std::vector<double>& clip_baseline,
                               const std::vector<double>& clip_candidate, const FidelityScores& f,
                               std::string* order) {
  const size_t n = prompts.size();
  const bool clip = clip_baseline.size() == n && clip_candidate.size() == n;
  const bool psnr = f.psnr.size() == n, ssim = f.ssim.size() == n, lpips = f.lpips.size() == n;
  std::vector<double> badness(n, 0.0);  // larger = worse
  std::string by = "index";
  for (size_t i = 0; i < n; ++i) {
    if (psnr) badness[i] = -f.psnr[i].db;
    else if (ssim) badness[i] = -f.ssim[i];
    else if (lpips) badness[i] = f.lpips[i];
    else if (clip) badness[i] = clip_baseline[i] - clip_candidate[i];
  }
  if (psnr) by = "psnr_db ascending";
  else if (ssim) by = "ssim ascending";
  else if (lpips) by = "lpips descending";
  else if (clip) by = "clip_drop descending";
  std::vector<size_t> idx(n);
  std::iota(idx.begin(), idx.end(), size_t{0});
  std::stable_sort(idx.begin(), idx.end(), [&](size_t a, size_t b) { return badness[a] > badness[b]; });
  nlohmann::json rows = nlohmann::json::array();
  for (size_t i : idx) {
    nlohmann::json row = {{"index", i}, {"prompt", prompts[i]}};
    if (clip) {
      row["clip_baseline"] = clip_baseline[i];
      row["clip_candidate"] = clip_candidate[i];
      row["clip_drop"] = clip_baseline[i] - clip_candidate[i];
    }
    if (psnr) {
      row["psnr_db"] = f.psnr[i].db;
      row["psnr_capped"] = f.psnr[i].capped;
    }
    if (ssim) row["ssim"] = f.ssim[i];
    if (lpips) row["lpips"] = f.lpips[i];
    rows.push_back(row);
  }
  if (order) *order = by;
  return rows;
}

}  // namespace diffbench
