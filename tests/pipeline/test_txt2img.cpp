// Parity of the whole txt2img pipeline with diffusers' reference runs on tiny-sd (float32, CPU).
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "diffbench/pipeline/init_random.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

using test::reference;
using test::tiny_sd;

class Txt2Img : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-reference.safetensors"));
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  }

  // Runs the 4 reference prompts as the reference did (one generator for the batch) and checks
  // per-step latents (when the reference has them), final latents and images.
  void check_run(const std::string& run, GenerateOptions opt) {
    const auto& ref = reference();
    opt.seed = 42;
    opt.batch_size = 4;
    opt.noise = NoiseMode::Diffusers;
    std::vector<at::Tensor> steps;
    auto result = tiny_sd().generate(ref.prompts, opt, [&](size_t, size_t, size_t, const at::Tensor& latents) {
      steps.push_back(latents.clone());
    });
    if (ref.tensors->contains(run + ".latents_per_step")) {
      const auto per_step = ref.tensors->get(run + ".latents_per_step");
      ASSERT_EQ(static_cast<int64_t>(steps.size()), per_step.size(0)) << run << ": UNet calls";
      for (size_t i = 0; i < steps.size(); ++i) {
        SCOPED_TRACE(run + " step " + std::to_string(i));
        EXPECT_TENSOR_NEAR(steps[i], per_step[i], 1e-3);
      }
    }
    ASSERT_FALSE(steps.empty());
    EXPECT_TENSOR_NEAR(steps.back(), ref.tensors->get(run + ".final_latents"), 1e-3);
    EXPECT_TENSOR_NEAR(result.images, ref.tensors->get(run + ".image"), 2.0 / 255);
  }
};

}  // namespace

TEST_F(Txt2Img, InitialNoiseIsTorchRandnBitExact) {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(42);
  auto noise = at::randn({4, 4, 16, 16}, gen, at::TensorOptions().dtype(at::kFloat));
  EXPECT_TRUE(at::equal(noise, reference().tensors->get("init_noise.seed42.shape_4x4x16x16")));
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

TEST_F(Txt2Img, Ddim20MatchesDiffusersEveryStep) {
  GenerateOptions opt;
  opt.scheduler = "ddim";
  opt.steps = 20;
  check_run("ddim20", opt);
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

TEST_F(Txt2Img, ReusesTextEncoderAndVaeOnlyWhenTheirFilesMatch) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("clip-tokenizer/vocab.json"));
  auto shared = tiny_sd().shared_components();
  ModelOptions mo;
  mo.dir = test::fixture("tiny-sd");
  auto again = Txt2ImgPipeline::load(mo, Logger::silent(), shared);
  EXPECT_EQ(again->load_report()["reused"], nlohmann::json({"text_encoder", "vae"}));
  GenerateOptions opt;
  opt.steps = 2;
  EXPECT_TRUE(at::equal(again->generate({"a cat"}, opt).images, tiny_sd().generate({"a cat"}, opt).images));

  auto dir = test::temp_dir("reuse");
  RandomPipelineOptions ro;
  ro.seed = 9;
  ro.tokenizer = test::fixture("clip-tokenizer");
  write_random_pipeline(dir / "other", ro);
  mo.dir = dir / "other";
  auto other = Txt2ImgPipeline::load(mo, Logger::silent(), shared);
  EXPECT_TRUE(other->load_report()["reused"].empty());
  std::filesystem::remove_all(dir);
}
