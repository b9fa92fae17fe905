// KID and FID math against torchmetrics on given features (tests/metrics/data/distribution-expected.*,
// made by tools/make-distribution-reference.py) and FID against its closed form for Gaussians.
#include <cmath>

#include <ATen/CPUGeneratorImpl.h>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/distribution.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

fs::path data(const std::string& name) { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests" / "metrics" / "data" / name; }

// A random rotation Q of R^d (QR of a Gaussian matrix) and Q·diag(l)·Qᵀ.
at::Tensor spd(const std::vector<double>& l, at::Generator& gen) {
  const auto d = static_cast<int64_t>(l.size());
  const at::Tensor q = std::get<0>(at::linalg_qr(at::randn({d, d}, gen, at::kDouble)));
  return q.matmul(at::diag(at::tensor(l, at::kDouble))).matmul(q.t());
}

}  // namespace

TEST(Distribution, KidAndFidMatchTorchmetrics) {
  const StateDict f = load_safetensors(data("distribution-expected.safetensors"));
  const auto ref = read_json_file(data("distribution-expected.json"));
  const at::Tensor real = f.at("real"), fake = f.at("fake");
  EXPECT_NEAR(poly_mmd(real.narrow(0, 0, 20), fake.narrow(0, 0, 20)), ref["poly_mmd_first20"].get<double>(), 1e-9);

  KidOptions o;
  o.subsets = ref["kid"]["subsets"];
  o.subset_size = ref["kid"]["subset_size"];
  o.seed = ref["kid"]["seed"];
  const KidResult k = kid(real, fake, o);
  EXPECT_NEAR(k.mean, ref["kid"]["mean"].get<double>(), 1e-9);
  EXPECT_NEAR(k.std, ref["kid"]["std"].get<double>(), 1e-9);

  FeatureMoments a, b;
  a.add(real.narrow(0, 0, 15));  // streamed in pieces
  a.add(real.narrow(0, 15, 25));
  b.add(fake);
  EXPECT_NEAR(frechet_distance(a, b), ref["fid"].get<double>(), 1e-9 * ref["fid"].get<double>());
  EXPECT_TENSOR_NEAR(a.covariance(), at::cov(real.t()), 1e-12);
}

TEST(Distribution, FrechetDistanceOfGaussiansMatchesTheClosedForm) {
  // N(0, I) vs N(v, S) with S = Q diag(l) Qᵀ: FID = |v|² + Σ (1 - sqrt(l_i))².
  at::Generator gen = at::detail::createCPUGenerator(5);
  const std::vector<double> l = {0.25, 1.0, 2.25, 4.0};
  const double analytic = 2.0 + 0.25 + 0.0 + 0.25 + 1.0;
  const at::Tensor s = spd(l, gen), v = at::tensor({1.0, 0.0, 0.0, 1.0}, at::kDouble);
  const at::Tensor eye = at::eye(4, at::kDouble), zero = at::zeros({4}, at::kDouble);
  EXPECT_NEAR(frechet_distance(zero, eye, v, s), analytic, 1e-10);
  EXPECT_NEAR(frechet_distance(v, s, v, s), 0.0, 1e-10);

  // Sampled features, streamed 1,000 at a time: the estimate approaches the closed form.
  const at::Tensor chol = at::linalg_cholesky(s);
  FeatureMoments x, y;
  for (int i = 0; i < 40; ++i) {
    x.add(at::randn({1000, 4}, gen, at::kDouble));
    y.add(at::randn({1000, 4}, gen, at::kDouble).matmul(chol.t()) + v);
  }
  EXPECT_EQ(x.count(), 40000);
  EXPECT_NEAR(frechet_distance(x, y), analytic, 0.05);
}

TEST(Distribution, BadInputsAreUsageErrors) {
  const at::Tensor a = at::randn({10, 4}, at::kDouble);
  KidOptions o;
  o.subset_size = 11;
  EXPECT_THROW(kid(a, a, o), UsageError);  // subset larger than the sets
  o.subset_size = 5;
  EXPECT_THROW(kid(a, at::randn({10, 3}, at::kDouble), o), UsageError);
  EXPECT_NO_THROW(kid(a, a, o));
  FeatureMoments m;
  EXPECT_THROW(m.covariance(), UsageError);
  m.add(a);
  EXPECT_THROW(m.add(at::randn({3, 5}, at::kDouble)), UsageError);
  EXPECT_THROW(frechet_distance(at::zeros({4}), at::eye(4), at::zeros({3}), at::eye(3)), UsageError);
}
