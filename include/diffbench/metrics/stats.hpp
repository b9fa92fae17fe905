// Summary statistics and the paired bootstrap used to compare two methods on the same prompts.
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <vector>

namespace diffbench {

struct PairedStats {
  double mean_diff = 0;  // mean of a_i - b_i
  double ci_low = 0;     // 95% percentile-bootstrap interval of that mean
  double ci_high = 0;
  size_t n = 0;          // number of pairs
};

// Paired bootstrap of the mean difference d_i = a_i - b_i (a and b scored on the same items):
//  - mean_diff = mean(d) (sequential sum in double, divided by n);
//  - `resamples` times, draw n indices uniformly with replacement and take the mean of those d_i;
//  - ci_low / ci_high = the 2.5th / 97.5th percentiles (linear interpolation, see percentile())
//    of the resampled means.
// Deterministic for a seed on every platform: one std::mt19937_64 seeded with `seed` drives all
// draws, in order; an index is rng() mod n after rejecting the rng() values at or above the
// largest multiple of n (no std::uniform_int_distribution, whose algorithm is library-defined).
// Throws UsageError when a and b differ in length, are empty, or resamples is 0.
PairedStats paired_bootstrap(const std::vector<double>& a, const std::vector<double>& b, size_t resamples = 10000,
                             uint64_t seed = 0);

// The same percentile bootstrap for the mean of one sample (e.g. per-prompt PSNR of candidate
// vs baseline, already a paired quantity): mean_diff is mean(v), the interval is drawn exactly as
// above (paired_bootstrap(a, b) equals bootstrap_mean(a - b)). Throws UsageError when v is empty
// or resamples is 0.
PairedStats bootstrap_mean(const std::vector<double>& v, size_t resamples = 10000, uint64_t seed = 0);

// The bootstrap's resampling, shared by every interval here: `resamples` times, n indices drawn
// uniformly with replacement (the draws described above, in that order), each set of indices
// handed to `visit` with the draw's number. Throws UsageError when n or resamples is 0.
void bootstrap_resample(size_t n, size_t resamples, uint64_t seed,
                        const std::function<void(size_t draw, const std::vector<size_t>& indices)>& visit);

struct RatioStats {
  double ratio = 0;    // sum(a) / sum(b)
  double ci_low = 0;   // 95% percentile-bootstrap interval of that ratio, resampling pairs
  double ci_high = 0;
  size_t n = 0;        // number of pairs
};

// Paired bootstrap of a ratio of totals, sum(a_i) / sum(b_i) (a_i and b_i measured together, e.g.
// the same batch timed by two pipelines): the pairs are resampled as in paired_bootstrap, with the
// same seed giving the same draws. Throws UsageError when a and b differ in length, are empty,
// resamples is 0, or a value is negative or not finite.
RatioStats ratio_bootstrap(const std::vector<double>& a, const std::vector<double>& b, size_t resamples = 10000,
                           uint64_t seed = 0);

// Coefficient of variation: sample standard deviation (n - 1) over the mean; 0 for a single value.
// Throws UsageError on an empty sample.
double coefficient_of_variation(const std::vector<double>& v);

// Arithmetic mean (sequential sum). Throws UsageError on an empty sample.
double mean(const std::vector<double>& v);

// Median: the middle value, or the mean of the two middle values (numpy.median).
double median(const std::vector<double>& v);

// The p-th percentile, p in [0, 100], as numpy.percentile's default 'linear' method: sort, take the
// virtual index (n - 1)·p/100 and interpolate between its neighbours (numpy's lerp formula).
double percentile(const std::vector<double>& v, double p);

}  // namespace diffbench
