// The acceleration methods on SDXL against their own Python packages on the project's tiny
// random-weight SDXL folder (tests/pipeline/data/tiny-sdxl): DeepCache (DeepCacheSDHelper), ToMe
// (tomesd.apply_patch), T-GATE (TgateSDXLLoader) and T-GATE with DeepCache
// (TgateSDXLDeepCacheLoader). References: tests/pipeline/data/sdxl_accel_refs.*, made by
// tools/refs/make_sdxl_accel_refs.py (float32, CPU).
// Tolerances: final latents 1e-3 and images 2/255 (../shared/README.md's bounds; the methods change
// the final latents by 0.17 to 1.7 from the plain run, so each comparison tells them apart; ToMe at
// tomesd's defaults merges nothing on SDXL, as tomesd).
#include <iostream>

#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

namespace fs = std::filesystem;

constexpr double kFinalLatentsTolerance = 1e-3;
constexpr double kImageTolerance = 2.0 / 255;

fs::path data_dir() { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data"; }
const test::Reference& refs() { return test::reference_file(data_dir(), "sdxl_accel_refs"); }
// Per run, the transformer-block calls in which tomesd merged tokens (counted by the script).
int64_t tomesd_merges(const std::string& run) {
  static const nlohmann::json meta = read_json_file(data_dir() / "sdxl_accel_refs.json");
  return meta.at("tome_merges").at(run).get<int64_t>();
}

Txt2ImgPipeline& tiny_sdxl() {
  static std::unique_ptr<Txt2ImgPipeline> pipe = [] {
    ModelOptions mo;
    mo.dir = data_dir() / "tiny-sdxl";
    return Txt2ImgPipeline::load(mo);
  }();
  return *pipe;
}

// The references' protocol: 2 prompts in one batch, one diffusers-style generator seeded 42,
// guidance 5.0, 10 steps of the folder's Euler (or DDIM without clip_sample), 64x64.
GenerateOptions protocol(std::vector<Method*> methods, bool ddim = false) {
  GenerateOptions opt = test::sdxl_reference_protocol();
  if (ddim) {
    opt.scheduler = "ddim";
    opt.scheduler_options = {{"clip_sample", false}};
  }
  for (auto* m : methods) opt.hooks.push_back(m);
  return opt;
}

void check_run(const std::string& run, std::vector<Method*> methods, bool ddim = false,
               GenerationResult* out = nullptr) {
  at::Tensor last;
  auto result = tiny_sdxl().generate(refs().prompts, protocol(std::move(methods), ddim),
                                     [&](size_t, size_t, size_t, const at::Tensor& l) { last = l.clone(); });
  const at::Tensor latents = refs().tensors->get(run + ".final_latents");
  const at::Tensor image = refs().tensors->get(run + ".image");
  std::cout << "[ " << run << " ] final latents max abs diff " << test::max_abs_diff(last, latents) << ", image "
            << test::max_abs_diff(result.images, image) << "\n";
  EXPECT_TENSOR_NEAR(last, latents, kFinalLatentsTolerance);
  if (out) *out = result;
  EXPECT_TENSOR_NEAR(result.images, image, kImageTolerance);
}

std::unique_ptr<Method> method(const std::string& name, nlohmann::json params) {
  return test::builtin_method(name, std::move(params));
}

}  // namespace

TEST(SdxlMethods, PlainRunMatchesTheReference) {
  // The run the methods are measured against, from the same script.
  check_run("euler10", {});
}

TEST(SdxlMethods, DeepCacheInterval3Branch0) {
  auto dc = method("deepcache", {{"cache_interval", 3}, {"cache_branch_id", 0}});
  check_run("euler10.deepcache_i3_b0", {dc.get()});
  // 10 Euler calls, full ones at 0, 3, 6, 9; the tiny UNet's 3 down blocks hold 1 resnet each.
  EXPECT_EQ(dc->stats()["full_calls"], 4);
  EXPECT_EQ(dc->stats()["partial_calls"], 6);
}

TEST(SdxlMethods, DeepCacheInterval2Branch3) {
  auto dc = method("deepcache", {{"cache_interval", 2}, {"cache_branch_id", 3}});
  check_run("euler10.deepcache_i2_b3", {dc.get()});
  EXPECT_EQ(dc->stats()["full_calls"], 5);
}

TEST(SdxlMethods, DeepCacheWithDdim) {
  auto dc = method("deepcache", {{"cache_interval", 3}, {"cache_branch_id", 0}});
  check_run("ddim10.deepcache_i3_b0", {dc.get()}, true);
}

TEST(SdxlMethods, TomeDefaultsMergeNothingOnSdxl) {
  // tomesd's default max_downsample = 1 patches only transformer blocks at the latent's own size,
  // and SDXL's first down block has none: the image is the plain run's, as tomesd's.
  auto tome = method("tome", {{"ratio", 0.5}, {"use_rand", false}});
  ASSERT_EQ(tomesd_merges("euler10.tome_r0.5_default"), 0);
  check_run("euler10.tome_r0.5_default", {tome.get()});
  EXPECT_EQ(tome->stats()["merging_block_calls"], 0);
}

TEST(SdxlMethods, TomeMaxDownsample2And4) {
  for (int md : {2, 4}) {
    const std::string run = "euler10.tome_r0.5_md" + std::to_string(md);
    auto tome = method("tome", {{"ratio", 0.5}, {"use_rand", false}, {"max_downsample", md}});
    check_run(run, {tome.get()});
    EXPECT_EQ(tome->stats()["merging_block_calls"], tomesd_merges(run)) << run;
  }
}

TEST(SdxlMethods, TgateSwitchesToTheNegativeAddedConditioningAfterTheGate) {
  // TgateSDXLLoader: after the gate the one branch is the negative prompt's, pooled embedding and
  // time ids included (the prompts' pooled embedding there gives final latents 0.03 away, 30x the
  // tolerance; the images only 0.001).
  auto tg = method("tgate", {{"gate_step", 4}, {"sp_interval", 2}, {"fi_interval", 1}, {"warm_up", 1}});
  GenerationResult result;
  check_run("euler10.tgate_g4_sp2_fi1_w1", {tg.get()}, false, &result);
  EXPECT_EQ(tg->stats()["single_branch_steps"], 6);
  EXPECT_EQ(result.batches[0].guided_calls, 4);
}

TEST(SdxlMethods, TgateWithDeepCache) {
  // TgateSDXLDeepCacheLoader(pipe, cache_interval=3, cache_branch_id=0).tgate(..., gate_step=4): T-GATE
  // first, so that its restarts reach DeepCache, as in tests/accel/test_tgate.cpp.
  auto tg = method("tgate", {{"gate_step", 4}});
  auto dc = method("deepcache", {{"cache_interval", 3}, {"cache_branch_id", 0}});
  check_run("euler10.tgate_deepcache_g4", {tg.get(), dc.get()});
}
