// Training the demo models: a tiny CPU run writes folders the normal loaders run, and losses fall.
#include <c10/core/InferenceMode.h>

#include "diffbench/demo/evaluate.hpp"
#include "diffbench/demo/scenes.hpp"
#include "diffbench/demo/train.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "test_support.hpp"

namespace {

using namespace diffbench;
using namespace diffbench::demo;

TrainOptions tiny_options(const std::filesystem::path& out) {
  TrainOptions o;
  o.out = out;
  o.arch = DemoArch::tiny();
  o.train_size = 48;
  o.vae = {3, 4, 1e-3, 1};
  o.clip = {3, 8, 1e-3, 1};
  o.unet = {3, 4, 1e-3, 1};
  o.eval_steps = 2;
  o.log_every = 1;
  return o;
}

TEST(DemoTrain, SmokeRunWritesLoadableFolders) {
  const auto root = test::temp_dir("demo-train");
  const auto out = root / "demo";
  const auto report = train_demo(tiny_options(out), Logger::silent());
  for (const char* f : {"sd/model_index.json", "sd/unet/diffusion_pytorch_model.safetensors", "sd/vae/config.json",
                        "sd/text_encoder/model.safetensors", "sd/tokenizer/vocab.json", "sd/scheduler/scheduler_config.json",
                        "clip/config.json", "clip/model.safetensors", "clip/merges.txt", "clip/processor_config.json",
                        "prompts.txt", "train.json", "README.md", "samples.png", "prompts.png"})
    EXPECT_TRUE(std::filesystem::exists(out / f)) << f;
  const auto j = read_json_file(out / "train.json");
  EXPECT_EQ(j["phases"]["unet"]["steps"], 3);
  EXPECT_EQ(j["phases"]["vae"]["losses"].size(), 3u);
  EXPECT_GT(j["scaling_factor"].get<double>(), 0.0);
  EXPECT_EQ(j["checks"]["pipeline"]["count"], 32);
  EXPECT_EQ(report["seed"], 0);

  // The folders run through the ordinary loaders.
  ModelOptions mo;
  mo.dir = out / "sd";
  auto pipe = Txt2ImgPipeline::load(mo);
  EXPECT_EQ(pipe->default_height(), 64);
  GenerateOptions go;
  go.steps = 3;
  go.batch_size = 2;
  const auto prompts = demo_prompts(2);
  const auto result = pipe->generate(prompts, go);
  ASSERT_EQ(result.images.sizes(), (std::vector<int64_t>{2, 3, 64, 64}));
  EXPECT_TRUE(result.images.isfinite().all().item<bool>());
  const auto scorer = ClipScorer::load(out / "clip");
  const auto scores = scorer->score(render_batch_u8(Split::HeldOut, 0, 2, 0), prompts);
  ASSERT_EQ(scores.size(), 2u);
  for (double s : scores) EXPECT_TRUE(std::isfinite(s));
  // The pipeline's text encoder is the scorer's text tower.
  const auto a = load_safetensors(out / "sd/text_encoder/model.safetensors");
  const auto b = load_safetensors(out / "clip/model.safetensors");
  EXPECT_TRUE(a.at("final_layer_norm.weight").equal(b.at("text_model.final_layer_norm.weight")));
  EXPECT_EQ(a.at("final_layer_norm.weight").scalar_type(), at::kHalf);
  std::filesystem::remove_all(root);
}

// Each phase overfits a pool of 8 pictures for 30 steps; its loss on the whole pool, computed the
// same way before and after (no sampling, fixed noise), must fall.
class DemoLosses : public ::testing::Test {
 protected:
  void SetUp() override {
    torch::manual_seed(0);
    o = tiny_options("unused");
    o.train_size = 8;
    o.vae = {30, 8, 2e-3, 3};
    o.clip = {30, 8, 1e-3, 3};
    o.unet = {30, 8, 2e-3, 3};
    std::vector<std::string> captions;
    pool.images = render_batch_u8(Split::Train, 0, o.train_size, 0, &captions);
    const auto dir = test::temp_dir("demo-losses");
    write_tokenizer_files(vocab, dir);
    const auto tok = ClipTokenizer::from_dir(dir);
    pool.ids = tok.encode_batch(captions);
    empty_ids = tok.encode_batch({""})[0];
    std::filesystem::remove_all(dir);
  }
  at::Tensor pictures() const { return pool.images.to(at::kFloat).div(127.5).sub(1.0); }

  double vae_loss(AutoencoderKL& vae) const {
    torch::NoGradGuard g;
    vae->eval();
    const at::Tensor x = pictures();
    return (vae->decode(vae->encode(x).first) - x).abs().mean().item<double>();
  }
  double clip_loss(ClipModel& clip) const {
    torch::NoGradGuard g;
    clip->eval();
    const at::Tensor mean = at::tensor({0.48145466, 0.4578275, 0.40821073}).view({1, 3, 1, 1});
    const at::Tensor std = at::tensor({0.26862954, 0.26130258, 0.27577711}).view({1, 3, 1, 1});
    const at::Tensor is_eos = pool.ids.eq(vocab.eos_id).to(at::kLong);
    const at::Tensor mask = (is_eos.cumsum(1) - is_eos).eq(0).to(at::kLong);
    at::Tensor img = clip->get_image_features(((pictures() + 1) / 2 - mean) / std);
    at::Tensor txt = clip->get_text_features(pool.ids, mask);
    img = img / img.norm(2, -1, true);
    txt = txt / txt.norm(2, -1, true);
    const at::Tensor logits = 10.0 * img.matmul(txt.t());
    return at::cross_entropy_loss(logits, at::arange(logits.size(0), at::kLong)).item<double>();
  }
  double unet_loss(UNet2DConditionModel& unet, ClipTextModel& text, double scale) const {
    torch::NoGradGuard g;
    unet->eval();
    at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(7);
    const at::Tensor z = pool.mean * scale;
    const at::Tensor noise = at::randn(z.sizes(), gen);
    const double ac = 0.5;  // alphas_cumprod near t = 420 of SD's schedule
    const at::Tensor noisy = std::sqrt(ac) * z + std::sqrt(1 - ac) * noise;
    const at::Tensor pred = unet->forward(noisy, at::tensor(420, at::kLong), text->forward(pool.ids).last_hidden_state);
    return (pred - noise).pow(2).mean().item<double>();
  }

  TrainOptions o;
  BpeVocab vocab = build_bpe_vocab(grammar_words());
  TrainPool pool;
  at::Tensor empty_ids;
};

TEST_F(DemoLosses, FallOverThirtySteps) {
  AutoencoderKL vae(VaeConfig::from_json(JsonConfig(vae_config(o.arch, 1.0), "vae")));
  const double vae_before = vae_loss(vae);
  const auto vr = train_vae(vae, pool, o, Logger::silent());
  ASSERT_EQ(vr.losses.size(), 30u);
  const double vae_after = vae_loss(vae);
  EXPECT_LT(vae_after, 0.9 * vae_before) << "VAE L1 " << vae_before << " -> " << vae_after;
  const double scale = encode_pool(vae, pool, 16);
  EXPECT_GT(scale, 0.0);
  ASSERT_EQ(pool.recon.sizes(), pool.images.sizes());

  pool.recon = at::Tensor();  // the 30-step VAE's reconstructions are no pictures to learn from
  ClipModel clip(ClipConfig::from_json(JsonConfig(clip_config(o.arch, vocab), "clip")));
  init_clip(clip);
  const double clip_before = clip_loss(clip);
  train_clip(clip, pool, o, Logger::silent());
  const double clip_after = clip_loss(clip);
  EXPECT_LT(clip_after, 0.9 * clip_before) << "CLIP contrastive " << clip_before << " -> " << clip_after;

  const UNetConfig uc = UNetConfig::from_json(JsonConfig(unet_config(o.arch), "unet"));
  UNet2DConditionModel unet(uc), ema(uc);
  const double unet_before = unet_loss(unet, clip->text_tower(), scale);
  train_unet(unet, ema, clip->text_tower(), pool, empty_ids, scale, o, Logger::silent());
  const double unet_after = unet_loss(unet, clip->text_tower(), scale);
  EXPECT_LT(unet_after, 0.9 * unet_before) << "UNet epsilon MSE " << unet_before << " -> " << unet_after;
}

TEST(DemoEvaluate, TopOneAccuracy) {
  const at::Tensor sim = at::tensor({3.0, 1.0, 0.0, 0.0, 2.0, 5.0, 1.0, 0.0, 4.0}, at::kDouble).view({3, 3});
  EXPECT_DOUBLE_EQ(top1_accuracy(sim), 2.0 / 3.0);
  const at::Tensor grid = image_grid(at::arange(2 * 3 * 2 * 2, at::kInt).to(at::kByte).view({2, 3, 2, 2}), 2);
  EXPECT_EQ(grid.sizes(), (std::vector<int64_t>{3, 2, 4}));
}

}  // namespace
