// Distances between two sets of image features (one row per image), for distribution metrics:
// KID (kernel inception distance) and FID (Fréchet distance), computed in float64 as torchmetrics'
// KernelInceptionDistance and FrechetInceptionDistance compute them from their features. The
// feature extractor (Inception-v3 for the published metrics) is not part of this file.
#pragma once

#include <cstdint>
#include <optional>

#include <ATen/ATen.h>

namespace diffbench {

// torchmetrics.image.kid.poly_mmd: the unbiased squared MMD between the rows of x and y (same
// count m >= 2) with the polynomial kernel k(a, b) = (gamma·a·b + coef)^degree, gamma defaulting
// to 1 / feature dimension: (sum of k_xx off the diagonal + same for k_yy) / (m(m-1)) - 2·sum(k_xy) / m².
double poly_mmd(const at::Tensor& x, const at::Tensor& y, int degree = 3, std::optional<double> gamma = std::nullopt,
                double coef = 1.0);

struct KidOptions {
  int64_t subsets = 100;       // torchmetrics' defaults
  int64_t subset_size = 1000;  // must not exceed either set's size (small sets: lower it)
  int degree = 3;
  std::optional<double> gamma;
  double coef = 1.0;
  uint64_t seed = 0;           // of the subset draws
};

struct KidResult {
  double mean = 0;  // over subsets
  double std = 0;   // population standard deviation over subsets (torchmetrics: std(unbiased=False))
};

// torchmetrics' KernelInceptionDistance.compute() on given features: `subsets` times, a random
// subset of `subset_size` rows of `real` (the first subset_size entries of randperm(n_real)), then
// one of `fake` likewise, and poly_mmd of the two. The permutations come from one LibTorch CPU
// generator seeded with `seed`, so they equal Python's after torch.manual_seed(seed). UsageError when
// subset_size exceeds a set, is below 2, or the feature dimensions differ.
KidResult kid(const at::Tensor& real, const at::Tensor& fake, const KidOptions& options = {});

// Mean and covariance of features, accumulated a batch at a time (features are streamed, never all
// held): sum and sum of outer products in float64, covariance (sum xxᵀ - n·μμᵀ) / (n - 1) as
// torchmetrics' FrechetInceptionDistance computes it.
class FeatureMoments {
 public:
  void add(const at::Tensor& features);  // [N, D]
  int64_t count() const { return n_; }
  at::Tensor mean() const;        // [D] float64
  at::Tensor covariance() const;  // [D, D] float64; needs count() >= 2

 private:
  at::Tensor sum_, outer_sum_;
  int64_t n_ = 0;
};

// Fréchet distance between N(mu1, sigma1) and N(mu2, sigma2), as torchmetrics' _compute_fid:
// |mu1 - mu2|² + tr(sigma1) + tr(sigma2) - 2·Σ Re(sqrt(eigenvalues of sigma1·sigma2)), in float64
// (the trace of the matrix square root of sigma1·sigma2 from its eigenvalues).
double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2);
double frechet_distance(const FeatureMoments& a, const FeatureMoments& b);

}  // namespace diffbench
