// `diffbench generate`, `score`, `suite` and `sweep` under torchrun with two processes on the CPU
// (Gloo): the output equals the one-process run's, images byte for byte and scores equal (timings
// aside). tiny-sd, the tiny-clip scorer, COCO captions.
#include <fstream>
#include <regex>

#include "diffbench/io/json_config.hpp"
#include "dist/dist_support.hpp"
#include "eval/eval_fixture.hpp"
#include "eval/inception_support.hpp"

using namespace diffbench;
using namespace diffbench::test;
namespace fs = std::filesystem;

namespace {

class DistCommands : public EvalFixture {
 protected:
  std::string captions() const { return shell_quote("coco:" + shared_data("captions_val2017.json").string()); }

  // The same command as one process and as two under torchrun; both must exit `code`.
  void run_both(const std::string& args_single, const std::string& args_multi, int code = 0) {
    const std::string torchrun = find_torchrun();
    auto r = run_shell(dist_env() + dist_binary() + " " + args_single);
    ASSERT_EQ(r.exit_code, code) << r.output;
    r = run_shell(dist_env() + torchrun_prefix(torchrun) + dist_binary() + " " + args_multi);
    ASSERT_EQ(r.exit_code, code) << r.output;
  }

  std::string spec(int cache_interval) const {
    return "[pipeline]\nmodel = \"" + fixture("tiny-sd").string() +
           "\"\nsteps = 10\nguidance = 7.5\n\n[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = " +
           std::to_string(cache_interval) + "\ncache_branch_id = 0\n";
  }
  // eval's protocol options of a suite or sweep: `n` prompts in batches of 1, no warm-up.
  std::string protocol(int n) const {
    return " --prompts " + captions() + " --num-samples " + std::to_string(n) +
           " --batch-size 1 --warmup 0 --repeats 1 --max-quality-loss 100 --clip " +
           shell_quote(fixture("tiny-clip").string()) + " --quiet";
  }
  // A candidate's report folders of both runs: images byte-identical, scores equal.
  static void expect_same_candidate(const fs::path& one, const fs::path& two, int prompts) {
    for (const char* side : {"baseline", "candidate"})
      for (int i = 0; i < prompts; ++i) {
        const fs::path a = one / side / png_name(i), b = two / side / png_name(i);
        ASSERT_TRUE(fs::exists(b)) << b;
        EXPECT_TRUE(file_bytes(a) == file_bytes(b)) << b << " differs from the one-process run's";
      }
    const auto r1 = read_json_file(one / "report.json"), r2 = read_json_file(two / "report.json");
    for (const char* side : {"baseline", "candidate"}) {
      EXPECT_EQ(r1[side]["per_sample_clip"], r2[side]["per_sample_clip"]) << one << " " << side;
      EXPECT_EQ(r1[side]["unet_calls_per_image"], r2[side]["unet_calls_per_image"]) << one << " " << side;
    }
    EXPECT_EQ(r1["quality_loss_pct"], r2["quality_loss_pct"]) << one;
    EXPECT_EQ(r1["metrics"]["psnr"], r2["metrics"]["psnr"]) << one;
    EXPECT_EQ(r1["metrics"]["ssim"], r2["metrics"]["ssim"]) << one;
  }
  // A suite.json row's numbers that do not depend on timing.
  static nlohmann::json row_scores(const nlohmann::json& row) {
    nlohmann::json out = nlohmann::json::object();
    for (const char* key : {"name", "status", "reason", "reasons", "quality_loss_pct", "clip_score", "psnr_db", "ssim",
                            "report", "params"})
      out[key] = row.value(key, nlohmann::json());
    return out;
  }
};

}  // namespace

// 5 prompts in batches of 2 over 2 ranks: rank 0 generates prompts 0-3 (two batches), rank 1 prompt
// 4 (one batch of one), with DeepCache so the method's hooks run on both ranks. Rank 0 writes the
// one output folder.
TEST_F(DistCommands, GenerateTwoProcessesMatchOneProcess) {
  REQUIRE_LAUNCHER(find_torchrun(), "torchrun (the torch wheel's virtualenv)");
  const std::string args = "generate --model " + shell_quote(fixture("tiny-sd").string()) + " --prompts " + captions() +
                           " --num-samples 5 --batch-size 2 --steps 10 --accel deepcache:cache_interval=3 --quiet --out ";
  const fs::path single = dir_ / "single", multi = dir_ / "multi";
  run_both(args + shell_quote(single.string()), args + shell_quote(multi.string()));
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(fs::exists(multi / png_name(i))) << png_name(i);
    EXPECT_TRUE(file_bytes(single / png_name(i)) == file_bytes(multi / png_name(i)))
        << png_name(i) << " differs from the one-process run's";
  }
  EXPECT_FALSE(fs::exists(multi / png_name(5)));
  const auto one = read_json_file(single / "run.json"), two = read_json_file(multi / "run.json");
  EXPECT_EQ(one["prompts"], two["prompts"]);
  EXPECT_EQ(one["images"], two["images"]);
  EXPECT_EQ(one["unet_calls_per_image"], two["unet_calls_per_image"]);
  EXPECT_EQ(one["skipped_module_fraction"], two["skipped_module_fraction"]);
  ASSERT_EQ(two["batches"].size(), 3u);
  for (size_t k = 0; k < 3; ++k) {
    EXPECT_EQ(one["batches"][k]["first"], two["batches"][k]["first"]) << k;
    EXPECT_EQ(one["batches"][k]["count"], two["batches"][k]["count"]) << k;
    EXPECT_EQ(one["batches"][k]["unet_calls"], two["batches"][k]["unet_calls"]) << k;
  }
  EXPECT_FALSE(one["settings"].contains("distributed"));
  const auto& d = two["settings"]["distributed"];
  EXPECT_EQ(d["world_size"], 2);
  EXPECT_EQ(d["launcher"], "torchrun");
  ASSERT_EQ(d["ranks"].size(), 2u);
  EXPECT_EQ(d["ranks"][0]["prompts"], nlohmann::json({0, 4}));
  EXPECT_EQ(d["ranks"][1]["prompts"], nlohmann::json({4, 5}));
  EXPECT_EQ(d["images"], 5);
  EXPECT_GT(d["images_per_second"].get<double>(), 0);
  // No staging folder or lock left beside the output by either rank.
  for (const auto& entry : fs::directory_iterator(dir_))
    EXPECT_NE(entry.path().filename().string().rfind(".multi", 0), 0u) << entry.path();
}

// 20 images scored 16 at a time: rank 0 scores images 0-15, rank 1 images 16-19. CLIP scores against
// the prompts of run.json, PSNR/SSIM against a second set, KID/FID (random-weight Inception) of the
// set against it: every number equals the one-process run's, which rank 0 alone prints.
TEST_F(DistCommands, ScoreTwoProcessesMatchOneProcess) {
  REQUIRE_LAUNCHER(find_torchrun(), "torchrun (the torch wheel's virtualenv)");
  const fs::path a = dir_ / "a", b = dir_ / "b", inception = dir_ / "inception.safetensors";
  for (const auto& [out, steps] : {std::pair{a, 2}, std::pair{b, 3}}) {
    const auto r = run_shell(dist_env() + dist_binary() + " generate --model " + shell_quote(fixture("tiny-sd").string()) +
                             " --prompts " + captions() + " --num-samples 20 --batch-size 4 --steps " +
                             std::to_string(steps) + " --quiet --out " + shell_quote(out.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
  }
  write_random_inception(inception);
  const std::string args = "score --images " + shell_quote(a.string()) + " --against " + shell_quote(b.string()) +
                           " --clip " + shell_quote(fixture("tiny-clip").string()) + " --inception " +
                           shell_quote(inception.string()) + " --metrics clip,psnr,ssim,kid,fid --json";
  const auto one = run_shell_split(dist_env() + dist_binary() + " " + args);
  ASSERT_EQ(one.exit_code, 0) << one.err;
  const auto two = run_shell_split(dist_env() + torchrun_prefix(find_torchrun()) + dist_binary() + " " + args);
  ASSERT_EQ(two.exit_code, 0) << two.err;
  const auto j1 = nlohmann::json::parse(one.out);
  auto j2 = nlohmann::json::parse(two.out);  // one JSON document: rank 1 prints nothing
  ASSERT_TRUE(j2.contains("distributed")) << two.out;
  const auto d = j2["distributed"];
  EXPECT_EQ(d["world_size"], 2);
  ASSERT_EQ(d["ranks"].size(), 2u);
  EXPECT_EQ(d["ranks"][0]["images"], nlohmann::json({0, 16}));
  EXPECT_EQ(d["ranks"][1]["images"], nlohmann::json({16, 20}));
  j2.erase("distributed");
  EXPECT_EQ(j1["per_sample"].size(), 20u);
  EXPECT_EQ(j1, j2) << "one process:\n" << j1.dump(1) << "\ntwo:\n" << j2.dump(1);
}

// Three candidates over two ranks, more candidates than ranks: rank 0 evaluates the first two (one
// baseline run, reused by the second), rank 1 the third, which names an unknown method (an
// invalid_spec row with its error.json, made on rank 1). Rank 0 gathers the rows and folders and
// writes the one suite.
TEST_F(DistCommands, SuiteSplitsCandidatesOverTheRanks) {
  REQUIRE_LAUNCHER(find_torchrun(), "torchrun (the torch wheel's virtualenv)");
  const fs::path cands = dir_ / "cands";
  fs::create_directories(cands);
  std::ofstream(cands / "a-interval2.toml") << spec(2);
  std::ofstream(cands / "b-interval3.toml") << spec(3);
  std::ofstream(cands / "c-unknown.toml") << std::regex_replace(spec(2), std::regex("deepcache"), "nosuchmethod");
  const fs::path single = dir_ / "single", multi = dir_ / "multi";
  const std::string args = "suite " + shell_quote(cands.string()) + protocol(2) + " --out ";
  run_both(args + shell_quote(single.string()), args + shell_quote(multi.string()), 1);  // c fails
  const auto one = read_json_file(single / "suite.json"), two = read_json_file(multi / "suite.json");
  ASSERT_EQ(two["rows"].size(), 3u);
  for (size_t k = 0; k < 3; ++k) EXPECT_EQ(row_scores(one["rows"][k]), row_scores(two["rows"][k])) << k;
  EXPECT_EQ(two["rows"][2]["reason"], "invalid_spec");
  EXPECT_EQ(one["tally"], two["tally"]);
  EXPECT_EQ(one["baseline_runs"]["generated"], two["baseline_runs"]["generated"]);
  EXPECT_EQ(two["distributed"]["world_size"], 2);
  EXPECT_NE(two["distributed"]["split"].get<std::string>().find("candidates"), std::string::npos);
  for (const char* name : {"a-interval2", "b-interval3"}) expect_same_candidate(single / name, multi / name, 2);
  EXPECT_EQ(read_json_file(single / "c-unknown" / "error.json"), read_json_file(multi / "c-unknown" / "error.json"));
  for (const char* page : {"suite.md", "suite.csv", "suite.html"}) EXPECT_TRUE(fs::exists(multi / page)) << page;
}

// Two grid points over two ranks, no more candidates than ranks: each point's prompts are split as
// eval splits them (4 prompts: 2 per rank), and rank 0 writes the sweep and its frontier.
TEST_F(DistCommands, SweepSplitsEachPointsPromptsOverTheRanks) {
  REQUIRE_LAUNCHER(find_torchrun(), "torchrun (the torch wheel's virtualenv)");
  const fs::path spec_file = write_spec("dc", spec(2));
  const fs::path single = dir_ / "single", multi = dir_ / "multi";
  const std::string args = "sweep " + shell_quote(spec_file.string()) + " --grid deepcache.cache_interval=2,3" +
                           protocol(4) + " --out ";
  run_both(args + shell_quote(single.string()), args + shell_quote(multi.string()));
  const auto one = read_json_file(single / "suite.json"), two = read_json_file(multi / "suite.json");
  ASSERT_EQ(two["rows"].size(), 2u);
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(row_scores(one["rows"][k]), row_scores(two["rows"][k])) << k;
    const std::string name = two["rows"][k]["name"];
    expect_same_candidate(single / name, multi / name, 4);
    // The point's own report says how its prompts were split.
    const auto d = read_json_file(multi / name / "report.json")["distributed"];
    EXPECT_EQ(d["ranks"][1]["prompts"], nlohmann::json({2, 4})) << name;
  }
  EXPECT_NE(two["distributed"]["split"].get<std::string>().find("prompts"), std::string::npos);
  const auto s1 = read_json_file(single / "sweep.json"), s2 = read_json_file(multi / "sweep.json");
  EXPECT_EQ(s1["grid"], s2["grid"]);
  EXPECT_EQ(s1["points"].size(), s2["points"].size());
  EXPECT_TRUE(fs::exists(multi / "sweep.html"));
}
