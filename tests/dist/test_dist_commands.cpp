// `diffbench generate` (and the commands built on eval's processes) under torchrun with two
// processes on the CPU (Gloo): the output equals the one-process run's, images byte for byte.
// tiny-sd, the tiny-clip scorer, COCO captions.
#include <fstream>

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
