// The sweep's grid and frontier (pure functions, fixed numbers) and the baseline cache's key.
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/eval/sweep.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

PipelineSpec deepcache_spec() {
  return parse_spec(
      "[pipeline]\nmodel = \"m\"\nsteps = 20\n[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\n"
      "cache_branch_id = 0\n",
      "dc.toml");
}

}  // namespace

// Hand-made: five points (speedup, CLIP loss %, lower is better). B is beaten by C (faster and a
// smaller loss); E has no loss (undefined) and is never on the frontier; A ties D in speedup with a
// smaller loss, so D is dominated; C and A are the frontier.
TEST(Frontier, LowerIsBetter) {
  const std::vector<FrontierPoint> pts = {
      {1.2, 0.5},           // A
      {1.5, 3.0},           // B: C is faster with less loss
      {1.8, 2.0},           // C
      {1.2, 0.9},           // D: A is as fast with less loss
      {2.5, std::nullopt},  // E: no y
  };
  EXPECT_EQ(pareto_front(pts, false), (std::vector<bool>{true, false, true, false, false}));
}

// The same speedups with a PSNR (higher is better): the fastest with a y, and every point that
// buys quality for speed, are optimal; exact duplicates are both optimal (neither strictly better).
TEST(Frontier, HigherIsBetterAndTies) {
  const std::vector<FrontierPoint> pts = {
      {1.0, 30.0}, {1.5, 25.0}, {1.5, 24.0}, {2.0, 20.0}, {2.0, 20.0}, {0.9, 29.0}, {std::nullopt, 40.0}};
  EXPECT_EQ(pareto_front(pts, true), (std::vector<bool>{true, true, false, true, true, false, false}));
  EXPECT_TRUE(pareto_front({}, true).empty());
}

TEST(Sweep, FrontierInSweepJson) {
  // A suite summary with fixed numbers: three points, one failed before measuring.
  nlohmann::json suite = {{"baseline_runs", {{"generated", 1}}}, {"tally", {{"passed", 2}, {"invalid_spec", 1}}}};
  suite["rows"] = {
      {{"name", "p1"}, {"params", {{"steps", "10"}}}, {"status", "passed"}, {"reason", nullptr}, {"speedup", 2.0},
       {"speedup_ci", {1.9, 2.1}}, {"quality_loss_pct", 4.0}, {"psnr_db", 20.0}, {"ssim", nullptr}, {"lpips", nullptr},
       {"report", "p1/report.json"}},
      {{"name", "p2"}, {"params", {{"steps", "20"}}}, {"status", "passed"}, {"reason", nullptr}, {"speedup", 1.0},
       {"speedup_ci", {0.9, 1.1}}, {"quality_loss_pct", 5.0}, {"psnr_db", 30.0}, {"ssim", nullptr}, {"lpips", nullptr},
       {"report", "p2/report.json"}},
      {{"name", "p3"}, {"params", {{"steps", "0"}}}, {"status", "failed"}, {"reason", "invalid_spec"},
       {"report", "p3/error.json"}}};
  const auto s = sweep_json(deepcache_spec(), {{"steps", {"10", "20", "0"}}}, suite);
  EXPECT_EQ(s["schema"], "diffbench.sweep/1");
  ASSERT_EQ(s["points"].size(), 3u);
  // CLIP loss: p1 is faster with less loss: p2 is dominated.
  const auto& loss = s["frontiers"]["quality_loss_pct"];
  EXPECT_EQ(loss["frontier"], nlohmann::json({"p1"}));
  EXPECT_TRUE(loss["points"][0]["pareto"].get<bool>());
  EXPECT_FALSE(loss["points"][1]["pareto"].get<bool>());
  EXPECT_FALSE(loss["points"][2]["pareto"].get<bool>());
  // PSNR: p2 is slower but better: both optimal, in order of speedup.
  EXPECT_EQ(s["frontiers"]["psnr_db"]["frontier"], nlohmann::json({"p2", "p1"}));
  EXPECT_FALSE(s["frontiers"].contains("ssim"));  // not computed
  const std::string md = render_sweep_markdown(s);
  EXPECT_NE(md.find("| steps=10 | PASSED | 2.00 (1.90–2.10) | 4.00 ★ | 20.00 ★ |"), std::string::npos) << md;
  EXPECT_NE(md.find("| steps=0 | FAILED: invalid_spec |"), std::string::npos) << md;
}

TEST(Sweep, GridPoints) {
  const auto spec = deepcache_spec();
  const auto pts = sweep_candidates(spec, {parse_grid("deepcache.cache_interval=2,3,5"), parse_grid("steps=10,20")});
  ASSERT_EQ(pts.size(), 6u);
  EXPECT_EQ(pts[0].name, "dc-deepcache.cache_interval=2-steps=10");
  EXPECT_EQ(pts[1].name, "dc-deepcache.cache_interval=2-steps=20");
  EXPECT_EQ(pts[5].name, "dc-deepcache.cache_interval=5-steps=20");
  EXPECT_EQ(pts[3].params, nlohmann::json({{"deepcache.cache_interval", "3"}, {"steps", "20"}}));
  EXPECT_EQ(pts[3].spec->steps, 20);
  EXPECT_EQ(pts[3].spec->accelerate[0].params["cache_interval"], 3);  // typed as the method declares it
  EXPECT_EQ(pts[3].spec->accelerate[0].params["cache_branch_id"], 0);  // untouched
  for (const auto& p : pts) EXPECT_TRUE(p.error.empty()) << p.error;
  // accelerate[N] addresses the same entry.
  const auto same = sweep_candidates(spec, {parse_grid("accelerate[0].cache_interval=4")});
  EXPECT_EQ(same[0].spec->accelerate[0].params["cache_interval"], 4);
  // A value out of the method's range fails its point only.
  const auto bad = sweep_candidates(spec, {parse_grid("deepcache.cache_interval=2,0")});
  EXPECT_TRUE(bad[0].error.empty());
  EXPECT_NE(bad[1].error.find("cache_interval"), std::string::npos) << bad[1].error;
}

TEST(Sweep, BadGridIsAUsageError) {
  const auto spec = deepcache_spec();
  for (const char* g : {"steps", "=1", "steps=", "steps=1,,2", "steps=1,"}) EXPECT_THROW(parse_grid(g), UsageError) << g;
  for (const char* g : {"tome.ratio=0.5", "deepcache.nope=1", "colour=1", "steps=ten", "steps=0",
                        "deepcache.cache_interval=2.5", "accelerate[1].cache_interval=2", "guidance=-1",
                        "deepcache.method=tome"})
    EXPECT_THROW(sweep_candidates(spec, {parse_grid(g)}), UsageError) << g;
  EXPECT_THROW(sweep_candidates(spec, {parse_grid("steps=1"), parse_grid("steps=2")}), UsageError);
  EXPECT_THROW(sweep_candidates(spec, {}), UsageError);
}

TEST(SuiteCandidates, FolderExpandsToSpecsAndPythonFilesInOrder) {
  const fs::path dir = test::temp_dir("suite-expand");
  for (const char* f : {"b.toml", "a.py", "notes.txt", "b.py"}) std::ofstream(dir / f) << "x";
  const auto c = expand_candidates({dir, dir / "a.py"});
  ASSERT_EQ(c.size(), 4u);
  EXPECT_EQ(c[0].name, "a");
  EXPECT_EQ(c[1].name, "b");
  EXPECT_EQ(c[2].name, "b-2");  // b.py beside b.toml
  EXPECT_EQ(c[2].file.filename(), "b.toml");
  EXPECT_EQ(c[3].name, "a-2");
  fs::create_directories(dir / "empty");
  EXPECT_THROW(expand_candidates({dir / "empty"}), UsageError);
  EXPECT_THROW(expand_candidates({}), UsageError);
  fs::remove_all(dir);
}

class BaselineKey : public test::EvalFixture {};

// The key changes with the model's files, a protocol option and the version; not with the name.
TEST_F(BaselineKey, ChangesWithModelProtocolAndVersion) {
  const fs::path model = dir_ / "tiny-sd";
  fs::copy(test::fixture("tiny-sd"), model, fs::copy_options::recursive);
  PipelineSpec spec = parse_spec("[pipeline]\nmodel = \"tiny-sd\"\nsteps = 10\n", dir_ / "a.toml");
  EvalOptions o;
  o.clip = test::fixture("tiny-clip");
  const std::vector<std::string> prompts = {"a cat", "a dog"};
  const auto base = baseline_key_material(spec, o, prompts);
  const std::string key = baseline_key(base);
  EXPECT_EQ(key.size(), 32u);
  EXPECT_EQ(baseline_key(baseline_key_material(spec, o, prompts)), key);
  PipelineSpec renamed = spec;
  renamed.name = "other";
  renamed.file = dir_ / "b.toml";
  EXPECT_EQ(baseline_key(baseline_key_material(renamed, o, prompts)), key);
  // model_index.json; text encoder, UNet and VAE config + weights; 4 tokenizer files; the scheduler config.
  EXPECT_EQ(base["baseline"]["model_files"].size(), 12u) << base["baseline"]["model_files"].dump();

  EvalOptions batch = o;
  batch.batch_size = 2;
  EXPECT_NE(baseline_key(baseline_key_material(spec, batch, prompts)), key);
  EvalOptions seeds = o;
  seeds.seeds = {42, 43};
  EXPECT_NE(baseline_key(baseline_key_material(spec, seeds, prompts)), key);
  EvalOptions noise = o;
  noise.noise = NoiseMode::Diffusers;
  EXPECT_NE(baseline_key(baseline_key_material(spec, noise, prompts)), key);
  EXPECT_NE(baseline_key(baseline_key_material(spec, o, {"a cat", "a bird"})), key);
  PipelineSpec steps = spec;
  steps.steps = 11;
  EXPECT_NE(baseline_key(baseline_key_material(steps, o, prompts)), key);
  EXPECT_NE(baseline_key(baseline_key_material(spec, o, prompts, "0.0.0-other")), key);

  // One byte of the UNet's weights changed: another key.
  const fs::path unet = model / "unet" / "diffusion_pytorch_model.safetensors";
  test::flip_last_byte(unet);
  EXPECT_NE(baseline_key(baseline_key_material(spec, o, prompts)), key);
}

// A spec's weight variant (fp16) is what the pipeline loads, so its files are what the key hashes: a
// changed .fp16.safetensors is another baseline, a changed plain file beside it is not.
TEST_F(BaselineKey, HashesTheVariantsWeights) {
  const fs::path model = dir_ / "tiny-sd";
  fs::copy(test::fixture("tiny-sd"), model, fs::copy_options::recursive);
  const fs::path plain = model / "unet" / "diffusion_pytorch_model.safetensors";
  const fs::path fp16 = model / "unet" / "diffusion_pytorch_model.fp16.safetensors";
  fs::copy_file(plain, fp16);
  const PipelineSpec spec = parse_spec("[pipeline]\nmodel = \"tiny-sd\"\nvariant = \"fp16\"\nsteps = 10\n", dir_ / "a.toml");
  ASSERT_EQ(spec.variant, "fp16");
  EvalOptions o;
  o.clip = test::fixture("tiny-clip");
  const std::vector<std::string> prompts = {"a cat"};
  const auto base = baseline_key_material(spec, o, prompts);
  EXPECT_TRUE(base["baseline"]["model_files"].contains("unet/diffusion_pytorch_model.fp16.safetensors"))
      << base["baseline"]["model_files"].dump();
  const std::string key = baseline_key(base);
  test::flip_last_byte(plain);
  EXPECT_EQ(baseline_key(baseline_key_material(spec, o, prompts)), key) << "the plain file is not loaded";
  test::flip_last_byte(fp16);
  EXPECT_NE(baseline_key(baseline_key_material(spec, o, prompts)), key);
}

// An SDXL folder's second text encoder and tokenizer are as much the model as the first: a folder that
// differs only in text_encoder_2 is another baseline (in a suite as in the cache).
TEST_F(BaselineKey, SdxlSecondTextEncoderIsInTheKey) {
  const fs::path model = dir_ / "tiny-sdxl";
  fs::copy(fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data/tiny-sdxl", model, fs::copy_options::recursive);
  const PipelineSpec spec = parse_spec("[pipeline]\nmodel = \"tiny-sdxl\"\nsteps = 10\n", dir_ / "a.toml");
  EvalOptions o;
  o.clip = test::fixture("tiny-clip");
  const std::vector<std::string> prompts = {"a cat", "a dog"};
  const auto base = baseline_key_material(spec, o, prompts);
  const auto& files = base["baseline"]["model_files"];
  for (const char* f : {"text_encoder_2/config.json", "text_encoder_2/model.safetensors", "tokenizer_2/tokenizer.json",
                        "tokenizer_2/tokenizer_config.json"})
    EXPECT_TRUE(files.contains(f)) << f << " missing from " << files.dump();
  const std::string key = baseline_key(base);
  test::flip_last_byte(model / "text_encoder_2" / "model.safetensors");
  EXPECT_NE(baseline_key(baseline_key_material(spec, o, prompts)), key);
}
