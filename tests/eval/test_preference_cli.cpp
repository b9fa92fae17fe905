// PickScore and HPS v2 in `eval` and `score` on tiny-sd, with the shared tiny scorers standing in for the real
// checkpoints (the scores themselves are checked against their references in tests/metrics/test_preference.cpp).
#include "cli/cli_support.hpp"
#include "diffbench/io/json_config.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {
class PreferenceCli : public test::EvalFixture {};
}  // namespace

TEST_F(PreferenceCli, ScoresOfBothRunsAgreeWithScore) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-openclip/open_clip_config.json"));
  const std::string model = test::fixture("tiny-sd").string();
  const auto base = write_spec("base10", "[pipeline]\nmodel = \"" + model + "\"\nsteps = 10\nguidance = 7.5\n");
  const auto cand = write_spec("steps5", "[pipeline]\nmodel = \"" + model + "\"\nsteps = 5\nguidance = 7.5\n");
  const std::string prompts = shell_quote("coco:" + test::shared_data("captions_val2017.json").string());
  const std::string scorers = " --pickscore " + shell_quote(test::fixture("tiny-clip").string()) + " --hps " +
                              shell_quote(test::fixture("tiny-openclip").string());
  const fs::path out = dir_ / "report";
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string()) +
                         " --prompts " + prompts + " --repeats 1 --num-samples 3 --batch-size 3 --metrics psnr" + scorers +
                         " --max-metric-loss pickscore=1e6 --max-metric-loss hps=1e6 --out " + shell_quote(out.string()) +
                         " --quiet");
  EXPECT_NE(r.output.find("preference: PickScore"), std::string::npos) << r.output;
  const auto rep = read_json_file(out / "report.json");
  EXPECT_EQ(rep["protocol"]["metrics"], "psnr,pickscore,hps");
  // Random scorers may score the baseline below 0: its relative loss is then undefined and its limit fails.
  bool all_defined = true;
  for (const char* key : {"pickscore", "hps"}) {
    const auto& m = rep["metrics"][key];
    EXPECT_EQ(m["direction"], "higher-is-better");
    const bool defined = m["baseline"].get<double>() > 0;
    all_defined = all_defined && defined;
    EXPECT_EQ(m["loss_pct"].is_number(), defined) << key;
    EXPECT_EQ(m["loss_threshold"]["passed"].get<bool>(), defined) << key;
    double b = 0, c = 0;
    for (int i = 0; i < 3; ++i) b += m["baseline_per_image"][i].get<double>() / 3, c += m["candidate_per_image"][i].get<double>() / 3;
    EXPECT_NEAR(m["baseline"].get<double>(), b, 1e-9) << key;
    EXPECT_NEAR(m["paired"]["mean_diff"].get<double>(), b - c, 1e-9) << key;
    EXPECT_LE(m["paired"]["ci95"][0].get<double>(), b - c);
    EXPECT_GE(m["paired"]["ci95"][1].get<double>(), b - c);
  }
  EXPECT_EQ(r.exit_code, all_defined ? 0 : 1) << r.output;
  // score on the PNGs eval wrote gives the same per-image values.
  for (const char* side : {"baseline", "candidate"}) {
    r = run_diffbench("score --images " + shell_quote((out / side).string()) + " --prompts " + prompts + scorers + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto s = nlohmann::json::parse(r.output);
    EXPECT_FALSE(s.contains("clip_score"));
    for (const char* key : {"pickscore", "hps"})
      for (int i = 0; i < 3; ++i)
        EXPECT_NEAR(s[key]["per_image"][i].get<double>(),
                    rep["metrics"][key][std::string(side) + "_per_image"][i].get<double>(), 1e-6)
            << side << " " << key << " " << i;
  }
  r = run_diffbench("eval " + shell_quote(cand.string()) + " --prompts " + prompts + " --metrics psnr,hps --out " +
                    shell_quote((dir_ / "bad").string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--hps"), std::string::npos) << r.output;
}
