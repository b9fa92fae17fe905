#include "diffbench/metrics/stats.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <random>
#include <string>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

void require_nonempty(const std::vector<double>& v, const char* fn) {
  if (v.empty()) throw UsageError(std::string(fn) + ": empty sample");
}

// numpy's _lerp: a + (b - a)·t, computed from the upper end when t >= 0.5.
double lerp(double a, double b, double t) {
  const double diff = b - a;
  return t >= 0.5 ? b - diff * (1.0 - t) : a + diff * t;
}

double percentile_sorted(const std::vector<double>& sorted, double p) {
  const double virtual_index = double(sorted.size() - 1) * (p / 100.0);
  const double below = std::floor(virtual_index);
  const auto lo = static_cast<size_t>(below);
  const size_t hi = std::min(lo + 1, sorted.size() - 1);
  return lerp(sorted[lo], sorted[hi], virtual_index - below);
}

// Uniform index in [0, n) by rejection, identical on every platform.
size_t draw_index(std::mt19937_64& rng, size_t n) {
  const uint64_t range = n;
  const uint64_t limit = std::numeric_limits<uint64_t>::max() - std::numeric_limits<uint64_t>::max() % range;
  uint64_t x;
  do x = rng();
  while (x >= limit);
  return static_cast<size_t>(x % range);
}

}  // namespace

double mean(const std::vector<double>& v) {
  require_nonempty(v, "mean");
  double sum = 0;
  for (double x : v) sum += x;
  return sum / double(v.size());
}

double median(const std::vector<double>& v) {
  require_nonempty(v, "median");
  std::vector<double> s(v);
  std::sort(s.begin(), s.end());
  const size_t n = s.size();
  return n % 2 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2.0;
}

double percentile(const std::vector<double>& v, double p) {
  require_nonempty(v, "percentile");
  if (!(p >= 0.0 && p <= 100.0)) throw UsageError("percentile: p must be in [0, 100], got " + std::to_string(p));
  std::vector<double> s(v);
  std::sort(s.begin(), s.end());
  return percentile_sorted(s, p);
}

void bootstrap_resample(size_t n, size_t resamples, uint64_t seed,
                        const std::function<void(size_t draw, const std::vector<size_t>& indices)>& visit) {
  if (n == 0) throw UsageError("bootstrap: empty samples");
  if (resamples == 0) throw UsageError("bootstrap: resamples must be positive");
  std::mt19937_64 rng(seed);
  std::vector<size_t> indices(n);
  for (size_t r = 0; r < resamples; ++r) {
    for (size_t i = 0; i < n; ++i) indices[i] = draw_index(rng, n);
    visit(r, indices);
  }
}

PairedStats paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, size_t resamples,
                             uint64_t seed) {
  if (a.size() != b.size())
    throw UsageError("paired_bootstrap: samples differ in length (" + std::to_string(a.size()) + " vs " +
                     std::to_string(b.size()) + ")");
  if (a.empty()) throw UsageError("paired_bootstrap: empty samples");
  std::vector<double> d(a.size());
  for (size_t i = 0; i < a.size(); ++i) d[i] = a[i] - b[i];
  return bootstrap_mean(d, resamples, seed);
}

PairedStats bootstrap_mean(const std::vector<double>& d, size_t resamples, uint64_t seed) {
  if (d.empty()) throw UsageError("bootstrap: empty sample");
  if (resamples == 0) throw UsageError("bootstrap: resamples must be positive");
  const size_t n = d.size();
  PairedStats out;
  out.n = n;
  out.mean_diff = mean(d);
  std::vector<double> means(resamples);
  bootstrap_resample(n, resamples, seed, [&](size_t r, const std::vector<size_t>& idx) {
    double sum = 0;
    for (size_t i : idx) sum += d[i];
    means[r] = sum / double(n);
  });
  std::sort(means.begin(), means.end());
  out.ci_low = percentile_sorted(means, 2.5);
  out.ci_high = percentile_sorted(means, 97.5);
  return out;
}

RatioStats ratio_bootstrap(const std::vector<double>& a, const std::vector<double>& b, size_t resamples,
                           uint64_t seed) {
  if (a.size() != b.size())
    throw UsageError("ratio_bootstrap: samples differ in length (" + std::to_string(a.size()) + " vs " +
                     std::to_string(b.size()) + ")");
  if (a.empty()) throw UsageError("ratio_bootstrap: empty samples");
  if (resamples == 0) throw UsageError("ratio_bootstrap: resamples must be positive");
  for (size_t i = 0; i < a.size(); ++i)
    if (!std::isfinite(a[i]) || !std::isfinite(b[i]) || a[i] < 0 || b[i] < 0)
      throw UsageError("ratio_bootstrap: values must be finite and >= 0 (pair " + std::to_string(i) + ")");
  auto ratio_of = [&](const std::vector<size_t>* idx) {
    double sa = 0, sb = 0;
    const size_t n = idx ? idx->size() : a.size();
    for (size_t k = 0; k < n; ++k) {
      const size_t i = idx ? (*idx)[k] : k;
      sa += a[i];
      sb += b[i];
    }
    return sa / sb;
  };
  RatioStats out;
  out.n = a.size();
  out.ratio = ratio_of(nullptr);
  std::vector<double> ratios(resamples);
  bootstrap_resample(a.size(), resamples, seed,
                     [&](size_t r, const std::vector<size_t>& idx) { ratios[r] = ratio_of(&idx); });
  std::sort(ratios.begin(), ratios.end());
  out.ci_low = percentile_sorted(ratios, 2.5);
  out.ci_high = percentile_sorted(ratios, 97.5);
  return out;
}

double coefficient_of_variation(const std::vector<double>& v) {
  const double m = mean(v);
  if (v.size() < 2) return 0.0;
  double ss = 0;
  for (double x : v) ss += (x - m) * (x - m);
  return std::sqrt(ss / double(v.size() - 1)) / m;
}

}  // namespace diffbench
