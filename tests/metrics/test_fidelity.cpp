// PSNR and SSIM against torchmetrics (tests/metrics/data/fidelity-expected.*, made by
// tools/make-fidelity-reference.py), the metric list parser and the bootstrap of one sample.
#include <cmath>
#include <random>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/metric_set.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "diffbench/metrics/ssim.hpp"
#include "diffbench/metrics/stats.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

fs::path data(const std::string& name) { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests" / "metrics" / "data" / name; }

}  // namespace

TEST(Fidelity, PsnrAndSsimMatchTorchmetrics) {
  const StateDict images = load_safetensors(data("fidelity-expected.safetensors"));
  const auto ref = read_json_file(data("fidelity-expected.json"));
  ASSERT_GE(ref["pairs"].size(), 6u);
  for (const auto& p : ref["pairs"]) {
    const std::string name = p["name"];
    const at::Tensor a = images.at(name + ".a"), b = images.at(name + ".b");
    ASSERT_EQ(a.scalar_type(), at::kByte) << name;
    const double s = ssim(b, a);
    EXPECT_NEAR(s, p["ssim"].get<double>(), 1e-4) << name;
    EXPECT_NEAR(ssim(a, b), s, 1e-12) << name << ": SSIM is symmetric";
    const CappedPsnr c = psnr_capped(b, a);
    if (p["psnr"].is_string()) {
      ASSERT_EQ(p["psnr"], "inf") << name;
      EXPECT_TRUE(std::isinf(psnr(b, a))) << name;
      EXPECT_TRUE(c.identical && c.capped) << name;
      EXPECT_EQ(c.db, kPsnrCapDb) << name;
    } else {
      EXPECT_NEAR(psnr(b, a), p["psnr"].get<double>(), 1e-4) << name;
      EXPECT_FALSE(c.identical || c.capped) << name;
      EXPECT_EQ(c.db, psnr(b, a)) << name;
    }
  }
}

// eval computes PSNR and SSIM on the pipelines' GPU (float64 there too): the values equal the CPU's.
TEST(Fidelity, PsnrAndSsimOnCudaEqualTheCpuValues) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (run on the GPU machine)";
  const StateDict images = load_safetensors(data("fidelity-expected.safetensors"));
  const auto ref = read_json_file(data("fidelity-expected.json"));
  for (const auto& p : ref["pairs"]) {
    const std::string name = p["name"];
    const at::Tensor a = images.at(name + ".a"), b = images.at(name + ".b");
    const at::Tensor ga = a.to(at::kCUDA), gb = b.to(at::kCUDA);
    EXPECT_NEAR(ssim(gb, ga), ssim(b, a), 1e-12) << name;
    const double cpu = psnr(b, a), gpu = psnr(gb, ga);
    if (std::isinf(cpu)) EXPECT_TRUE(std::isinf(gpu)) << name;
    else EXPECT_NEAR(gpu, cpu, 1e-9) << name;
  }
}

TEST(Fidelity, SsimOfFloatImagesUsesRangeOne) {
  const StateDict images = load_safetensors(data("fidelity-expected.safetensors"));
  const at::Tensor a = images.at("noise.a"), b = images.at("noise.b");
  EXPECT_NEAR(ssim(a.to(at::kFloat) / 255.0, b.to(at::kFloat) / 255.0), ssim(a, b), 1e-6);
  EXPECT_NEAR(ssim(a, a), 1.0, 1e-12);
}

TEST(Fidelity, BadShapesAreUsageErrors) {
  const at::Tensor a = at::zeros({3, 16, 16}, at::kByte);
  EXPECT_THROW(ssim(a, at::zeros({3, 16, 17}, at::kByte)), UsageError);
  EXPECT_THROW(ssim(a[0], a[0]), UsageError);                                            // not [C,H,W]
  EXPECT_THROW(ssim(at::zeros({3, 5, 16}, at::kByte), at::zeros({3, 5, 16}, at::kByte)), UsageError);  // < 6 rows
  EXPECT_NO_THROW(ssim(at::zeros({3, 6, 6}, at::kByte), at::zeros({3, 6, 6}, at::kByte)));
  EXPECT_THROW(psnr_capped(a, at::zeros({3, 16, 17}, at::kByte)), UsageError);
}

TEST(Fidelity, PsnrCapIsReportedAboveIt) {
  // One level of difference in one of 3·256·256 values: 10·log10(255²·196608) = 100.98 dB.
  const at::Tensor a = at::zeros({3, 256, 256}, at::kByte);
  at::Tensor b = a.clone();
  b[0][0][0] = 1;
  const CappedPsnr c = psnr_capped(a, b);
  EXPECT_TRUE(c.capped);
  EXPECT_FALSE(c.identical);
  EXPECT_EQ(c.db, kPsnrCapDb);
  EXPECT_NEAR(psnr(a, b), 10.0 * std::log10(255.0 * 255.0 * 196608.0), 1e-9);
  EXPECT_FALSE(psnr_capped(a, b, 120.0).capped);
}

TEST(Fidelity, MetricListParses) {
  const MetricSet all = parse_metric_set("clip,psnr,ssim");
  EXPECT_TRUE(all.clip && all.psnr && all.ssim);
  const MetricSet some = parse_metric_set("ssim,clip");
  EXPECT_TRUE(some.clip && some.ssim && !some.psnr);
  EXPECT_EQ(to_string(some), "clip,ssim");
  EXPECT_TRUE(parse_metric_set("psnr").fidelity());
  EXPECT_FALSE(parse_metric_set("clip").fidelity());
  EXPECT_TRUE(parse_metric_set("lpips").fidelity());
  EXPECT_EQ(to_string(parse_metric_set("lpips,clip")), "clip,lpips");
  const MetricSet dist = parse_metric_set("fid,psnr,kid");
  EXPECT_TRUE(dist.distribution() && dist.kid && dist.fid && !parse_metric_set("psnr").distribution());
  EXPECT_EQ(to_string(dist), "psnr,kid,fid");
  EXPECT_EQ(to_string(parse_metric_set("hps,pickscore,clip")), "clip,pickscore,hps");
  for (const char* bad : {"", "clip,", "clip,clip", "psnr,mse", "kid,kid", "imagereward"}) {
    try {
      parse_metric_set(bad, "--metrics");
      ADD_FAILURE() << "accepted '" << bad << "'";
    } catch (const UsageError& e) {
      EXPECT_EQ(e.where(), "--metrics") << bad;
    }
  }
}

TEST(Fidelity, BootstrapMeanIsThePairedBootstrapOfTheDifferences) {
  std::mt19937_64 rng(3);
  std::normal_distribution<double> dist(30.0, 4.0);
  std::vector<double> a(40), zero(40, 0.0);
  for (double& x : a) x = dist(rng);
  const PairedStats one = bootstrap_mean(a, 2000, 11);
  const PairedStats two = paired_bootstrap(a, zero, 2000, 11);
  EXPECT_EQ(one.mean_diff, two.mean_diff);
  EXPECT_EQ(one.ci_low, two.ci_low);
  EXPECT_EQ(one.ci_high, two.ci_high);
  EXPECT_LT(one.ci_low, one.mean_diff);
  EXPECT_GT(one.ci_high, one.mean_diff);
  EXPECT_THROW(bootstrap_mean({}), UsageError);
  EXPECT_THROW(bootstrap_mean({1.0}, 0), UsageError);
}
