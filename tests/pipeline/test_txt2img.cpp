// Parity of the whole txt2img pipeline with diffusers' reference runs on tiny-sd (float32, CPU).
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "diffbench/pipeline/init_random.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

using test::Reference;
using test::reference;

// One teacher-forced step (UNet on both guidance halves, guidance, scheduler update) on the same
// input as diffusers': the single UNet call's 1e-4 parity (../shared/README.md), scaled by the
// scheduler's coefficients, which stay below 1 on these latents.
constexpr double kForcedStepTolerance = 1e-4;
// Free-running runs on configurations that do not amplify last-bit differences: the fixture's
// per-step tolerance (../shared/README.md) for the final latents, and 2/255 for images.
constexpr double kFinalLatentsTolerance = 1e-3;
constexpr double kImageTolerance = 2.0 / 255;
using test::tiny_sd;

class Txt2Img : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-reference.safetensors"));
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  }

  // Runs the 4 reference prompts as the reference did (one generator for the batch). Where the
  // reference has per-step latents, every step is compared teacher-forced (see
  // test::teacher_forced_step_errors); `free_running` also compares a whole run's final latents and
  // images, which only a run that does not amplify last-bit differences can do across CPUs.
  void check_run(const std::string& run, GenerateOptions opt, bool free_running = true,
                 const Reference& ref = reference()) {
    opt.seed = 42;
    opt.batch_size = 4;
    opt.noise = NoiseMode::Diffusers;
    if (ref.tensors->contains(run + ".latents_per_step"))
      test::expect_teacher_forced(run, ref.tensors->get(run + ".latents_per_step"), opt, kForcedStepTolerance);
    if (!free_running) return;
    at::Tensor last;
    auto result = tiny_sd().generate(ref.prompts, opt, [&](size_t, size_t, size_t, const at::Tensor& latents) {
      last = latents.clone();
    });
    ASSERT_TRUE(last.defined());
    std::cout << "[ free-run ] " << run << ": final latents max abs diff "
              << test::max_abs_diff(last, ref.tensors->get(run + ".final_latents")) << ", image "
              << test::max_abs_diff(result.images, ref.tensors->get(run + ".image")) << "\n";
    EXPECT_TENSOR_NEAR(last, ref.tensors->get(run + ".final_latents"), kFinalLatentsTolerance);
    EXPECT_TENSOR_NEAR(result.images, ref.tensors->get(run + ".image"), kImageTolerance);
  }
};

}  // namespace

// The project's noise source against diffusers' initial latents (randn_tensor with one CPU generator
// seeded 42 for the 4-prompt batch): bit for bit, in both noise modes' defining properties.
TEST_F(Txt2Img, NoiseSourceMatchesDiffusersInitialNoiseBitExact) {
  const at::Tensor ref = reference().tensors->get("init_noise.seed42.shape_4x4x16x16");
  NoiseSource shared(NoiseMode::Diffusers, 42);
  shared.begin_batch(0, 4);
  EXPECT_TRUE(at::equal(shared.draw({4, 4, 16, 16}, at::kFloat, at::kCPU), ref));
  // Diffusers mode consumes one stream: two batches of 2 draw the same numbers as one batch of 4.
  NoiseSource split(NoiseMode::Diffusers, 42);
  split.begin_batch(0, 2);
  const at::Tensor first = split.draw({2, 4, 16, 16}, at::kFloat, at::kCPU);
  split.begin_batch(2, 2);
  const at::Tensor second = split.draw({2, 4, 16, 16}, at::kFloat, at::kCPU);
  EXPECT_TRUE(at::equal(at::cat({first, second}, 0), ref));
  // Per-prompt mode: prompt i's noise is a diffusers draw seeded 42 + i, whatever the batch.
  NoiseSource per_prompt(NoiseMode::PerPrompt, 42);
  per_prompt.begin_batch(2, 2);
  const at::Tensor batch = per_prompt.draw({2, 4, 16, 16}, at::kFloat, at::kCPU);
  NoiseSource alone(NoiseMode::Diffusers, 45);  // prompt 3 of the run
  alone.begin_batch(0, 1);
  EXPECT_TRUE(at::equal(batch[1], alone.draw({1, 4, 16, 16}, at::kFloat, at::kCPU)[0]));
  NoiseSource first_prompt(NoiseMode::Diffusers, 42);
  first_prompt.begin_batch(0, 1);
  EXPECT_TRUE(at::equal(first_prompt.draw({1, 4, 16, 16}, at::kFloat, at::kCPU)[0], ref[0]));
}

TEST_F(Txt2Img, PromptEmbeddings) {
  EXPECT_TENSOR_NEAR(tiny_sd().encode_prompts(reference().prompts), reference().tensors->get("prompt.embeds"), 1e-4);
  EXPECT_TENSOR_NEAR(tiny_sd().encode_prompts(std::vector<std::string>(4, "")),
                     reference().tensors->get("negative.embeds"), 1e-4);
}

TEST_F(Txt2Img, Pndm50MatchesDiffusersEveryStep) {
  GenerateOptions opt;
  opt.steps = 50;
  opt.guidance = 7.5;
  check_run("pndm50", opt);
}

TEST_F(Txt2Img, Pndm50WithoutGuidance) {
  GenerateOptions opt;
  opt.steps = 50;
  opt.guidance = 1.0;
  check_run("pndm50.gs1", opt);
}

// DDIM built from SD 1.5's PNDM config keeps clip_sample: on the random tiny model each step's
// clipping amplifies last-bit differences, so two CPUs' diffusers references of the same run end
// 19/255 apart. Its steps are compared teacher-forced only; the free-running comparison uses DDIM
// without clip_sample (tests/pipeline/data/step_refs.*, tools/refs/make_step_refs.py).
TEST_F(Txt2Img, Ddim20MatchesDiffusersEveryStep) {
  GenerateOptions opt;
  opt.scheduler = "ddim";
  opt.steps = 20;
  check_run("ddim20", opt, /*free_running=*/false);
}

TEST_F(Txt2Img, Ddim20WithoutClipSampleEndToEnd) {
  const Reference& ref = test::step_reference();
  GenerateOptions opt;
  opt.scheduler = "ddim";
  opt.scheduler_options = {{"clip_sample", false}};
  opt.steps = 20;
  check_run("ddim20.noclip", opt, /*free_running=*/true, ref);
}

TEST_F(Txt2Img, Euler20) {
  GenerateOptions opt;
  opt.scheduler = "euler";
  opt.steps = 20;
  check_run("euler20", opt);
}

TEST_F(Txt2Img, EulerAncestral20) {
  GenerateOptions opt;
  opt.scheduler = "euler_a";
  opt.steps = 20;
  check_run("euler_a20", opt);
}

TEST_F(Txt2Img, DpmSolverPP2M20) {
  GenerateOptions opt;
  opt.scheduler = "dpmpp_2m";
  opt.steps = 20;
  check_run("dpmpp2m20", opt);
}

TEST_F(Txt2Img, PerPromptNoiseDoesNotDependOnBatchSize) {
  GenerateOptions opt;
  opt.steps = 10;
  opt.noise = NoiseMode::PerPrompt;
  opt.scheduler = "euler_a";  // draws noise every step too
  const auto& prompts = reference().prompts;
  opt.batch_size = 1;
  auto one = tiny_sd().generate(prompts, opt).images;
  for (int bs : {2, 4}) {
    opt.batch_size = bs;
    auto other = tiny_sd().generate(prompts, opt).images;
    SCOPED_TRACE("batch size " + std::to_string(bs));
    EXPECT_TENSOR_NEAR(other, one, 1e-5);
  }
  // And per-prompt noise really differs between prompts from the diffusers stream.
  opt.noise = NoiseMode::Diffusers;
  opt.batch_size = 4;
  auto shared = tiny_sd().generate(prompts, opt).images;
  EXPECT_GT(test::max_abs_diff(shared, one), 1e-2);
}

TEST_F(Txt2Img, RejectsBadSizes) {
  GenerateOptions opt;
  opt.steps = 1;
  opt.height = 100;  // not a multiple of 8
  EXPECT_THROW(tiny_sd().generate({"x"}, opt), UsageError);
}

TEST_F(Txt2Img, ReusesTextEncoderUNetAndVaeOnlyWhenTheirFilesMatch) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("clip-tokenizer/vocab.json"));
  auto shared = tiny_sd().shared_components();
  ModelOptions mo;
  mo.dir = test::fixture("tiny-sd");
  auto again = Txt2ImgPipeline::load(mo, Logger::silent(), shared);
  EXPECT_EQ(again->load_report()["reused"], nlohmann::json({"text_encoder", "unet", "vae"}));
  EXPECT_EQ(again->load_report()["tokenizer_reused"], true);  // read from the same folder
  GenerateOptions opt;
  opt.steps = 2;
  EXPECT_TRUE(at::equal(again->generate({"a cat"}, opt).images, tiny_sd().generate({"a cat"}, opt).images));
  mo.fp8 = true;  // dtype fp8: a UNet of its own (the text encoder and the VAE compute as before)
  auto fp8 = Txt2ImgPipeline::load(mo, Logger::silent(), shared);
  EXPECT_EQ(fp8->load_report()["reused"], nlohmann::json({"text_encoder", "vae"}));
  EXPECT_FALSE(at::equal(fp8->generate({"a cat"}, opt).images, tiny_sd().generate({"a cat"}, opt).images));
  mo.fp8 = false;

  auto dir = test::temp_dir("reuse");
  RandomPipelineOptions ro;
  ro.seed = 9;
  ro.tokenizer = test::fixture("clip-tokenizer");
  write_random_pipeline(dir / "other", ro);
  mo.dir = dir / "other";
  auto other = Txt2ImgPipeline::load(mo, Logger::silent(), shared);
  EXPECT_TRUE(other->load_report()["reused"].empty());
  EXPECT_EQ(other->load_report()["tokenizer_reused"], false);
  std::filesystem::remove_all(dir);
}

// On CUDA the text encoder and the VAE run on threads of their own, their first calls at the same
// time as a blank first call of the UNet (ModelOptions::component_threads, turned on here on the CPU):
// the images are bit for bit those of one thread, for a first batch, later batches (after a warm-up)
// and a pipeline that reuses the components and their threads.
TEST_F(Txt2Img, ComponentThreadsChangeNoImage) {
  ModelOptions mo;
  mo.dir = test::fixture("tiny-sd");
  mo.component_threads = true;
  auto threaded = Txt2ImgPipeline::load(mo);
  GenerateOptions opt = test::reference_protocol({}, 3);
  opt.batch_size = 2;  // the first batch with the blank first calls, the second as every later one
  const std::vector<std::string>& prompts = reference().prompts;
  ASSERT_EQ(prompts.size(), 4u);
  const at::Tensor expected = tiny_sd().generate(prompts, opt).images;
  EXPECT_TRUE(at::equal(threaded->generate(prompts, opt).images, expected));
  GenerateOptions warm = opt;
  warm.warm_up_only = true;
  threaded->generate(prompts, warm);
  EXPECT_TRUE(at::equal(threaded->generate(prompts, opt).images, expected));
  auto again = Txt2ImgPipeline::load(mo, Logger::silent(), threaded->shared_components());
  EXPECT_EQ(again->load_report()["reused"], nlohmann::json({"text_encoder", "unet", "vae"}));
  EXPECT_TRUE(at::equal(again->generate(prompts, opt).images, expected));
  EXPECT_TRUE(at::equal(threaded->encode_prompts({"a cat"}), tiny_sd().encode_prompts({"a cat"})));
}
