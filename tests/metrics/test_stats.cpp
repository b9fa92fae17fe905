#include <cmath>
#include <random>

#include "diffbench/error.hpp"
#include "diffbench/metrics/stats.hpp"
#include "test_support.hpp"

using namespace diffbench;

TEST(Stats, PercentileMatchesNumpyLinear) {
  // Reference values from numpy.percentile / numpy.median (default 'linear' method).
  const std::vector<double> v = {3.5, -1.25, 7.0, 2.0, 2.0, 10.5, 0.1};
  EXPECT_DOUBLE_EQ(percentile(v, 0), -1.25);
  EXPECT_DOUBLE_EQ(percentile(v, 2.5), -1.0474999999999999);
  EXPECT_DOUBLE_EQ(percentile(v, 25), 1.05);
  EXPECT_DOUBLE_EQ(percentile(v, 33.3), 1.9961999999999995);
  EXPECT_DOUBLE_EQ(percentile(v, 50), 2.0);
  EXPECT_DOUBLE_EQ(percentile(v, 62.5), 3.125);
  EXPECT_DOUBLE_EQ(percentile(v, 97.5), 9.974999999999998);
  EXPECT_DOUBLE_EQ(percentile(v, 100), 10.5);
  EXPECT_DOUBLE_EQ(percentile({1.0, 2.0}, 50), 1.5);
  EXPECT_DOUBLE_EQ(percentile({0.1, 0.2, 0.7}, 75), 0.44999999999999996);
  EXPECT_DOUBLE_EQ(percentile({0.1, 0.2, 0.7}, 70), 0.3999999999999999);
  EXPECT_DOUBLE_EQ(percentile({4.0}, 37), 4.0);
  EXPECT_DOUBLE_EQ(median(v), 2.0);
  EXPECT_DOUBLE_EQ(median(std::vector<double>(v.begin(), v.begin() + 6)), 2.75);
  EXPECT_DOUBLE_EQ(mean({1.0, 2.0, 4.5}), 2.5);
  EXPECT_THROW(percentile(v, 101), UsageError);
  EXPECT_THROW(percentile(v, -1), UsageError);
  EXPECT_THROW(percentile({}, 50), UsageError);
  EXPECT_THROW(mean({}), UsageError);
  EXPECT_THROW(median({}), UsageError);
}

TEST(Stats, PairedBootstrap) {
  std::mt19937_64 gen(123);
  std::normal_distribution<double> noise(0.0, 1.0);
  const size_t n = 200;
  std::vector<double> a(n), b(n);
  for (size_t i = 0; i < n; ++i) {
    b[i] = 30.0 + 3.0 * noise(gen);
    a[i] = b[i] + 0.3 + noise(gen);  // paired: a is b plus a shift and per-item noise
  }
  const auto s = paired_bootstrap(a, b, 4000, 7);
  EXPECT_EQ(s.n, n);
  double sum = 0;
  for (size_t i = 0; i < n; ++i) sum += a[i] - b[i];
  EXPECT_EQ(s.mean_diff, sum / double(n));  // exactly the mean of the differences
  EXPECT_LT(s.ci_low, s.mean_diff);
  EXPECT_GT(s.ci_high, s.mean_diff);
  // Width close to the normal approximation 2·1.96·sd/√n of the differences' mean.
  double ss = 0;
  for (size_t i = 0; i < n; ++i) ss += std::pow(a[i] - b[i] - s.mean_diff, 2);
  const double normal_width = 2 * 1.96 * std::sqrt(ss / double(n - 1)) / std::sqrt(double(n));
  EXPECT_NEAR(s.ci_high - s.ci_low, normal_width, 0.15 * normal_width);

  // Deterministic for a seed; another seed gives another interval.
  const auto again = paired_bootstrap(a, b, 4000, 7);
  EXPECT_EQ(again.ci_low, s.ci_low);
  EXPECT_EQ(again.ci_high, s.ci_high);
  const auto other = paired_bootstrap(a, b, 4000, 8);
  EXPECT_NE(other.ci_low, s.ci_low);
  EXPECT_EQ(other.mean_diff, s.mean_diff);

  // Identical inputs: zero difference, zero-width interval at 0; a constant shift likewise.
  const auto same = paired_bootstrap(a, a);
  EXPECT_EQ(same.mean_diff, 0.0);
  EXPECT_EQ(same.ci_low, 0.0);
  EXPECT_EQ(same.ci_high, 0.0);
  const auto shift = paired_bootstrap(std::vector<double>(n, 1.5), std::vector<double>(n, 1.0), 100);
  EXPECT_EQ(shift.ci_low, 0.5);
  EXPECT_EQ(shift.ci_high, 0.5);

  EXPECT_THROW(paired_bootstrap({1.0}, {1.0, 2.0}), UsageError);
  EXPECT_THROW(paired_bootstrap({}, {}), UsageError);
  EXPECT_THROW(paired_bootstrap({1.0}, {2.0}, 0), UsageError);
}

TEST(Stats, RatioBootstrapSharesTheResampling) {
  std::mt19937_64 gen(5);
  std::uniform_real_distribution<double> u(1.0, 3.0);
  const size_t n = 40;
  std::vector<double> a(n), ones(n, 1.0), zeros(n, 0.0);
  for (auto& x : a) x = u(gen);
  // sum(a[idx]) / sum(1[idx]) is the resampled mean of a: the same draws give the same interval as
  // paired_bootstrap of a against zeros.
  const auto r = ratio_bootstrap(a, ones, 3000, 11);
  const auto p = paired_bootstrap(a, zeros, 3000, 11);
  EXPECT_EQ(r.n, n);
  EXPECT_DOUBLE_EQ(r.ratio, p.mean_diff);
  EXPECT_EQ(r.ci_low, p.ci_low);
  EXPECT_EQ(r.ci_high, p.ci_high);

  // A constant ratio: every resample gives it, a zero-width interval.
  std::vector<double> twice(a);
  for (auto& x : twice) x *= 2.0;
  const auto c = ratio_bootstrap(twice, a, 500, 3);
  EXPECT_DOUBLE_EQ(c.ratio, 2.0);
  EXPECT_DOUBLE_EQ(c.ci_low, 2.0);
  EXPECT_DOUBLE_EQ(c.ci_high, 2.0);

  // Hand-computed: two pairs (3, 1) and (1, 1); a resample is {0,0}: 3, {1,1}: 1 or mixed: 2.
  const auto h = ratio_bootstrap({3.0, 1.0}, {1.0, 1.0}, 4000, 9);
  EXPECT_DOUBLE_EQ(h.ratio, 2.0);
  EXPECT_DOUBLE_EQ(h.ci_low, 1.0);
  EXPECT_DOUBLE_EQ(h.ci_high, 3.0);

  EXPECT_THROW(ratio_bootstrap({1.0}, {1.0, 2.0}), UsageError);
  EXPECT_THROW(ratio_bootstrap({}, {}), UsageError);
  EXPECT_THROW(ratio_bootstrap({NAN}, {1.0}), UsageError);
  EXPECT_THROW(ratio_bootstrap({-1.0}, {1.0}), UsageError);
}

TEST(Stats, CoefficientOfVariation) {
  // mean 4, sample variance ((−2)² + 0 + 2²) / 2 = 4 -> sd 2 -> CV 0.5.
  EXPECT_DOUBLE_EQ(coefficient_of_variation({2.0, 4.0, 6.0}), 0.5);
  EXPECT_DOUBLE_EQ(coefficient_of_variation({3.0}), 0.0);
  EXPECT_DOUBLE_EQ(coefficient_of_variation({1.5, 1.5}), 0.0);
  EXPECT_THROW(coefficient_of_variation({}), UsageError);
}
