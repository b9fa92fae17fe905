// `diffbench eval` and `diffbench score` end to end on tiny-sd with the tiny-clip scorer.
#include <fstream>

#include "cli/cli_support.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class EvalCli : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip/config.json"));
    DIFFBENCH_REQUIRE_FIXTURE(test::shared_data("captions_val2017.json"));
    dir_ = test::temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_spec(const std::string& name, const std::string& body) {
    auto p = dir_ / (name + ".toml");
    std::ofstream(p) << body;
    return p;
  }
  std::string pipeline(int steps, const fs::path& model = {}) const {
    return "[pipeline]\nmodel = \"" + (model.empty() ? test::fixture("tiny-sd") : model).string() +
           "\"\nsteps = " + std::to_string(steps) + "\nguidance = 7.5\n";
  }
  std::string common(const fs::path& out) const {
    return " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
           " --num-samples 8 --batch-size 4 --clip " + shell_quote(test::fixture("tiny-clip").string()) + " --out " +
           shell_quote(out.string());
  }
  fs::path dir_;
};

}  // namespace

TEST_F(EvalCli, IdenticalCandidateHasZeroLoss) {
  auto cand = write_spec("same", pipeline(20));
  auto out = dir_ / "report";
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + common(out) + " --allow-identical --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rep = read_json_file(out / "report.json");
  EXPECT_EQ(rep["schema"], "diffbench.eval/2");
  EXPECT_EQ(rep["quality_loss_pct"].get<double>(), 0.0);
  EXPECT_EQ(rep["baseline"]["per_sample_clip"], rep["candidate"]["per_sample_clip"]);
  // The same pipeline twice: the speedup's interval contains 1, or the timing is flagged as noisy.
  const double lo = rep["speedup_ci"][0].get<double>(), hi = rep["speedup_ci"][1].get<double>();
  EXPECT_TRUE((lo <= 1.0 && 1.0 <= hi) || rep["timing"]["noisy"].get<bool>()) << rep["timing"].dump();
  EXPECT_EQ(rep["protocol"]["prompts"].size(), 8u);
  EXPECT_EQ(rep["protocol"]["prompts"][0], "A man is in a kitchen making pizzas.");
  EXPECT_TRUE(rep["consistency"]["same_model"].get<bool>());
  EXPECT_EQ(rep["paired"]["mean_diff"].get<double>(), 0.0);
  // Same text encoder and VAE: loaded once, for the baseline.
  EXPECT_TRUE(rep["baseline"]["reused_components"].empty());
  EXPECT_EQ(rep["candidate"]["reused_components"], nlohmann::json({"text_encoder", "vae"}));
  for (int i = 0; i < 8; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06d.png", i);
    EXPECT_TRUE(at::equal(read_png(out / "baseline" / name), read_png(out / "candidate" / name))) << name;
  }
  EXPECT_TRUE(fs::exists(out / "report.md"));
  std::ifstream md_file(out / "report.md");
  const std::string md((std::istreambuf_iterator<char>(md_file)), std::istreambuf_iterator<char>());
  EXPECT_NE(md.find("PASSED"), std::string::npos) << md;
  EXPECT_NE(md.find("| skipped UNet modules | 0.0 % | 0.0 % |"), std::string::npos) << md;
  // The images side by side, one row per prompt, with both CLIP scores; the linked files exist.
  char row[160];
  std::snprintf(row, sizeof row, "| 0 | A man is in a kitchen making pizzas. | ![](baseline/000000.png) | ![](candidate/000000.png) | %.2f / %.2f |",
                rep["baseline"]["per_sample_clip"][0].get<double>(), rep["candidate"]["per_sample_clip"][0].get<double>());
  EXPECT_NE(md.find(row), std::string::npos) << md;
  EXPECT_NE(md.find("| 7 | "), std::string::npos) << md;
  EXPECT_EQ(md.find("| 8 | "), std::string::npos) << md;
}

TEST_F(EvalCli, FewerStepsAreFasterAndReportAgreesWithScore) {
  auto base = write_spec("base50", pipeline(50));
  auto cand = write_spec("steps25", pipeline(25));
  auto out = dir_ / "report";
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string()) + common(out) +
                         " --max-quality-loss 100 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("speedup"), std::string::npos) << r.output;
  auto rep = read_json_file(out / "report.json");
  EXPECT_EQ(rep["baseline"]["unet_calls_per_image"].get<double>(), 51.0);
  EXPECT_EQ(rep["candidate"]["unet_calls_per_image"].get<double>(), 26.0);
  EXPECT_GT(rep["speedup"].get<double>(), 1.0);
  // The paired mean difference is over the same (clamped) per-sample scores as the aggregates.
  EXPECT_NEAR(rep["paired"]["mean_diff"].get<double>(),
              rep["baseline"]["clip_score"].get<double>() - rep["candidate"]["clip_score"].get<double>(), 1e-9);
  EXPECT_LE(rep["paired"]["ci95"][0].get<double>(), rep["paired"]["mean_diff"].get<double>());
  EXPECT_GE(rep["paired"]["ci95"][1].get<double>(), rep["paired"]["mean_diff"].get<double>());
  const auto differences = rep["consistency"]["differences"].dump();
  EXPECT_NE(differences.find("steps: 50 vs 25"), std::string::npos) << differences;
  // Re-score the PNGs on disk: the same per-sample scores as the report.
  for (const char* which : {"baseline", "candidate"}) {
    auto s = run_diffbench("score --images " + shell_quote((out / which).string()) + " --prompts " +
                           shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) + " --clip " +
                           shell_quote(test::fixture("tiny-clip").string()) + " --json");
    ASSERT_EQ(s.exit_code, 0) << s.output;
    auto js = nlohmann::json::parse(s.output);
    ASSERT_EQ(js["per_sample"].size(), 8u);
    for (size_t i = 0; i < 8; ++i)
      EXPECT_NEAR(js["per_sample"][i].get<double>(), rep[which]["per_sample_clip"][i].get<double>(), 1e-4) << which << i;
    EXPECT_NEAR(js["clip_score"].get<double>(), rep[which]["clip_score"].get<double>(), 1e-4);
  }
}

TEST_F(EvalCli, FailedThresholdExitsOneAndSaysWhich) {
  auto cand = write_spec("same", pipeline(5));
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "report") +
                         " --allow-identical --min-speedup 50 --quiet");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--min-speedup"), std::string::npos) << r.output;
  auto rep = read_json_file(dir_ / "report" / "report.json");
  EXPECT_FALSE(rep["passed"].get<bool>());
  EXPECT_EQ(rep["failures"].size(), 1u);
}

TEST_F(EvalCli, ModelMismatchAndMalformedSpecExitTwo) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("clip-tokenizer/vocab.json"));
  auto other = dir_ / "other-model";
  auto init = run_diffbench("init-random --arch tiny --seed 7 --tokenizer " +
                            shell_quote(test::fixture("clip-tokenizer").string()) + " --out " + shell_quote(other.string()));
  ASSERT_EQ(init.exit_code, 0) << init.output;
  auto base = write_spec("base", pipeline(5));
  auto cand = write_spec("cand", pipeline(5, other));
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string()) +
                         common(dir_ / "r1") + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("same model"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "r1"));

  auto bad = write_spec("bad", pipeline(5) + "colour = \"red\"\n");
  r = run_diffbench("eval " + shell_quote(bad.string()) + common(dir_ / "r2") + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.toml:5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("colour"), std::string::npos) << r.output;

  auto method = write_spec("method", pipeline(5) + "[[accelerate]]\nmethod = \"warp-drive\"\n");
  r = run_diffbench("eval " + shell_quote(method.string()) + common(dir_ / "r3") + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("warp-drive"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "r3"));
}
