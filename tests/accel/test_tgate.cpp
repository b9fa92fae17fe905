// T-GATE: its schedule against tgate's tgate_scheduler, the attention cache through the hooks,
// the registry's parameter checks, and the tgate package's reference images on tiny-sd (alone and
// with DeepCache as TgateSDDeepCacheLoader combines them).
// Tolerances: images 2/255 against the tgate references (../shared/README.md's bound for whole
// float32 runs, which on PNDM do not amplify last-bit differences); 0 where our cache must copy exactly.
#include "diffbench/accel/tgate.hpp"
#include "diffbench/accel/builtins.hpp"

#include <iostream>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

// tgate_scheduler(cur_step, gate_step, sp_interval, fi_interval, warm_up) for cur_step 0..25,
// printed by the tgate package: cross-attention, self-attention ('c' cache, 'r' reuse, '-'
// neither), then keep_shape ('k' true, 'm' false: cache the mean of the halves).
struct PlanCase {
  TgateOptions params;
  const char* expected;
};

const PlanCase kPlanCases[] = {
    {{10, 5, 1, 2},
     "--k --k -ck -rk -rk -ck -rk -rk -rk ccm rck rck rck rck rck rck rck rck rck rck rck rck rck rck rck rck"},
    {{10, 1, 1, 0},
     "-ck -ck -ck -ck -ck -ck -ck -ck -ck ccm rck rck rck rck rck rck rck rck rck rck rck rck rck rck rck rck"},
    {{6, 3, 4, 1},
     "--k -ck -rk -ck -rk ccm rrk rrk rck rrk rrk rrk rck rrk rrk rrk rck rrk rrk rrk rck rrk rrk rrk rck rrk"},
    {{1, 5, 2, 0},
     "ccm rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk rck rrk"},
};

std::string plan_codes(const TgateOptions& p) {
  std::string out;
  auto code = [](bool cache, bool reuse) { return cache ? 'c' : reuse ? 'r' : '-'; };
  for (int64_t step = 0; step < 26; ++step) {
    const TgatePlan plan = tgate_plan(step, p);
    if (step) out += ' ';
    out += code(plan.ca_cache, plan.ca_reuse);
    out += code(plan.sa_cache, plan.sa_reuse);
    out += plan.keep_shape ? 'k' : 'm';
  }
  return out;
}

std::unique_ptr<Method> make_tgate(nlohmann::json params) {
  MethodRegistry registry;
  register_tgate(registry);
  AccelEntry e;
  e.method = "tgate";
  e.params = std::move(params);
  e.line = 3;
  return registry.create(e, "spec.toml");
}

TransformerId block_id(const std::string& name) {
  TransformerId id;
  id.name = name;
  return id;
}

}  // namespace

TEST(Tgate, PlanMatchesTgateScheduler) {
  for (const auto& c : kPlanCases) {
    std::ostringstream what;
    what << "gate_step " << c.params.gate_step << " sp_interval " << c.params.sp_interval << " fi_interval "
         << c.params.fi_interval << " warm_up " << c.params.warm_up;
    EXPECT_EQ(plan_codes(c.params), c.expected) << what.str();
  }
}

TEST(Tgate, WarmupCallsAsDiffusersCountsThem) {
  // PNDM (skip_prk_steps) 5 steps: 6 calls, the second timestep repeated.
  GenerationInfo pndm;
  pndm.timesteps = {801, 601, 601, 401, 201, 1};
  pndm.steps = 5;
  EXPECT_EQ(tgate_warmup_calls(pndm), 1);
  GenerationInfo ddim;
  ddim.timesteps = {801, 601, 401, 201, 1};
  ddim.steps = 5;
  EXPECT_EQ(tgate_warmup_calls(ddim), 0);
}

TEST(Tgate, RegistryDefaultsAndRangeErrorsNameTheKey) {
  auto m = make_tgate(nlohmann::json::object());
  EXPECT_EQ(m->name(), "tgate");
  EXPECT_EQ(m->params(), (nlohmann::json{{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1}, {"warm_up", 2}}));
  for (const auto& [key, bad] : std::vector<std::pair<std::string, nlohmann::json>>{
           {"gate_step", -1}, {"sp_interval", 0}, {"fi_interval", 0}, {"warm_up", -1}, {"gate_step", 2.5}}) {
    try {
      make_tgate({{key, bad}});
      ADD_FAILURE() << key << " = " << bad.dump() << " was accepted";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find("'" + key + "'"), std::string::npos) << e.what();
      EXPECT_NE(e.where().find("spec.toml"), std::string::npos) << e.where();
    }
  }
}

TEST(Tgate, CachesTheMeanOfTheHalvesAtTheGateAndReusesIt) {
  // gate_step 2, PNDM-like timesteps (one warm-up call): calls 0, 1 and 2 guided, the gate at
  // call 2 (cur_step 1), conditional-only from call 3.
  TgateMethod tg(TgateOptions{2, 5, 2, 0});
  GenerationInfo info;
  info.timesteps = {801, 601, 601, 401, 201, 1};
  info.steps = 5;
  info.images = 2;
  info.guidance = true;
  tg.begin_generation(info);
  const auto id = block_id("down_blocks.0.attentions.0.transformer_blocks.0");
  const auto x = torch::randn({4, 16, 8});
  auto step = [&](size_t i) {
    StepInfo s;
    s.step = i;
    s.total_steps = info.timesteps.size();
    tg.before_step(s);
    return s;
  };
  using P = TransformerPart;

  // Caches of other methods restart at the gate and at the first conditional-only call.
  for (size_t i = 0; i < info.timesteps.size(); ++i) {
    StepInfo s;
    s.step = i;
    EXPECT_EQ(tg.restart_caches(s), i == 2 || i == 3) << "call " << i;
  }

  for (size_t i = 0; i < 2; ++i) {  // semantics planning: everything computed
    EXPECT_FALSE(tg.drop_unconditional(step(i)));
    EXPECT_FALSE(tg.before_attention(id, P::SelfAttention, x).has_value());
    EXPECT_FALSE(tg.before_attention(id, P::CrossAttention, x).has_value());
  }
  EXPECT_FALSE(tg.drop_unconditional(step(2)));  // the gate: guided, both cached as means
  const auto self_out = torch::randn({4, 16, 8}), cross_out = torch::randn({4, 16, 8});
  EXPECT_FALSE(tg.before_attention(id, P::SelfAttention, x).has_value());
  tg.after_attention(id, P::SelfAttention, self_out);
  EXPECT_FALSE(tg.before_attention(id, P::CrossAttention, x).has_value());
  tg.after_attention(id, P::CrossAttention, cross_out);
  const auto cross_mean = (cross_out.slice(0, 0, 2) + cross_out.slice(0, 2, 4)) / 2;

  const auto xc = x.slice(0, 0, 2);
  EXPECT_TRUE(tg.drop_unconditional(step(3)));  // cur_step 2: self-attention computed (fi_interval 2)
  EXPECT_FALSE(tg.before_attention(id, P::SelfAttention, xc).has_value());
  auto cross = tg.before_attention(id, P::CrossAttention, xc);
  ASSERT_TRUE(cross.has_value());
  EXPECT_TENSOR_NEAR(*cross, cross_mean, 0.0);
  const auto self_new = torch::randn({2, 16, 8});
  tg.after_attention(id, P::SelfAttention, self_new);  // cached as is after the gate

  EXPECT_TRUE(tg.drop_unconditional(step(4)));  // cur_step 3: both reused
  auto self = tg.before_attention(id, P::SelfAttention, xc);
  ASSERT_TRUE(self.has_value());
  EXPECT_TENSOR_NEAR(*self, self_new, 0.0);

  // A block that never cached computes even when the plan says reuse (tgate's `cache != None`).
  EXPECT_FALSE(tg.before_attention(block_id("mid_block.attentions.0.transformer_blocks.0"), P::CrossAttention, xc));

  // A new generation starts without caches.
  tg.begin_generation(info);
  step(4);
  EXPECT_FALSE(tg.before_attention(id, P::CrossAttention, xc).has_value());
}

// ---- Reference images: the tgate package on tiny-sd (25 PNDM steps = 26 UNet calls) ----------

namespace {

const test::Reference& reference() { return test::reference("tiny-sd-tgate-reference"); }
using test::builtin_method;
using test::tiny_sd;

// The reference protocol with tgate's settings: 25 PNDM steps, 128x128.
GenerateOptions reference_options(std::vector<PipelineHooks*> hooks) {
  GenerateOptions opt = test::reference_protocol(std::move(hooks), 25);
  opt.height = opt.width = 128;
  return opt;
}

class TgateParity : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-tgate-reference.safetensors"));
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  }

  void check_images(const GenerationResult& result, const std::string& run) {
    const auto expected = reference().tensors->get(run + ".image");
    EXPECT_TENSOR_NEAR(result.images, expected, 2.0 / 255);
    std::cout << "[ " << run << " ] max abs diff " << test::max_abs_diff(result.images, expected) << "\n";
  }
};

}  // namespace

TEST_F(TgateParity, Gate10Sp5Fi1Warmup2) {
  // TgateSDLoader(pipe).tgate(prompts, gate_step=10, sp_interval=5, fi_interval=1, warm_up=2)
  auto tgate = builtin_method("tgate", {{"gate_step", 10}, {"sp_interval", 5}, {"fi_interval", 1}, {"warm_up", 2}});
  c10::InferenceMode guard;
  const auto result = tiny_sd().generate(reference().prompts, reference_options({tgate.get()}));
  check_images(result, "pndm25.tgate_g10_sp5_fi1_w2");

  // 26 UNet calls per image; calls 0..10 guided (cur_step = call - 1 < 10), 11..25 conditional only.
  ASSERT_EQ(result.batches.size(), 1u);
  EXPECT_EQ(result.batches[0].unet_calls, 26);
  EXPECT_EQ(result.batches[0].guided_calls, 11);
  EXPECT_DOUBLE_EQ(result.unet_calls_per_image(), 26.0);
  const auto stats = tgate->stats();
  EXPECT_EQ(stats.at("single_branch_steps"), 15);
  // tiny-sd: 3 cross-attention down blocks x 2 + mid 1 + 3 up blocks x 3 = 16 transformer blocks.
  const int64_t blocks = 16;
  EXPECT_EQ(stats.at("cross_attention_computed"), 11 * blocks);
  EXPECT_EQ(stats.at("cross_attention_reused"), 15 * blocks);  // every conditional-only call
  // Self-attention reused on cur_step 3, 4, 6, 7, 8 (calls 4, 5, 7, 8, 9).
  EXPECT_EQ(stats.at("self_attention_reused"), 5 * blocks);
}

TEST_F(TgateParity, StackedWithDeepCacheAsTgateSDDeepCacheLoader) {
  // TgateSDDeepCacheLoader(pipe, cache_interval=3, cache_branch_id=0).tgate(prompts, gate_step=10)
  // with that loader's defaults sp_interval=1, fi_interval=1, warm_up=0; in either stacking order.
  for (const bool tgate_first : {true, false}) {
    SCOPED_TRACE(tgate_first ? "tgate, deepcache" : "deepcache, tgate");
    auto tgate = builtin_method("tgate", {{"gate_step", 10}, {"sp_interval", 1}, {"fi_interval", 1}, {"warm_up", 0}});
    auto deepcache = builtin_method("deepcache", {{"cache_interval", 3}, {"cache_branch_id", 0}});
    std::vector<PipelineHooks*> stack{tgate.get(), deepcache.get()};
    if (!tgate_first) std::swap(stack[0], stack[1]);
    c10::InferenceMode guard;
    const auto result = tiny_sd().generate(reference().prompts, reference_options(stack));
    check_images(result, "pndm25.tgate_deepcache_g10_i3_b0");
    ASSERT_EQ(result.batches.size(), 1u);
    EXPECT_EQ(result.batches[0].unet_calls, 26);
    EXPECT_EQ(result.batches[0].guided_calls, 11);
    // As the reference ran (its mid block counted): full calls 0, 3, 6, 9, then 10 and 11 (the
    // restarts at the gate and at the first conditional-only call), 14, 17, 20, 23.
    EXPECT_EQ(deepcache->stats().at("full_calls"), 10);
  }
}
