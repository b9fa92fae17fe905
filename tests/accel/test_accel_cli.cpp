// Acceleration methods through the command: generate --spec / --accel, eval with a DeepCache
// candidate, and plugins loaded from a spec (the example plugin and broken ones).
#include <fstream>
#include <iterator>

#include "cli/cli_support.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class AccelCli : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
    dir_ = test::temp_dir(std::string("accel-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }

  fs::path write_spec(const std::string& name, const std::string& body) {
    auto p = dir_ / (name + ".toml");
    std::ofstream(p) << body;
    return p;
  }
  static std::string pipeline(int steps) {
    return "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() + "\"\nsteps = " + std::to_string(steps) +
           "\nguidance = 7.5\n";
  }
  // generate with two prompts, 64x64, batch 2, into dir_/NAME; returns the result.
  CommandResult generate(const std::string& name, const std::string& args) {
    return run_diffbench("generate " + args + " --prompt 'a red bus' --prompt 'two cats on a sofa' --height 64 --width 64 " +
                         "--batch-size 2 --quiet --out " + shell_quote((dir_ / name).string()));
  }
  at::Tensor images(const std::string& name) {
    return at::stack({read_png(dir_ / name / "000000.png"), read_png(dir_ / name / "000001.png")});
  }
  fs::path dir_;
};

}  // namespace

TEST_F(AccelCli, GenerateWithSpecAndAccelFlags) {
  const std::string model = " --model " + shell_quote(test::fixture("tiny-sd").string());
  auto base = generate("base", model + " --steps 9");
  ASSERT_EQ(base.exit_code, 0) << base.output;

  // --accel on the command line.
  auto dc = generate("dc", model + " --steps 9 --accel deepcache:cache_interval=3,cache_branch_id=0");
  ASSERT_EQ(dc.exit_code, 0) << dc.output;
  auto run = read_json_file(dir_ / "dc" / "run.json");
  const auto& acc = run["settings"]["accelerate"];
  ASSERT_EQ(acc.size(), 1u);
  EXPECT_EQ(acc[0]["method"], "deepcache");
  EXPECT_EQ(acc[0]["params"]["cache_interval"], 3);
  EXPECT_EQ(acc[0]["params"]["skip_mode"], "uniform");
  EXPECT_EQ(acc[0]["stats"]["unet_calls"], 10);
  EXPECT_EQ(run["unet_calls_per_image"].get<double>(), 10.0);
  EXPECT_GT(run["skipped_module_fraction"].get<double>(), 0.2);
  EXPECT_EQ(read_json_file(dir_ / "base" / "run.json")["skipped_module_fraction"].get<double>(), 0.0);
  EXPECT_GT(test::max_abs_diff(images("dc"), images("base")), 0);

  // The same through a spec (steps from the spec), and flags override the spec's fields.
  auto spec = write_spec("dc", pipeline(9) + "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\n");
  auto from_spec = generate("spec", "--spec " + shell_quote(spec.string()));
  ASSERT_EQ(from_spec.exit_code, 0) << from_spec.output;
  EXPECT_TRUE(at::equal(images("spec"), images("dc")));
  auto over = generate("over", "--spec " + shell_quote(spec.string()) + " --steps 5 --accel deepcache:cache_interval=1");
  ASSERT_EQ(over.exit_code, 0) << over.output;
  auto over_run = read_json_file(dir_ / "over" / "run.json");
  EXPECT_EQ(over_run["settings"]["steps"], 5);
  EXPECT_EQ(over_run["settings"]["accelerate"][0]["params"]["cache_interval"], 1);
  EXPECT_EQ(over_run["skipped_module_fraction"].get<double>(), 0.0);
}

TEST_F(AccelCli, MalformedOrInvalidAccelIsAUsageError) {
  const std::string model = " --model " + shell_quote(test::fixture("tiny-sd").string()) + " --steps 2";
  for (const char* bad : {"deepcache:", "deepcache:cache_interval", "deepcache:=3", ":x=1", "deepcache:cache_interval=3,",
                          "deepcache:cache_interval=3,cache_interval=4", "deepcache:cache_interval=0",
                          "deepcache:colour=red", "deepcache:cache_interval=true", "warp-drive"}) {
    auto r = generate("bad", model + " --accel " + shell_quote(bad));
    EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.output;
    EXPECT_NE(r.output.find("--accel"), std::string::npos) << bad << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "bad")) << bad;
  }
  auto spec = write_spec("bad", pipeline(2) + "[[accelerate]]\nmethod = \"deepcache\"\ncache_branch_id = 40\n");
  auto r = generate("bad", "--spec " + shell_quote(spec.string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("bad.toml:7"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("cache_branch_id"), std::string::npos) << r.output;
}

TEST_F(AccelCli, EvalReportsDeepCacheAndItIsFaster) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip/config.json"));
  DIFFBENCH_REQUIRE_FIXTURE(test::shared_data("captions_val2017.json"));
  auto cand = write_spec("deepcache", pipeline(50) +
                                          "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\ncache_branch_id = 0\n");
  auto out = dir_ / "report";
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + " --prompts " +
                         shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                         " --repeats 1 --num-samples 8 --batch-size 4 --max-quality-loss 100 --clip " +
                         shell_quote(test::fixture("tiny-clip").string()) + " --out " + shell_quote(out.string()) +
                         " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rep = read_json_file(out / "report.json");
  const auto& methods = rep["candidate"]["methods"];
  ASSERT_EQ(methods.size(), 1u);
  EXPECT_EQ(methods[0]["method"], "deepcache");
  EXPECT_EQ(methods[0]["params"],
            (nlohmann::json{{"cache_interval", 3}, {"cache_branch_id", 0}, {"skip_mode", "uniform"}}));
  // Timed run only (warm-up excluded): 2 batches of 51 calls, 17 of them full.
  EXPECT_EQ(methods[0]["stats"]["unet_calls"], 102);
  EXPECT_EQ(methods[0]["stats"]["full_calls"], 34);
  EXPECT_TRUE(rep["baseline"]["methods"].empty());
  EXPECT_EQ(rep["candidate"]["unet_calls_per_image"].get<double>(), 51.0);
  EXPECT_EQ(rep["baseline"]["skipped_module_fraction"].get<double>(), 0.0);
  EXPECT_GT(rep["candidate"]["skipped_module_fraction"].get<double>(), 0.25);
  // report.md lists the same counters.
  std::ifstream md_file(out / "report.md");
  const std::string md((std::istreambuf_iterator<char>(md_file)), std::istreambuf_iterator<char>());
  const std::string row = "| method counters | none | deepcache: full_calls 34, partial_calls 68, skipped_modules " +
                          methods[0]["stats"]["skipped_modules"].dump() + ", unet_calls 102 |";
  EXPECT_NE(md.find(row), std::string::npos) << md;
  std::cout << "[ deepcache eval ] speedup " << rep["speedup"] << ", quality loss " << rep["quality_loss_pct"] << " %\n";
  EXPECT_GT(rep["speedup"].get<double>(), 1.0);
}

TEST_F(AccelCli, ExamplePluginLoadsFromASpecAndChangesTheOutput) {
  ASSERT_TRUE(fs::exists(DIFFBENCH_SKIP_DEEPEST_PLUGIN));
  auto base = write_spec("base", pipeline(6));
  auto plug = write_spec("plug", pipeline(6) + "[[accelerate]]\nmethod = \"skip_deepest\"\nplugin = \"" +
                                     std::string(DIFFBENCH_SKIP_DEEPEST_PLUGIN) + "\"\ninterval = 2\n");
  ASSERT_EQ(generate("base", "--spec " + shell_quote(base.string())).exit_code, 0);
  auto r = generate("plug", "--spec " + shell_quote(plug.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_GT(test::max_abs_diff(images("plug"), images("base")), 0);
  auto run = read_json_file(dir_ / "plug" / "run.json");
  const auto& m = run["settings"]["accelerate"][0];
  EXPECT_EQ(m["method"], "skip_deepest");
  EXPECT_EQ(m["params"]["interval"], 2);
  EXPECT_EQ(m["plugin"], DIFFBENCH_SKIP_DEEPEST_PLUGIN);
  EXPECT_EQ(m["stats"]["reused"], 3);  // 7 PNDM calls: reused at calls 1, 3, 5
  EXPECT_GT(run["skipped_module_fraction"].get<double>(), 0.0);

  // The plugin's parameters are checked like a built-in's.
  auto bad = write_spec("badparam", pipeline(2) + "[[accelerate]]\nmethod = \"skip_deepest\"\nplugin = \"" +
                                        std::string(DIFFBENCH_SKIP_DEEPEST_PLUGIN) + "\"\ninterval = 0\n");
  auto e = generate("x", "--spec " + shell_quote(bad.string()));
  EXPECT_EQ(e.exit_code, 2) << e.output;
  EXPECT_NE(e.output.find("badparam.toml:8"), std::string::npos) << e.output;
}

TEST_F(AccelCli, BrokenPluginsAreClearErrors) {
  struct Case {
    std::string path, words;
  };
  const std::vector<Case> cases = {
      {DIFFBENCH_BAD_ABI_PLUGIN, "ABI version 999"},
      {(dir_ / "nowhere" / "libmissing.so").string(), "does not exist"},
      {DIFFBENCH_NO_ENTRY_PLUGIN, "diffbench_register_methods"},
  };
  for (const auto& c : cases) {
    auto spec = write_spec("plugin", pipeline(2) + "[[accelerate]]\nmethod = \"my_method\"\nplugin = \"" + c.path + "\"\n");
    auto r = generate("out", "--spec " + shell_quote(spec.string()));
    EXPECT_EQ(r.exit_code, 2) << c.path << "\n" << r.output;
    EXPECT_NE(r.output.find(c.words), std::string::npos) << r.output;
    EXPECT_NE(r.output.find("plugin.toml:7"), std::string::npos) << r.output;
    EXPECT_NE(r.output.find(c.path), std::string::npos) << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "out"));
  }
  // And through eval: it fails before generating anything.
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip/config.json"));
  auto spec = write_spec("plugin", pipeline(2) + "[[accelerate]]\nmethod = \"my_method\"\nplugin = \"" +
                                       std::string(DIFFBENCH_BAD_ABI_PLUGIN) + "\"\n");
  auto r = run_diffbench("eval " + shell_quote(spec.string()) + " --prompts " + shell_quote((dir_ / "p.txt").string()) +
                         " --clip " + shell_quote(test::fixture("tiny-clip").string()) + " --out " +
                         shell_quote((dir_ / "rep").string()) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("ABI version 999"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "rep"));
}
