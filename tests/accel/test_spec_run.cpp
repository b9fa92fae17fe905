// The run layer generate, bench and eval share: a spec's methods made through the registry, the
// options, and a spec run end to end against DeepCacheSDHelper's reference images.
#include "diffbench/accel/spec_run.hpp"
#include "diffbench/error.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

PipelineSpec spec_of(const std::string& text, const std::string& file = "/s/run.toml") {
  return parse_spec(text, file);
}

std::string error_of(const PipelineSpec& spec, const std::string& source = {}) {
  try {
    prepare_run(spec, {}, {}, source);
  } catch (const InputError& e) {
    return e.what();
  }
  return "no error";
}

}  // namespace

TEST(SpecRun, MethodsAreCreatedInOrderAndAttached) {
  const auto spec = spec_of(
      "[pipeline]\nmodel = 'm'\nsteps = 9\n"
      "[[accelerate]]\nmethod = 'deepcache'\ncache_interval = 4\n"
      "[[accelerate]]\nmethod = 'tome'\nratio = 0.25\n");
  RunProtocol protocol;
  protocol.seed = 5;
  protocol.batch_size = 2;
  const SpecRun run = prepare_run(spec, protocol, {false, false, false});
  ASSERT_EQ(run.methods.size(), 2u);
  EXPECT_EQ(run.generate.hooks, (std::vector<PipelineHooks*>{&run.methods[0], &run.methods[1]}));
  EXPECT_EQ(run.generate.hook_names, (std::vector<std::string>{"deepcache", "tome"}));
  EXPECT_EQ(run.generate.steps, 9);
  EXPECT_EQ(run.generate.seed, 5u);
  EXPECT_EQ(run.generate.batch_size, 2);
  EXPECT_EQ(run.model.dir, std::filesystem::path("/s/m"));
  EXPECT_FALSE(run.model.cuda_graphs);
  EXPECT_EQ(run.spec.name, "run");

  const nlohmann::json j = run.methods.to_json();
  ASSERT_EQ(j.size(), 2u);
  EXPECT_EQ(j[0]["method"], "deepcache");
  EXPECT_EQ(j[0]["params"]["cache_interval"], 4);
  EXPECT_EQ(j[0]["params"]["cache_branch_id"], 0);  // defaults filled in: the parameters as they ran
  EXPECT_EQ(j[0]["stats"]["unet_calls"], 0);
  EXPECT_FALSE(j[0].contains("plugin"));
  EXPECT_EQ(j[1]["method"], "tome");
  EXPECT_EQ(j[1]["params"]["ratio"], 0.25);

  const SpecRun plain = prepare_run(spec.baseline(), protocol);
  EXPECT_TRUE(plain.methods.empty());
  EXPECT_TRUE(plain.generate.hooks.empty());
  EXPECT_EQ(plain.methods.to_json(), nlohmann::json::array());
}

TEST(SpecRun, BadMethodsFailNamingWhereTheyCameFrom) {
  const auto spec = spec_of("[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'deepcache'\ncache_interval = 0\n");
  const std::string from_file = error_of(spec);
  EXPECT_NE(from_file.find("/s/run.toml:5"), std::string::npos) << from_file;
  EXPECT_NE(from_file.find("cache_interval"), std::string::npos) << from_file;
  const std::string from_option = error_of(spec, "--accel");
  EXPECT_NE(from_option.find("--accel"), std::string::npos) << from_option;
  EXPECT_EQ(error_of(spec_of("[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'deepcache'\n")), "no error");
}

TEST(SpecRun, PluginMethodsRecordTheirLibrary) {
  const std::string plugin = DIFFBENCH_SKIP_DEEPEST_PLUGIN;
  const auto spec = spec_of("[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'skip_deepest'\nplugin = '" + plugin + "'\n");
  const SpecRun run = prepare_run(spec, {});
  const nlohmann::json j = run.methods.to_json();
  ASSERT_EQ(j.size(), 1u);
  EXPECT_EQ(j[0]["method"], "skip_deepest");
  EXPECT_EQ(j[0]["plugin"], plugin);
}

// A spec run through the run layer gives DeepCacheSDHelper's images (interval 5, branch 1) under
// the reference protocol, and its counters follow the run and reset.
TEST(SpecRun, RunsTheSpecAsTheReferenceDid) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-reference.safetensors"));
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  const auto spec = spec_of("[pipeline]\nmodel = '" + test::fixture("tiny-sd").string() +
                            "'\nsteps = 50\nguidance = 7.5\n"
                            "[[accelerate]]\nmethod = 'deepcache'\ncache_interval = 5\ncache_branch_id = 1\n");
  RunProtocol protocol;  // the reference runs' protocol (tests/tiny_sd_support.hpp)
  protocol.seed = 42;
  protocol.batch_size = 4;
  protocol.noise = NoiseMode::Diffusers;
  SpecRun run = prepare_run(spec, protocol);
  auto pipe = Txt2ImgPipeline::load(run.model);
  const auto result = pipe->generate(test::reference().prompts, run.generate);
  const at::Tensor ref = test::reference().tensors->get("pndm50.deepcache_i5_b1.image");
  std::cout << "[ spec run deepcache_i5_b1 ] image max diff " << test::max_abs_diff(result.images, ref) << "\n";
  EXPECT_TENSOR_NEAR(result.images, ref, 2.0 / 255);  // as DeepCacheParity.Interval5Branch1
  EXPECT_EQ(run.methods.to_json()[0]["stats"]["unet_calls"], 51);  // PNDM: 50 steps, 51 UNet calls
  run.methods.reset_stats();
  EXPECT_EQ(run.methods.to_json()[0]["stats"]["unet_calls"], 0);
}
