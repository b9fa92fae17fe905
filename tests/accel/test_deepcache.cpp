// DeepCache against DeepCacheSDHelper's reference runs on tiny-sd, its non-uniform schedule, and
// the method registry's errors.
#include "accel/deepcache.hpp"
#include "diffbench/accel/method.hpp"
#include "diffbench/error.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

using test::reference;
using test::tiny_sd;

std::unique_ptr<Method> make_deepcache(nlohmann::json params) {
  return test::builtin_method("deepcache", std::move(params));
}

GenerateOptions reference_options(Method& method) { return test::reference_protocol({&method}); }

class DeepCacheParity : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-reference.safetensors"));
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  }

  void check_images(const std::string& run, Method& method, GenerationResult* out = nullptr) {
    auto result = tiny_sd().generate(reference().prompts, reference_options(method));
    const at::Tensor ref = reference().tensors->get(run + ".image");
    std::cout << "[ " << run << " ] image max diff " << test::max_abs_diff(result.images, ref) << "\n";
    EXPECT_TENSOR_NEAR(result.images, ref, 2.0 / 255);
    if (out) *out = std::move(result);
  }
};

}  // namespace

TEST_F(DeepCacheParity, Interval3Branch0MatchesEveryStep) {
  // Every step teacher-forced onto DeepCache's per-step latents (the cached features then come from
  // the same inputs as the reference's), within the pipeline's per-step tolerance.
  const auto per_step = reference().tensors->get("pndm50.deepcache_i3_b0.latents_per_step");
  auto forced = make_deepcache({{"cache_interval", 3}, {"cache_branch_id", 0}});
  test::expect_teacher_forced("deepcache_i3_b0", per_step, reference_options(*forced), 1e-4);
  // And a free run, whose images stay within 2/255 (PNDM on the tiny model does not amplify
  // last-bit differences).
  auto method = make_deepcache({{"cache_interval", 3}, {"cache_branch_id", 0}});
  auto result = tiny_sd().generate(reference().prompts, reference_options(*method));
  std::cout << "[ deepcache_i3_b0 ] image diff "
            << test::max_abs_diff(result.images, reference().tensors->get("pndm50.deepcache_i3_b0.image")) << "\n";
  EXPECT_TENSOR_NEAR(result.images, reference().tensors->get("pndm50.deepcache_i3_b0.image"), 2.0 / 255);
  // PNDM's UNet timesteps repeat one value, so DeepCacheSDHelper's step counter reads
  // 0, 1, 1, 3, 4, ..., 50: full calls where it is a multiple of 3.
  EXPECT_EQ(result.batches[0].unet_calls, 51);
  EXPECT_EQ(method->stats()["full_calls"], 17);
  EXPECT_EQ(method->stats()["partial_calls"], 34);
  EXPECT_GT(result.skipped_module_fraction(), 0.25);
  EXPECT_LT(result.skipped_module_fraction(), 1.0);
}

TEST_F(DeepCacheParity, Interval5Branch1) {
  auto method = make_deepcache({{"cache_interval", 5}, {"cache_branch_id", 1}});
  check_images("pndm50.deepcache_i5_b1", *method);
}

TEST_F(DeepCacheParity, Interval2Branch3) {
  auto method = make_deepcache({{"cache_interval", 2}, {"cache_branch_id", 3}});
  check_images("pndm50.deepcache_i2_b3", *method);
}

TEST_F(DeepCacheParity, NothingLeaksFromOneGenerationIntoTheNext) {
  auto method = make_deepcache({{"cache_interval", 3}, {"cache_branch_id", 0}});
  // A different generation first (other prompts, seed, size, steps), then the reference run
  // with the same method object, twice.
  GenerateOptions other;
  other.steps = 7;
  other.seed = 3;
  other.height = other.width = 64;
  other.hooks = {method.get()};
  tiny_sd().generate({"a red bus", "two cats"}, other);
  GenerationResult first;
  check_images("pndm50.deepcache_i3_b0", *method, &first);
  auto second = tiny_sd().generate(reference().prompts, reference_options(*method));
  EXPECT_TRUE(at::equal(first.images, second.images)) << test::max_abs_diff(first.images, second.images);
}

TEST(DeepCacheSchedule, NonUniformAsDeepCachesPipeline) {
  // Values printed by sample_from_quad_center of DeepCache/sd/pipeline_stable_diffusion.py
  // (numpy 2.4), sorted, for (steps, interval, center, pow).
  EXPECT_EQ(deepcache_nonuniform_steps(50, 3, 15, 1.4),
            (std::vector<int>{0, 3, 6, 8, 11, 13, 15, 17, 20, 22, 25, 28, 32, 35, 38, 42, 46}));
  EXPECT_EQ(deepcache_nonuniform_steps(50, 5, 15, 1.4), (std::vector<int>{0, 5, 9, 13, 17, 21, 26, 31, 37, 43}));
  EXPECT_EQ(deepcache_nonuniform_steps(50, 2, 15, 1.4),
            (std::vector<int>{0, 2, 4, 6, 7, 9, 11, 12, 14, 15, 17, 18, 20, 22, 24, 26, 28, 30, 32, 35, 37, 39, 42, 44, 47}));
  EXPECT_EQ(deepcache_nonuniform_steps(20, 3, 5, 1.4), (std::vector<int>{0, 3, 5, 6, 9, 12, 16}));
  EXPECT_EQ(deepcache_nonuniform_steps(50, 3, 25, 1.2),
            (std::vector<int>{0, 4, 7, 10, 13, 16, 19, 22, 24, 26, 28, 31, 34, 37, 40, 43, 46}));
  EXPECT_EQ(deepcache_nonuniform_steps(100, 4, 30, 1.5),
            (std::vector<int>{0, 4, 7, 10, 14, 17, 20, 24, 27, 30, 33, 36, 40, 44, 48, 52, 56, 60, 65, 69, 74, 79, 84, 89, 94}));
  EXPECT_EQ(deepcache_nonuniform_steps(6, 1, 3, 1.4), (std::vector<int>{0, 1, 2, 3, 4, 5}));
  EXPECT_THROW(deepcache_nonuniform_steps(10, 3, 40, 1.4), InputError);
}

TEST(DeepCacheSchedule, NonUniformRunsItsSchedule) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  auto method = make_deepcache({{"cache_interval", 3}, {"skip_mode", "non-uniform"}, {"center", 5}});
  GenerateOptions opt;
  opt.steps = 20;
  opt.hooks = {method.get()};
  auto result = tiny_sd().generate({"a red bus"}, opt);
  EXPECT_EQ(result.batches[0].unet_calls, 21);
  EXPECT_EQ(method->stats()["full_calls"], 7);  // {0, 3, 5, 6, 9, 12, 16}
  EXPECT_EQ(method->params()["skip_mode"], "non-uniform");
  EXPECT_EQ(method->params()["pow"], 1.4);
}

// ---- registry errors name the spec file, line and key ----

namespace {

std::string create_error(const std::string& accel_tables) {
  const auto spec = parse_spec("[pipeline]\nmodel = 'm'\n" + accel_tables, "/s/x.toml");
  try {
    MethodRegistry::with_builtins().create_all(spec.accelerate, spec.file.string());
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(Registry, BuiltinsDescribeThemselves) {
  auto registry = MethodRegistry::with_builtins();
  const MethodInfo* dc = registry.find("deepcache");
  ASSERT_NE(dc, nullptr);
  EXPECT_FALSE(dc->description.empty());
  std::vector<std::string> names;
  for (const auto& p : dc->params) names.push_back(p.name);
  EXPECT_EQ(names, (std::vector<std::string>{"cache_interval", "cache_branch_id", "skip_mode", "center", "pow"}));
  auto m = make_deepcache(nlohmann::json::object());
  EXPECT_EQ(m->name(), "deepcache");
  EXPECT_EQ(m->params(), (nlohmann::json{{"cache_interval", 3}, {"cache_branch_id", 0}, {"skip_mode", "uniform"}}));
}

TEST(Registry, ErrorsNameFileLineAndKey) {
  struct Case {
    std::string tables, where, words;
  };
  const std::vector<Case> cases = {
      {"[[accelerate]]\nmethod = 'deepcache'\ncache_intervall = 3\n", "/s/x.toml:5", "cache_intervall"},
      {"[[accelerate]]\nmethod = 'deepcache'\ncache_interval = 0\n", "/s/x.toml:5", "cache_interval"},
      {"[[accelerate]]\nmethod = 'deepcache'\n\ncache_branch_id = 12\n", "/s/x.toml:6", "cache_branch_id"},
      {"[[accelerate]]\nmethod = 'deepcache'\ncache_interval = 2.5\n", "/s/x.toml:5", "must be an integer"},
      {"[[accelerate]]\nmethod = 'deepcache'\nskip_mode = 'random'\n", "/s/x.toml:5", "uniform, non-uniform"},
      {"[[accelerate]]\nmethod = 'deepcache'\npow = 1\n", "/s/x.toml:5", "pow"},
      {"[[accelerate]]\nmethod = 'warp-drive'\n", "/s/x.toml:4", "warp-drive"},
      {"[[accelerate]]\nmethod = 'deepcache'\n[[accelerate]]\nmethod = 'deepcache'\n", "/s/x.toml:6", "cannot be stacked"},
  };
  for (const auto& c : cases) {
    const std::string err = create_error(c.tables);
    EXPECT_NE(err.find(c.where), std::string::npos) << c.tables << "\n-> " << err;
    EXPECT_NE(err.find(c.words), std::string::npos) << c.tables << "\n-> " << err;
  }
}

TEST(Registry, IncompatibleMethodsCannotBeStacked) {
  MethodRegistry registry = MethodRegistry::with_builtins();
  MethodInfo a;
  a.name = "speedy";
  a.incompatible = {"deepcache"};
  a.create = [](const MethodParams&) -> std::unique_ptr<Method> { return nullptr; };
  registry.add(a);
  const auto spec = parse_spec("[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'deepcache'\n[[accelerate]]\nmethod = 'speedy'\n",
                               "/s/y.toml");
  try {
    registry.create_all(spec.accelerate, spec.file.string());
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("/s/y.toml:6"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("'deepcache' and 'speedy'"), std::string::npos) << e.what();
  }
}

TEST(DeepCacheStack, RestartsWhenTheUnconditionalHalfIsDropped) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  // A method before DeepCache drops guidance's unconditional half from step 4 on: the UNet batch
  // halves, so DeepCache starts its schedule again there (as T-GATE's DeepCache pipeline re-enables
  // the helper) instead of returning tensors of the old batch.
  struct Dropper : PipelineHooks {
    bool drop_unconditional(const StepInfo& s) override { return s.step >= 4; }
  } dropper;
  auto method = make_deepcache({{"cache_interval", 3}});
  GenerateOptions opt;
  opt.steps = 10;
  opt.height = opt.width = 64;
  opt.hooks = {&dropper, method.get()};
  auto result = tiny_sd().generate({"a red bus"}, opt);
  EXPECT_EQ(result.batches[0].unet_calls, 11);
  EXPECT_EQ(result.batches[0].guided_calls, 4);
  // Step counter 0, 1, 1, 3 | 4, 5, ..., 10: full at 0 and 3, then at 4, 7 and 10.
  EXPECT_EQ(method->stats()["full_calls"], 5);
  EXPECT_TRUE(at::isfinite(result.images).all().item<bool>());
}
