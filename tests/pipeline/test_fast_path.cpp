// The fast paths' images against the plain float32 CPU path on tiny-sd (issue: PSNR ≥ 30 dB).
// On the CPU: bfloat16 weights and activations. With CUDA (run on the GPU machine; skipped here):
// fp16 with CUDA graphs, channels-last and the own kernels, and DeepCache / ToMe with and without
// graphs of their hooked calls. dtype fp8 (the UNet's token GEMMs in e4m3) on both.
#include <cmath>
#include <cstdio>

#include "diffbench/accel/method.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "diffbench/pipeline/device.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

using test::reference;

constexpr double kMinPsnr = 30.0;

class FastPath : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-reference.safetensors"));
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  }

  // The reference protocol of pndm50.
  static GenerateOptions options(std::vector<PipelineHooks*> hooks = {}) {
    return test::reference_protocol(std::move(hooks));
  }

  static std::unique_ptr<Txt2ImgPipeline> load(at::ScalarType dtype, at::Device device, bool graphs = true,
                                                bool fp8 = false) {
    ModelOptions mo;
    mo.dir = test::fixture("tiny-sd");
    mo.dtype = dtype;
    mo.device = device;
    mo.cuda_graphs = graphs;
    mo.fp8 = fp8;
    return Txt2ImgPipeline::load(mo);
  }

  // Per-image PSNR, printed for the record; every image must reach `min`.
  static void expect_close(const at::Tensor& images, const at::Tensor& ref, const std::string& what, double min = kMinPsnr) {
    ASSERT_EQ(images.sizes(), ref.sizes()) << what;
    std::printf("[ %s ] PSNR (dB):", what.c_str());
    for (int64_t i = 0; i < images.size(0); ++i) {
      const double p = psnr(images[i].to(at::kFloat), ref[i].to(at::kFloat));
      std::printf(" %.1f", p);
      EXPECT_GE(p, min) << what << ", image " << i;
    }
    std::printf("\n");
  }

  static std::unique_ptr<Method> method(const std::string& name, nlohmann::json params) {
    return test::builtin_method(name, std::move(params));
  }
};

}  // namespace

TEST(Psnr, KnownValues) {
  const at::Tensor a = at::zeros({3, 4, 4});
  EXPECT_NEAR(psnr(a, at::full({3, 4, 4}, 0.1, at::kDouble)), 20.0, 1e-9);  // MSE 0.01
  EXPECT_NEAR(psnr(at::zeros({8}, at::kByte), at::full({8}, 255, at::kByte)), 0.0, 1e-12);
  EXPECT_TRUE(std::isinf(psnr(a, a)));
  EXPECT_THROW(psnr(a, at::zeros({3, 4, 5})), UsageError);
}

TEST_F(FastPath, CpuBfloat16IsWithin30dBOfFloat32) {
  const at::Tensor ref = reference().tensors->get("pndm50.image");
  auto pipe = load(at::kBFloat16, at::kCPU);
  expect_close(pipe->generate(reference().prompts, options()).images, ref, "cpu bf16 vs cpu fp32 reference");
}

// dtype fp8 (the UNet's token GEMMs in e4m3) changes the images more than half precision does (its PSNR
// is what a user is shown against the fp16 baseline): 33.4–35.0 dB here against bfloat16's 42–43. The
// bound leaves room for other CPUs' float rounding, which e4m3's coarse rounding can amplify.
constexpr double kMinFp8Psnr = 28.0;

TEST_F(FastPath, CpuFp8GemmsStayCloseToFloat32) {
  const at::Tensor ref = reference().tensors->get("pndm50.image");
  auto pipe = load(at::kFloat, at::kCPU, true, /*fp8=*/true);
  EXPECT_TRUE(pipe->load_report().contains("fp8_s"));
  const at::Tensor images = pipe->generate(reference().prompts, options()).images;
  EXPECT_FALSE(at::equal(images, ref));
  expect_close(images, ref, "cpu fp8 GEMMs vs cpu fp32 reference", kMinFp8Psnr);
}

TEST_F(FastPath, CudaFp8GemmsStayCloseToCpuFloat32) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (run on the GPU machine)";
  if (!has_fp8_gemms(at::Device(at::kCUDA, 0))) GTEST_SKIP() << "the GPU has no fp8 GEMMs (compute capability < 8.9)";
  const at::Tensor ref = reference().tensors->get("pndm50.image");
  auto pipe = load(at::kHalf, at::Device(at::kCUDA, 0), true, /*fp8=*/true);
  expect_close(pipe->generate(reference().prompts, options()).images.cpu(), ref, "cuda fp8 GEMMs graphs vs cpu fp32 reference",
               kMinFp8Psnr);
}

TEST_F(FastPath, CudaHalfWithGraphsIsWithin30dBOfCpuFloat32) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (run on the GPU machine)";
  const at::Tensor ref = reference().tensors->get("pndm50.image");
  auto fast = load(at::kHalf, at::Device(at::kCUDA, 0));
  expect_close(fast->generate(reference().prompts, options()).images.cpu(), ref, "cuda fp16 graphs vs cpu fp32 reference");
  auto bf16 = load(at::kBFloat16, at::Device(at::kCUDA, 0));
  expect_close(bf16->generate(reference().prompts, options()).images.cpu(), ref, "cuda bf16 graphs vs cpu fp32 reference");
}

TEST_F(FastPath, CudaGraphsOfHookedCallsGiveTheEagerImages) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (run on the GPU machine)";
  auto graphs = load(at::kHalf, at::Device(at::kCUDA, 0), true);
  auto eager = load(at::kHalf, at::Device(at::kCUDA, 0), false);
  for (const auto& [name, params] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"deepcache", {{"cache_interval", 3}, {"cache_branch_id", 0}}},
           {"tome", {{"ratio", 0.5}}},
           {"tgate", {{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1}, {"warm_up", 2}}}}) {
    auto m1 = method(name, params);
    auto m2 = method(name, params);
    // A variant's first call runs eagerly and its second is captured; T-GATE's gate comes once per
    // generation, so the third generation replays every variant.
    for (int i = 0; i < 2; ++i) graphs->generate(reference().prompts, options({m1.get()}));
    m1->reset_stats();
    const at::Tensor with = graphs->generate(reference().prompts, options({m1.get()})).images.cpu();
    const at::Tensor without = eager->generate(reference().prompts, options({m2.get()})).images.cpu();
    expect_close(with, without, name + " cuda graphs vs eager", 40.0);
    // Replayed calls run no hooks: the method's counters must still match the eager run's.
    EXPECT_EQ(m1->stats(), m2->stats()) << name;
  }
}

// eval's warm-up (GenerateOptions::warm_up_only) skips the replays of graphs already captured: the
// generation after it must still give the eager images, and the methods' counters of that
// generation must equal the eager run's.
TEST_F(FastPath, CudaWarmUpOnlyLeavesTheFollowingGenerationUnchanged) {
  if (!at::hasCUDA()) GTEST_SKIP() << "no CUDA device (run on the GPU machine)";
  for (const auto& [name, params] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"", nullptr},
           {"deepcache", {{"cache_interval", 3}, {"cache_branch_id", 0}}},
           {"tgate", {{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1}, {"warm_up", 2}}}}) {
    auto graphs = load(at::kHalf, at::Device(at::kCUDA, 0), true);
    auto eager = load(at::kHalf, at::Device(at::kCUDA, 0), false);
    auto m1 = name.empty() ? nullptr : method(name, params);
    auto m2 = name.empty() ? nullptr : method(name, params);
    const auto hooks1 = m1 ? std::vector<PipelineHooks*>{m1.get()} : std::vector<PipelineHooks*>{};
    const auto hooks2 = m2 ? std::vector<PipelineHooks*>{m2.get()} : std::vector<PipelineHooks*>{};
    GenerateOptions warm = options(hooks1);
    warm.warm_up_only = true;
    graphs->generate(reference().prompts, warm);
    if (m1) m1->reset_stats();
    const at::Tensor with = graphs->generate(reference().prompts, options(hooks1)).images.cpu();
    const at::Tensor without = eager->generate(reference().prompts, options(hooks2)).images.cpu();
    const std::string what = (name.empty() ? std::string("baseline") : name) + " after a warm-up-only generation vs eager";
    expect_close(with, without, what, 40.0);
    if (m1) EXPECT_EQ(m1->stats(), m2->stats()) << name;
  }
}
