// `diffbench eval` and `diffbench score` end to end on tiny-sd with the tiny-clip scorer.
#include <fstream>

#include "cli/cli_support.hpp"
#include "eval/eval_fixture.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/lpips.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "diffbench/metrics/ssim.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class EvalCli : public test::EvalFixture {
 protected:
  std::string pipeline(int steps, const fs::path& model = {}) const {
    return "[pipeline]\nmodel = \"" + (model.empty() ? test::fixture("tiny-sd") : model).string() +
           "\"\nsteps = " + std::to_string(steps) + "\nguidance = 7.5\n";
  }
  std::string common(const fs::path& out) const {
    return " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
           " --repeats 1 --num-samples 8 --batch-size 4 --clip " + shell_quote(test::fixture("tiny-clip").string()) + " --out " +
           shell_quote(out.string());
  }
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
  // Same text encoder, UNet and VAE: loaded once, for the baseline.
  EXPECT_TRUE(rep["baseline"]["reused_components"].empty());
  EXPECT_EQ(rep["candidate"]["reused_components"], nlohmann::json({"text_encoder", "unet", "vae"}));
  // Identical images: PSNR capped (and said so), SSIM 1, every prompt in the per-prompt table.
  EXPECT_EQ(rep["protocol"]["metrics"], "clip,psnr,ssim");
  const auto& psnr = rep["metrics"]["psnr"];
  EXPECT_EQ(psnr["direction"], "higher-is-better");
  EXPECT_EQ(psnr["mean"].get<double>(), kPsnrCapDb);
  EXPECT_EQ(psnr["identical"].get<int>(), 8);
  EXPECT_EQ(psnr["capped"].get<int>(), 8);
  EXPECT_NEAR(rep["metrics"]["ssim"]["mean"].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(rep["metrics"]["clip"]["direction"], "higher-is-better");
  ASSERT_EQ(rep["per_prompt"].size(), 8u);
  EXPECT_TRUE(rep["per_prompt"][0]["psnr_capped"].get<bool>());
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
  EXPECT_NE(md.find("| PSNR (dB) | higher is better |"), std::string::npos) << md;
  EXPECT_NE(md.find("8 of 8 images were capped, 8 of them identical"), std::string::npos) << md;
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
  // PSNR and SSIM of each candidate image against the baseline's, as recomputed from the PNGs;
  // the per-prompt table lists the lowest PSNR first.
  const auto& rows = rep["per_prompt"];
  ASSERT_EQ(rows.size(), 8u);
  EXPECT_EQ(rep["per_prompt_order"], "psnr_db ascending");
  for (size_t k = 0; k < rows.size(); ++k) {
    const size_t i = rows[k]["index"].get<size_t>();
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.png", i);
    const at::Tensor b = read_png(out / "baseline" / name), c = read_png(out / "candidate" / name);
    EXPECT_NEAR(rows[k]["psnr_db"].get<double>(), psnr_capped(c, b).db, 1e-9) << name;
    EXPECT_NEAR(rows[k]["ssim"].get<double>(), ssim(c, b), 1e-9) << name;
    EXPECT_EQ(rep["metrics"]["psnr"]["per_image"][i], rows[k]["psnr_db"]) << name;
    if (k > 0) EXPECT_LE(rows[k - 1]["psnr_db"].get<double>(), rows[k]["psnr_db"].get<double>());
  }
  EXPECT_LT(rep["metrics"]["psnr"]["mean"].get<double>(), kPsnrCapDb);  // 25 vs 50 steps: not identical
  EXPECT_LT(rep["metrics"]["ssim"]["mean"].get<double>(), 1.0);
  for (const char* key : {"psnr", "ssim"}) {
    const auto& m = rep["metrics"][key];
    EXPECT_LE(m["ci95"][0].get<double>(), m["mean"].get<double>()) << key;
    EXPECT_GE(m["ci95"][1].get<double>(), m["mean"].get<double>()) << key;
  }
  // score --against on the two folders gives the same PSNR and SSIM per image.
  auto f = run_diffbench("score --images " + shell_quote((out / "candidate").string()) + " --against " +
                         shell_quote((out / "baseline").string()) + " --json");
  ASSERT_EQ(f.exit_code, 0) << f.output;
  auto jf = nlohmann::json::parse(f.output);
  EXPECT_FALSE(jf.contains("clip_score"));
  for (const char* key : {"psnr", "ssim"})
    for (size_t i = 0; i < 8; ++i)
      EXPECT_NEAR(jf[key]["per_image"][i].get<double>(), rep["metrics"][key]["per_image"][i].get<double>(), 1e-12);

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

TEST_F(EvalCli, FidelityThresholdsFailWithTheirOption) {
  auto base = write_spec("base10", pipeline(10));
  auto cand = write_spec("steps5", pipeline(5));
  auto out = dir_ / "report";
  // LPIPS weights: a randomly initialised network (linear heads made non-negative, as trained ones
  // are, so that different images are at a positive distance), written as the user's file would be.
  StateDict weights;
  for (const auto& p : LpipsAlex()->named_parameters())
    weights[p.key()] = p.key().rfind("lin", 0) == 0 ? p.value().detach().abs() : p.value().detach();
  save_safetensors(dir_ / "lpips.safetensors", weights);
  auto r = run_diffbench("eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string()) + common(out) +
                         " --max-quality-loss 100 --min-psnr 99 --min-ssim 0 --lpips " +
                         shell_quote((dir_ / "lpips.safetensors").string()) + " --max-lpips 1e-9 --quiet");
  EXPECT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("--min-psnr"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--max-lpips"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("fidelity to baseline"), std::string::npos) << r.output;
  auto rep = read_json_file(out / "report.json");
  EXPECT_FALSE(rep["passed"].get<bool>());
  ASSERT_EQ(rep["failures"].size(), 2u) << rep["failures"];
  EXPECT_FALSE(rep["metrics"]["psnr"]["threshold"]["passed"].get<bool>());
  EXPECT_TRUE(rep["metrics"]["ssim"]["threshold"]["passed"].get<bool>());
  EXPECT_FALSE(rep["metrics"]["lpips"]["threshold"]["passed"].get<bool>());
  EXPECT_EQ(rep["metrics"]["lpips"]["direction"], "lower-is-better");
  EXPECT_EQ(rep["protocol"]["metrics"], "clip,psnr,ssim,lpips");
  EXPECT_EQ(rep["thresholds"]["min_psnr_db"].get<double>(), 99.0);
  const auto lpips = Lpips::load(dir_ / "lpips.safetensors");
  for (const auto& row : rep["per_prompt"]) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.png", row["index"].get<size_t>());
    const double expected = lpips->distance(read_png(out / "candidate" / name), read_png(out / "baseline" / name));
    EXPECT_NEAR(row["lpips"].get<double>(), expected, 1e-6) << name;
    EXPECT_GT(expected, 0.0) << name;
  }

  // Only CLIP: no fidelity section, the per-prompt table ordered by CLIP drop.
  r = run_diffbench("eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string()) +
                    common(dir_ / "clip-only") + " --max-quality-loss 100 --metrics clip --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  rep = read_json_file(dir_ / "clip-only" / "report.json");
  EXPECT_FALSE(rep["metrics"].contains("psnr"));
  EXPECT_EQ(rep["per_prompt_order"], "clip_drop descending");

  r = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "bad") + " --metrics clip,lpips --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--lpips"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "bad"));
}

TEST_F(EvalCli, ScoreTakesImagesOfDifferentSizesAndChecksReferences) {
  const auto images = dir_ / "images", refs = dir_ / "refs";
  fs::create_directories(images);
  fs::create_directories(refs);
  const at::Tensor a = at::randint(0, 256, {3, 64, 96}, at::kByte), b = at::randint(0, 256, {3, 120, 80}, at::kByte);
  write_png(images / "a.png", a);
  write_png(images / "b.png", b);
  const std::string coco = shell_quote("coco:" + test::shared_data("captions_val2017.json").string());
  const std::string clip = shell_quote(test::fixture("tiny-clip").string());
  auto r = run_diffbench("score --images " + shell_quote(images.string()) + " --prompts " + coco + " --clip " + clip + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto j = nlohmann::json::parse(r.output);
  ASSERT_EQ(j["per_sample"].size(), 2u);
  EXPECT_EQ(j["files"], nlohmann::json({"a.png", "b.png"}));

  // Against references: b's reference is b, a's is a brightened a.
  write_png(refs / "a.png", at::clamp(a.to(at::kInt) + 10, 0, 255).to(at::kByte));
  write_png(refs / "b.png", b);
  r = run_diffbench("score --images " + shell_quote(images.string()) + " --against " + shell_quote(refs.string()) + " --json");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  j = nlohmann::json::parse(r.output);
  EXPECT_NEAR(j["psnr"]["per_image"][0].get<double>(), psnr(read_png(images / "a.png"), read_png(refs / "a.png")), 1e-12);
  EXPECT_EQ(j["psnr"]["per_image"][1].get<double>(), kPsnrCapDb);
  EXPECT_EQ(j["psnr"]["identical"].get<int>(), 1);
  EXPECT_NEAR(j["ssim"]["per_image"][1].get<double>(), 1.0, 1e-12);
  EXPECT_EQ(j["psnr"]["worst_index"].get<int>(), 0);

  write_png(refs / "b.png", at::zeros({3, 64, 64}, at::kByte));  // another size
  r = run_diffbench("score --images " + shell_quote(images.string()) + " --against " + shell_quote(refs.string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find((refs / "b.png").string()), std::string::npos) << r.output;
  fs::remove(refs / "b.png");
  r = run_diffbench("score --images " + shell_quote(images.string()) + " --against " + shell_quote(refs.string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("b.png"), std::string::npos) << r.output;
  r = run_diffbench("score --images " + shell_quote(images.string()) + " --metrics clip");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--clip"), std::string::npos) << r.output;
}

// `eval` on an SDXL diffusers folder (the project's tiny SDXL, tests/pipeline/data/tiny-sdxl) with
// each acceleration method: the same-model check covers both text encoders, each method acts (its
// counters), and the candidate's images differ from the baseline's.
TEST_F(EvalCli, SdxlFolderWithEachMethod) {
  const fs::path sdxl = fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data/tiny-sdxl";
  const std::string base_spec =
      "[pipeline]\nmodel = \"" + sdxl.string() + "\"\nsteps = 10\nguidance = 5.0\n";
  auto base = write_spec("sdxl_base", base_spec);
  struct Case {
    std::string name, accelerate, counter;
  };
  const std::vector<Case> cases = {
      {"deepcache", "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\n", "partial_calls"},
      {"tome", "[[accelerate]]\nmethod = \"tome\"\nratio = 0.5\nmax_downsample = 2\n", "merging_block_calls"},
      {"tgate", "[[accelerate]]\nmethod = \"tgate\"\ngate_step = 4\n", "single_branch_steps"},
      {"tgate_deepcache",
       "[[accelerate]]\nmethod = \"tgate\"\ngate_step = 4\n[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\n",
       "single_branch_steps"}};
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto cand = write_spec("sdxl_" + c.name, base_spec + c.accelerate);
    const fs::path out = dir_ / ("report_" + c.name);
    auto r = run_diffbench("eval " + shell_quote(cand.string()) + " --baseline " + shell_quote(base.string()) +
                           " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                           " --num-samples 4 --batch-size 2 --clip " + shell_quote(test::fixture("tiny-clip").string()) +
                           " --out " + shell_quote(out.string()) + " --max-quality-loss 100 --quiet");
    ASSERT_EQ(r.exit_code, 0) << r.output;
    const auto rep = read_json_file(out / "report.json");
    EXPECT_TRUE(rep["consistency"]["same_model"].get<bool>());
    EXPECT_TRUE(rep["consistency"]["components"]["text_encoder_2"]["identical"].get<bool>()) << rep["consistency"].dump();
    EXPECT_EQ(rep["consistency"]["pipeline_type"]["candidate"], "StableDiffusionXLPipeline");
    const auto& methods = rep["candidate"]["methods"];
    ASSERT_FALSE(methods.empty());
    EXPECT_GT(methods[0]["stats"][c.counter].get<int64_t>(), 0) << methods.dump();
    EXPECT_EQ(rep["candidate"]["per_sample_clip"].size(), 4u);
    EXPECT_LT(rep["metrics"]["psnr"]["mean"].get<double>(), kPsnrCapDb);  // the method changed the images
    for (const char* which : {"baseline", "candidate"})
      EXPECT_TRUE(fs::exists(out / which / "000003.png")) << which;
  }
}
