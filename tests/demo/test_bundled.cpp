// Acceptance of the bundled demo models (assets/demo, or $DIFFBENCH_ASSETS/demo); skipped until
// they are there.
#include <cstdio>
#include <fstream>
#include <iterator>
#include <map>
#include <optional>

#include "diffbench/demo/evaluate.hpp"
#include "diffbench/pipeline/spec.hpp"
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

// The guidance the demo specs use (examples/demo-baseline.toml).
double demo_guidance() {
  return load_spec(fs::path(DIFFBENCH_SOURCE_DIR) / "examples" / "demo-baseline.toml").guidance;
}

TEST(DemoBundled, ScorerRetrievesHeldOutCaptions) {
  REQUIRE_DEMO_ASSETS();
  const auto scorer = ClipScorer::load(demo_asset("clip"));
  const auto r = demo::check_scorer(*scorer);
  EXPECT_GE(r.top1, 0.9) << "scorer top-1 retrieval among the 32 demo captions";
}

TEST(DemoBundled, GeneratedImagesFollowTheirPrompts) {
  REQUIRE_DEMO_ASSETS();
  const auto scorer = ClipScorer::load(demo_asset("clip"));
  // What `make demo` runs: the settings of examples/demo-baseline.toml (model "demo"), seed 42 per prompt.
  const PipelineSpec spec = load_spec(fs::path(DIFFBENCH_SOURCE_DIR) / "examples" / "demo-baseline.toml");
  auto pipe = Txt2ImgPipeline::load(spec.model_options());
  RunProtocol protocol;
  protocol.batch_size = 8;
  const GenerateOptions go = spec.generate_options(protocol);
  const auto r = demo::check_pipeline(*pipe, *scorer, go);
  EXPECT_GE(r.top1, 0.6) << "images retrieved as their own prompt among the 32 demo captions";
  EXPECT_GT(r.clip_score, 0.0);
}

struct SweepPoint {
  double quality_loss = 0;  // %
  double ci_high = 0;       // upper end of the paired 95 % interval of (baseline - candidate) CLIP score
};

// Runs `diffbench eval` on a DeepCache spec of the demo model over the 32 demo prompts, or nothing
// when the command does not know the method.
std::optional<SweepPoint> deepcache_quality_loss(const fs::path& dir, int interval) {
  const fs::path spec = dir / ("deepcache-i" + std::to_string(interval) + ".toml");
  std::ofstream(spec) << "[pipeline]\nmodel = \"demo\"\nsteps = 50\nguidance = " << demo_guidance()
                      << "\n\n[[accelerate]]\nmethod = \"deepcache\"\n"
                      << "cache_interval = " << interval << "\ncache_branch_id = 0\n";
  const fs::path json = dir / ("report-i" + std::to_string(interval) + ".json");
  const std::string cmd = std::string(DIFFBENCH_BINARY) + " eval " + spec.string() +
                          " --prompts demo --clip demo --repeats 1 --num-samples 32 --batch-size 8 --warmup 0 --max-quality-loss 100 --json --out " +
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
  const auto report = nlohmann::json::parse(in);
  return SweepPoint{report.at("quality_loss_pct").get<double>(), report.at("paired").at("ci95").at(1).get<double>()};
}

TEST(DemoBundled, DeepCacheSweepCostsMoreQualityWhenMoreAggressive) {
  REQUIRE_DEMO_ASSETS();
  const auto dir = test::temp_dir("demo-deepcache");
  const auto first = deepcache_quality_loss(dir, 2);
  if (!first) GTEST_SKIP() << "the deepcache method is not available";
  std::map<int, SweepPoint> sweep{{2, *first}};
  for (int interval : {3, 5, 10}) sweep[interval] = deepcache_quality_loss(dir, interval).value_or(SweepPoint{-100, -100});
  for (const auto& [interval, p] : sweep)  // caching never makes images follow prompts better beyond noise
    EXPECT_GE(p.ci_high, 0.0) << "interval " << interval << ": quality loss " << p.quality_loss
                              << " %, the paired interval lies wholly below 0";
  EXPECT_LT(sweep[2].quality_loss, sweep[10].quality_loss)
      << "interval 2: " << sweep[2].quality_loss << " %, interval 10: " << sweep[10].quality_loss << " %";
  fs::remove_all(dir);
}

}  // namespace
