#include "diffbench/metrics/distribution.hpp"

#include <cmath>
#include <string>

#include <ATen/CPUGeneratorImpl.h>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

at::Tensor as_features(const at::Tensor& f, const char* what) {
  if (f.dim() != 2 || f.size(0) == 0 || f.size(1) == 0)
    throw UsageError(std::string(what) + " features must be a non-empty matrix [N, D], got " +
                         std::string(c10::str(f.sizes())),
                     "features");
  return f.to(at::kCPU, at::kDouble);
}

at::Tensor poly_kernel(const at::Tensor& a, const at::Tensor& b, int degree, double gamma, double coef) {
  return (a.matmul(b.t()) * gamma + coef).pow(degree);
}

}  // namespace

double poly_mmd(const at::Tensor& x_in, const at::Tensor& y_in, int degree, std::optional<double> gamma, double coef) {
  const at::Tensor x = as_features(x_in, "first"), y = as_features(y_in, "second");
  if (x.sizes() != y.sizes() || x.size(0) < 2)
    throw UsageError("MMD needs two feature sets of the same shape with at least 2 rows", "features");
  const double g = gamma ? *gamma : 1.0 / double(x.size(1));
  const at::Tensor k_xx = poly_kernel(x, x, degree, g, coef);
  const at::Tensor k_yy = poly_kernel(y, y, degree, g, coef);
  const at::Tensor k_xy = poly_kernel(x, y, degree, g, coef);
  const double m = double(x.size(0));
  const double off_diag = (k_xx.sum() - k_xx.diagonal().sum() + k_yy.sum() - k_yy.diagonal().sum()).item<double>();
  return off_diag / (m * (m - 1.0)) - 2.0 * k_xy.sum().item<double>() / (m * m);
}

KidResult kid(const at::Tensor& real_in, const at::Tensor& fake_in, const KidOptions& o) {
  const at::Tensor real = as_features(real_in, "real"), fake = as_features(fake_in, "generated");
  if (real.size(1) != fake.size(1))
    throw UsageError("feature dimensions differ: " + std::to_string(real.size(1)) + " vs " +
                         std::to_string(fake.size(1)),
                     "features");
  if (o.subsets < 1) throw UsageError("KID needs at least one subset", "kid");
  if (o.subset_size < 2 || o.subset_size > real.size(0) || o.subset_size > fake.size(0))
    throw UsageError("KID subset size " + std::to_string(o.subset_size) + " must be at least 2 and at most the " +
                         "smaller set (" + std::to_string(std::min(real.size(0), fake.size(0))) + " images)",
                     "kid");
  at::Generator gen = at::detail::createCPUGenerator(o.seed);
  std::vector<double> scores;
  for (int64_t s = 0; s < o.subsets; ++s) {
    const at::Tensor pr = at::randperm(real.size(0), gen, at::kLong).narrow(0, 0, o.subset_size);
    const at::Tensor pf = at::randperm(fake.size(0), gen, at::kLong).narrow(0, 0, o.subset_size);
    scores.push_back(poly_mmd(real.index_select(0, pr), fake.index_select(0, pf), o.degree, o.gamma, o.coef));
  }
  KidResult r;
  for (double v : scores) r.mean += v;
  r.mean /= double(scores.size());
  for (double v : scores) r.std += (v - r.mean) * (v - r.mean);
  r.std = std::sqrt(r.std / double(scores.size()));
  return r;
}

void FeatureMoments::add(const at::Tensor& features) {
  const at::Tensor f = as_features(features, "streamed");
  if (n_ == 0) {
    sum_ = at::zeros({f.size(1)}, at::kDouble);
    outer_sum_ = at::zeros({f.size(1), f.size(1)}, at::kDouble);
  } else if (f.size(1) != sum_.size(0)) {
    throw UsageError("feature dimension changed from " + std::to_string(sum_.size(0)) + " to " +
                         std::to_string(f.size(1)),
                     "features");
  }
  sum_ += f.sum(0);
  outer_sum_ += f.t().matmul(f);
  n_ += f.size(0);
}

at::Tensor FeatureMoments::mean() const {
  if (n_ == 0) throw UsageError("no features were added", "features");
  return sum_ / double(n_);
}

at::Tensor FeatureMoments::covariance() const {
  if (n_ < 2) throw UsageError("a covariance needs at least 2 feature rows", "features");
  const at::Tensor mu = mean().unsqueeze(0);  // [1, D]
  return (outer_sum_ - double(n_) * mu.t().matmul(mu)) / double(n_ - 1);
}

double frechet_distance(const at::Tensor& mu1, const at::Tensor& sigma1, const at::Tensor& mu2,
                        const at::Tensor& sigma2) {
  const int64_t d = mu1.numel();
  if (mu2.numel() != d || sigma1.sizes() != at::IntArrayRef({d, d}) || sigma2.sizes() != at::IntArrayRef({d, d}))
    throw UsageError("Fréchet distance needs two means [D] and two covariances [D, D] of one D", "features");
  const at::Tensor m1 = mu1.to(at::kCPU, at::kDouble), m2 = mu2.to(at::kCPU, at::kDouble);
  const at::Tensor s1 = sigma1.to(at::kCPU, at::kDouble), s2 = sigma2.to(at::kCPU, at::kDouble);
  const double a = (m1 - m2).square().sum().item<double>();
  const double b = (s1.trace() + s2.trace()).item<double>();
  const double c = at::real(at::sqrt(at::linalg_eigvals(s1.matmul(s2)))).sum().item<double>();
  return a + b - 2.0 * c;
}

double frechet_distance(const FeatureMoments& a, const FeatureMoments& b) {
  return frechet_distance(a.mean(), a.covariance(), b.mean(), b.covariance());
}

}  // namespace diffbench
