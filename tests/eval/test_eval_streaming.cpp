// eval holds at most two batches of decoded images (issue 23: metrics over 10,000 images stay
// within memory): each batch is scored as it finishes, PSNR/SSIM pair it with the batch before or
// read the partner back from its PNG. report.json's memory.max_images_held is checked against the
// bound, and the streamed PSNR/SSIM against `diffbench score --against` over the written PNGs.
#include "cli/cli_support.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class EvalStreaming : public test::EvalFixture {};

}  // namespace

TEST_F(EvalStreaming, AtMostTwoBatchesHeldAndPairsMatchScore) {
  auto cand = write_spec("cand", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                     "\"\nsteps = 4\nguidance = 7.5\n[[accelerate]]\nmethod = \"deepcache\"\n"
                                     "cache_interval = 2\n");
  const std::string common =
      " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
      " --num-samples 12 --batch-size 2 --repeats 1 --warmup 0 --max-quality-loss 100 --clip " + shell_quote(test::fixture("tiny-clip").string());
  nlohmann::json reports[2];
  const char* schedules[2] = {"interleaved", "sequential"};
  for (int i = 0; i < 2; ++i) {
    const fs::path out = dir_ / schedules[i];
    auto r = run_diffbench("eval " + shell_quote(cand.string()) + common + " --schedule " + schedules[i] + " --out " +
                           shell_quote(out.string()) + " --json");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    reports[i] = read_json_file(out / "report.json");
    const auto& mem = reports[i]["memory"];
    // Interleaved, a batch meets its partner held from just before; sequential, the partner is read
    // back: both hold two batches (4 images) at most, and at least a batch and its partner, while the
    // run made 24 images.
    EXPECT_EQ(mem["bound"], 4) << schedules[i];
    EXPECT_LE(mem["max_images_held"].get<int>(), 4) << schedules[i];
    EXPECT_GE(mem["max_images_held"].get<int>(), 4) << schedules[i];

    // The streamed pairs equal PSNR/SSIM computed afresh from the PNGs, image by image.
    auto s = run_diffbench("score --images " + shell_quote((out / "candidate").string()) + " --against " +
                           shell_quote((out / "baseline").string()) + " --metrics psnr,ssim --json");
    ASSERT_EQ(s.exit_code, 0) << s.output;
    const auto score = nlohmann::json::parse(s.output.substr(s.output.find('{')));
    for (const char* m : {"psnr", "ssim"}) {
      const auto& a = reports[i]["metrics"][m]["per_image"];
      const auto& b = score[m]["per_image"];
      ASSERT_EQ(a.size(), 12u) << m;
      ASSERT_EQ(b.size(), 12u) << m;
      for (size_t k = 0; k < 12; ++k) EXPECT_NEAR(a[k].get<double>(), b[k].get<double>(), 1e-9) << m << " " << k;
    }
  }
  // The candidate's images differ from the baseline's (else the pairing would not be tested).
  EXPECT_LT(reports[0]["metrics"]["psnr"]["mean"].get<double>(), kPsnrCapDb);
  // Both schedules make the same images, so the same per-prompt table.
  EXPECT_EQ(reports[0]["metrics"]["psnr"]["per_image"], reports[1]["metrics"]["psnr"]["per_image"]);
  EXPECT_EQ(reports[0]["metrics"]["ssim"]["per_image"], reports[1]["metrics"]["ssim"]["per_image"]);
}
