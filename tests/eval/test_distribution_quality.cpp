// KID and FID of image sets: the report's numbers against metrics/distribution.hpp on given features, the
// thresholds, and `eval` / `score` end to end with a random-weight FID Inception (the same KID/FID from both).
#include <ATen/CPUGeneratorImpl.h>

#include <fstream>

#include "cli/cli_support.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/distribution_quality.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

ImageSetFeatures gaussian_set(int64_t n, int64_t dim, double shift, uint64_t seed, int64_t batch = 7) {
  at::Generator gen = at::detail::createCPUGenerator(seed);
  const at::Tensor all = at::randn({n, dim}, gen, at::kFloat) + shift;
  ImageSetFeatures set;
  for (int64_t first = 0; first < n; first += batch) set.add(all.narrow(0, first, std::min(batch, n - first)));
  return set;
}

// A random FID Inception as the user's converted file would hold it: He-scaled convolutions, BatchNorm at
// its identity statistics, the classifier the .pth carries.
void write_random_inception(const fs::path& file) {
  InceptionFid net;
  at::Generator gen = at::detail::createCPUGenerator(7);
  StateDict w;
  for (const auto& p : net->named_parameters()) {
    const auto s = p.value().sizes();
    w[p.key()] = p.value().dim() == 4 ? at::randn(s, gen, at::kFloat) * std::sqrt(2.0 / double(s[1] * s[2] * s[3]))
                                      : p.value().detach().clone();
  }
  for (const auto& b : net->named_buffers()) w[b.key()] = b.value().clone();
  w["fc.weight"] = at::zeros({1008, 2048});
  w["fc.bias"] = at::zeros({1008});
  save_safetensors(file, w);
}

}  // namespace

TEST(DistributionQuality, ReportsTheDistancesOfTheFeatureSets) {
  const MetricSet m = parse_metric_set("kid,fid");
  const ImageSetFeatures base = gaussian_set(40, 6, 0.0, 1), cand = gaussian_set(30, 6, 0.5, 2),
                         ref = gaussian_set(25, 6, 0.2, 3);
  std::vector<std::string> failures;
  DistributionThresholds t;
  t.max_kid = 1e6;
  t.max_fid_increase = -1e6;  // cannot pass
  const auto j = distribution_metrics_json(m, base, cand, &ref, "refs", t, 42, &failures);
  const double fid_cb = frechet_distance(base.moments(), cand.moments());
  EXPECT_NEAR(j["fid"]["candidate_vs_baseline"].get<double>(), fid_cb, 1e-12);
  const double fid_rb = frechet_distance(ref.moments(), base.moments()), fid_rc = frechet_distance(ref.moments(), cand.moments());
  EXPECT_NEAR(j["fid"]["reference"]["increase"].get<double>(), fid_rc - fid_rb, 1e-12);
  EXPECT_NEAR(j["fid"]["increase"].get<double>(), fid_rc - fid_rb, 1e-12);
  EXPECT_NEAR(j["fid"]["loss_pct"].get<double>(), (fid_rc - fid_rb) / fid_rb * 100.0, 1e-9);
  EXPECT_EQ(j["fid"]["direction"], "lower-is-better");
  EXPECT_FALSE(j["fid"]["reliable"].get<bool>());
  EXPECT_NE(j["fid"]["note"].get<std::string>().find("25 images"), std::string::npos) << j["fid"]["note"];
  // KID: torchmetrics' subsets, of min(1000, smaller set) rows, seeded.
  KidOptions o;
  o.subset_size = 30;
  o.seed = 42;
  const KidResult k = kid(base.rows(), cand.rows(), o);
  EXPECT_EQ(j["kid"]["candidate_vs_baseline"]["mean"].get<double>(), k.mean);
  EXPECT_EQ(j["kid"]["candidate_vs_baseline"]["std"].get<double>(), k.std);
  EXPECT_EQ(j["kid"]["candidate_vs_baseline"]["subset_size"].get<int>(), 30);
  EXPECT_EQ(j["kid"]["reference"]["baseline"]["subset_size"].get<int>(), 25);
  EXPECT_EQ(j["kid"]["n_baseline"].get<int>(), 40);
  EXPECT_TRUE(j["kid"]["threshold"]["passed"].get<bool>());
  EXPECT_FALSE(j["fid"]["threshold"]["passed"].get<bool>());
  ASSERT_EQ(failures.size(), 1u);
  EXPECT_NE(failures[0].find("--max-fid-increase"), std::string::npos) << failures[0];

  // Without reference images the increase is the candidate's FID to the baseline's set; no relative loss.
  failures.clear();
  t.max_fid_increase = fid_cb * 0.99;
  t.max_kid = k.mean * 0.99;
  const auto j2 = distribution_metrics_json(m, base, cand, nullptr, "", t, 42, &failures);
  EXPECT_NEAR(j2["fid"]["increase"].get<double>(), fid_cb, 1e-12);
  EXPECT_FALSE(j2["fid"].contains("loss_pct"));
  EXPECT_FALSE(j2["kid"].contains("reference"));
  EXPECT_EQ(failures.size(), 2u);
  // Only what was asked for.
  EXPECT_FALSE(distribution_metrics_json(parse_metric_set("kid"), base, cand, nullptr, "", {}, 42, nullptr).contains("fid"));
}

TEST(DistributionQuality, FeaturesAreStreamedIntoTheSameMoments) {
  const ImageSetFeatures a = gaussian_set(50, 5, 0.0, 9, 50), b = gaussian_set(50, 5, 0.0, 9, 3);
  EXPECT_EQ(a.count(), 50);
  EXPECT_TRUE(at::equal(a.rows(), b.rows()));
  EXPECT_TENSOR_NEAR(a.moments().covariance(), b.moments().covariance(), 1e-12);
  ImageSetFeatures one;
  one.add(at::zeros({1, 5}));
  EXPECT_THROW(set_distance(one, a, parse_metric_set("fid"), 0), UsageError);
}

TEST(DistributionQuality, ImageFoldersNeedTwoPngs) {
  const auto dir = test::temp_dir("image-set");
  EXPECT_THROW(image_set_files(dir / "absent"), InputError);
  write_png(dir / "a.png", at::zeros({3, 8, 8}, at::kByte));
  try {
    image_set_files(dir);
    ADD_FAILURE() << "accepted one image";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), dir.string());
  }
  write_png(dir / "b.png", at::zeros({3, 9, 8}, at::kByte));
  EXPECT_EQ(image_set_files(dir).size(), 2u);
  fs::remove_all(dir);
}

namespace {

class DistributionCli : public test::EvalFixture {
 protected:
  std::string spec(int steps) const {
    return "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() + "\"\nsteps = " + std::to_string(steps) +
           "\nguidance = 7.5\n";
  }
  std::string common(const fs::path& out) const {
    return " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
           " --repeats 1 --num-samples 3 --batch-size 3 --out " + shell_quote(out.string());
  }
};

}  // namespace

TEST_F(DistributionCli, EvalWithoutClipReportsKidFidAgainstBaselineAndReferences) {
  const fs::path inception = dir_ / "inception.safetensors", refs = dir_ / "refs", out = dir_ / "report";
  write_random_inception(inception);
  fs::create_directories(refs);
  at::Generator gen = at::detail::createCPUGenerator(5);
  write_png(refs / "r0.png", at::randint(0, 256, {3, 40, 60}, gen, at::kByte));
  write_png(refs / "r1.png", at::randint(0, 256, {3, 128, 128}, gen, at::kByte));
  write_png(refs / "r2.png", at::randint(0, 256, {3, 90, 30}, gen, at::kByte));
  const auto base = write_spec("base10", spec(10)), cand = write_spec("steps5", spec(5));
  const std::string run = "eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string());
  const std::string dist = " --inception " + shell_quote(inception.string()) + " --reference-images " + shell_quote(refs.string());

  // Bad combinations fail before any generation.
  for (const auto& [args, mention] : std::vector<std::pair<std::string, std::string>>{
           {" --metrics psnr --clip demo", "--clip"},
           {" --metrics psnr,kid", "--inception"},
           {" --metrics psnr --max-metric-loss psnr=1", "--min-psnr"},
           {" --metrics psnr,kid --inception " + shell_quote(inception.string()) + " --max-metric-loss kid=1", "--reference-images"},
           {" --metrics psnr,fid --inception " + shell_quote(inception.string()) + " --reference-images " +
                shell_quote((dir_ / "absent").string()), (dir_ / "absent").string()}}) {
    const auto r = run_diffbench(run + common(dir_ / "bad") + args + " --quiet");
    EXPECT_EQ(r.exit_code, 2) << args << "\n" << r.output;
    EXPECT_NE(r.output.find(mention), std::string::npos) << args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << args;
  }

  auto r = run_diffbench(run + common(out) + " --metrics psnr,ssim,kid,fid" + dist +
                         " --max-kid 1e6 --max-fid-increase 1e6 --max-metric-loss ssim=0 --quiet");
  EXPECT_EQ(r.exit_code, 1) << r.output;  // 5 vs 10 steps: SSIM below 1, a loss above 0 %
  EXPECT_NE(r.output.find("distribution vs baseline: KID"), std::string::npos) << r.output;
  const auto rep = read_json_file(out / "report.json");
  ASSERT_EQ(rep["failures"].size(), 1u) << rep["failures"];
  EXPECT_NE(rep["failures"][0].get<std::string>().find("--max-metric-loss ssim=0.00"), std::string::npos);
  EXPECT_EQ(rep["protocol"]["metrics"], "psnr,ssim,kid,fid");
  EXPECT_FALSE(rep.contains("paired"));
  EXPECT_TRUE(rep["baseline"]["clip_score"].is_null());
  EXPECT_FALSE(rep["metrics"].contains("clip"));
  const auto& fid = rep["metrics"]["fid"];
  const auto& kid = rep["metrics"]["kid"];
  EXPECT_EQ(fid["n_baseline"].get<int>(), 3);
  EXPECT_EQ(fid["reference"]["n"].get<int>(), 3);
  EXPECT_FALSE(fid["reliable"].get<bool>());
  EXPECT_GT(fid["candidate_vs_baseline"].get<double>(), 0.0);
  EXPECT_TRUE(fid["threshold"]["passed"].get<bool>());
  EXPECT_TRUE(kid["threshold"]["passed"].get<bool>());
  EXPECT_EQ(kid["candidate_vs_baseline"]["subset_size"].get<int>(), 3);
  EXPECT_NEAR(rep["metrics"]["ssim"]["loss_pct"].get<double>(), (1.0 - rep["metrics"]["ssim"]["mean"].get<double>()) * 100,
              1e-9);
  EXPECT_FALSE(rep["metrics"]["ssim"]["loss_threshold"]["passed"].get<bool>());
  std::ifstream md_file(out / "report.md");
  const std::string md((std::istreambuf_iterator<char>(md_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("| KID | "), std::string::npos) << md;
  EXPECT_NE(md.find("| FID (unreliable: too few images) | "), std::string::npos) << md;
  EXPECT_NE(md.find("compare KID instead"), std::string::npos) << md;
  EXPECT_NE(md.find("no CLIP score"), std::string::npos) << md;
  EXPECT_EQ(md.find("Paired per-prompt CLIP"), std::string::npos) << md;

  // score on the PNGs eval wrote: the same sets, so the same KID and FID.
  r = run_diffbench("score --images " + shell_quote((out / "candidate").string()) + " --against " +
                    shell_quote((out / "baseline").string()) + dist + " --metrics kid,fid --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto s = nlohmann::json::parse(r.output);
  auto near = [](const nlohmann::json& a, const nlohmann::json& b) {
    return std::abs(a.get<double>() - b.get<double>()) <= 1e-6 * (1.0 + std::abs(b.get<double>()));
  };
  EXPECT_TRUE(near(s["fid"]["against"]["value"], fid["candidate_vs_baseline"])) << s["fid"] << "\n" << fid;
  EXPECT_TRUE(near(s["fid"]["reference"]["value"], fid["reference"]["candidate"])) << s["fid"] << "\n" << fid;
  EXPECT_TRUE(near(s["kid"]["against"]["mean"], kid["candidate_vs_baseline"]["mean"])) << s["kid"] << "\n" << kid;
  EXPECT_TRUE(near(s["kid"]["reference"]["mean"], kid["reference"]["candidate"]["mean"])) << s["kid"] << "\n" << kid;
  EXPECT_FALSE(s.contains("psnr"));
}
