// Acceptance of the bundled demo models (assets/demo, or $DIFFBENCH_ASSETS/demo); skipped until
// they are there.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <optional>

#include "diffbench/demo/evaluate.hpp"
#include "diffbench/io/assets.hpp"
#include "test_support.hpp"

namespace {

using namespace diffbench;
namespace fs = std::filesystem;

#define REQUIRE_DEMO_ASSETS()                                                                     \
  do {                                                                                            \
    if (!fs::exists(assets_dir() / "demo" / "sd" / "model_index.json") ||                         \
        !fs::exists(assets_dir() / "demo" / "clip" / "model.safetensors"))                        \
      GTEST_SKIP() << "no bundled demo models in " << (assets_dir() / "demo").string();          \
  } while (0)

TEST(DemoBundled, ScorerRetrievesHeldOutCaptions) {
  REQUIRE_DEMO_ASSETS();
  const auto scorer = ClipScorer::load("demo");
  const auto r = demo::check_scorer(*scorer);
  EXPECT_GE(r.top1, 0.9) << "scorer top-1 retrieval among the 32 demo captions";
}

TEST(DemoBundled, GeneratedImagesFollowTheirPrompts) {
  REQUIRE_DEMO_ASSETS();
  const auto scorer = ClipScorer::load("demo");
  ModelOptions mo;
  mo.dir = "demo";
  auto pipe = Txt2ImgPipeline::load(mo);
  GenerateOptions go;  // the evaluation defaults: PNDM, 50 steps, guidance 7.5, seed 42 per prompt
  go.batch_size = 8;
  const auto r = demo::check_pipeline(*pipe, *scorer, go);
  EXPECT_GE(r.top1, 0.6) << "images retrieved as their own prompt among the 32 demo captions";
  EXPECT_GT(r.clip_score, 0.0);
}

// Runs `diffbench eval` on a DeepCache spec of the demo model and returns the quality loss (%), or
// nothing when the command does not know the method.
std::optional<double> deepcache_quality_loss(const fs::path& dir, int interval) {
  const fs::path spec = dir / ("deepcache-i" + std::to_string(interval) + ".toml");
  std::ofstream(spec) << "[pipeline]\nmodel = \"demo\"\nsteps = 50\n\n[[accelerate]]\nmethod = \"deepcache\"\n"
                      << "cache_interval = " << interval << "\ncache_branch_id = 0\n";
  const fs::path json = dir / ("report-i" + std::to_string(interval) + ".json");
  const std::string cmd = std::string(DIFFBENCH_BINARY) + " eval " + spec.string() +
                          " --prompts demo --clip demo --num-samples 16 --batch-size 8 --warmup 0 --max-quality-loss 100 --json --out " +
                          (dir / ("run-i" + std::to_string(interval))).string() + " > " + json.string() + " 2> " +
                          (dir / "stderr.txt").string();
  if (std::system(cmd.c_str()) != 0) {
    std::ifstream err(dir / "stderr.txt");
    const std::string text((std::istreambuf_iterator<char>(err)), std::istreambuf_iterator<char>());
    if (text.find("deepcache") != std::string::npos && text.find("unknown") != std::string::npos) return std::nullopt;
    ADD_FAILURE() << cmd << "\n" << text;
    return std::nullopt;
  }
  std::ifstream in(json);
  return nlohmann::json::parse(in).at("quality_loss_pct").get<double>();
}

TEST(DemoBundled, DeepCacheSweepCostsMoreQualityWhenMoreAggressive) {
  REQUIRE_DEMO_ASSETS();
  const auto dir = test::temp_dir("demo-deepcache");
  const auto first = deepcache_quality_loss(dir, 2);
  if (!first) GTEST_SKIP() << "the deepcache method is not available";
  const double q2 = *first;
  const double q5 = deepcache_quality_loss(dir, 5).value_or(-1);
  const double q10 = deepcache_quality_loss(dir, 10).value_or(-1);
  EXPECT_LT(q2, q10) << "interval 2: " << q2 << " %, interval 10: " << q10 << " %";
  EXPECT_LE(q5, q10 + 1.0) << "interval 5: " << q5 << " %, interval 10: " << q10 << " %";
  fs::remove_all(dir);
}

}  // namespace
