// The hook wiring of the UNet, its transformer blocks and the txt2img pipeline, on tiny-sd.
// Tolerances: 0 where a hook must reproduce the unhooked call exactly; 1e-5 where only the order of
// float32 additions differs.
#include <algorithm>
#include <cstdio>
#include <set>

#include "accel/deepcache.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/pipeline/composite_hooks.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

fs::path unet_dir() { return test::fixture("tiny-sd/unet"); }

UNet2DConditionModel& tiny_unet() {
  static UNet2DConditionModel unet = [] {
    const auto config = UNetConfig::from_json(JsonConfig::load(unet_dir() / "config.json"));
    UNet2DConditionModel u = [&] {
      ParameterTarget target(at::TensorOptions(at::kFloat));
      return UNet2DConditionModel(config);
    }();
    load_weights(*u, unet_dir() / "diffusion_pytorch_model.safetensors");
    u->eval();
    return u;
  }();
  return unet;
}

struct Inputs {
  at::Tensor sample, t, context;
};

Inputs inputs() {
  auto gen = at::make_generator<at::CPUGeneratorImpl>(7);
  Inputs in;
  in.sample = at::randn({2, 4, 16, 16}, gen);
  in.t = at::scalar_tensor(500.0);
  in.context = at::randn({2, 77, 32}, gen);
  return in;
}

// Records every hook call; optionally skips named modules with given outputs.
class Recorder : public PipelineHooks {
 public:
  std::vector<std::string> events;  // "before NAME" / "after NAME" / "attn NAME part" / "tokens NAME"
  std::map<std::string, ModuleOutput> outputs;
  std::map<std::string, ModuleOutput> skip;  // name -> output to return
  std::map<std::string, std::pair<int64_t, int64_t>> token_sizes;
  std::map<std::string, at::Tensor> attention_out;
  std::map<std::string, at::Tensor> replace_attention;
  std::vector<ModuleId> ids;

  std::optional<ModuleOutput> before_module(const ModuleId& id) override {
    events.push_back("before " + id.name);
    ids.push_back(id);
    auto it = skip.find(id.name);
    if (it != skip.end()) return it->second;
    return std::nullopt;
  }
  void after_module(const ModuleId& id, const ModuleOutput& out) override {
    events.push_back("after " + id.name);
    outputs[id.name] = out;
  }
  std::shared_ptr<TokenTransform> tokens(const TransformerId& id, const at::Tensor& x, int64_t h, int64_t w) override {
    events.push_back("tokens " + id.name);
    token_sizes[id.name] = {h, w};
    EXPECT_EQ(x.size(1), h * w) << id.name;
    return nullptr;
  }
  std::optional<at::Tensor> before_attention(const TransformerId& id, TransformerPart part, const at::Tensor& x) override {
    const std::string key = id.name + (part == TransformerPart::SelfAttention ? ".attn1" : ".attn2");
    auto it = replace_attention.find(key);
    if (it != replace_attention.end()) return it->second;
    return std::nullopt;
  }
  void after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& out) override {
    const std::string key = id.name + (part == TransformerPart::SelfAttention ? ".attn1" : ".attn2");
    events.push_back("attn " + key);
    attention_out[key] = out;
  }
};

// Reverses the token order around every part: attention is permutation-equivariant and the rest
// works token by token, so the result must not change (up to summation order).
class ReverseTokens : public TokenTransform {
 public:
  int merges = 0, unmerges = 0;
  at::Tensor merge(TransformerPart, const at::Tensor& x) override {
    ++merges;
    return x.flip({1});
  }
  at::Tensor unmerge(TransformerPart, const at::Tensor& x) override {
    ++unmerges;
    return x.flip({1});
  }
};

class Reverser : public PipelineHooks {
 public:
  std::shared_ptr<ReverseTokens> transform = std::make_shared<ReverseTokens>();
  std::shared_ptr<TokenTransform> tokens(const TransformerId&, const at::Tensor&, int64_t, int64_t) override {
    return transform;
  }
};

bool is_hooked_module(const std::string& name) {
  // diffusers paths of blocks, their resnets / attentions / samplers.
  static const std::vector<std::string> lists = {".resnets.", ".attentions.", ".downsamplers.", ".upsamplers."};
  if (name == "mid_block") return true;
  for (const char* top : {"down_blocks.", "up_blocks."})
    if (name.rfind(top, 0) == 0 && name.find('.', std::string(top).size()) == std::string::npos) return true;
  for (const auto& l : lists) {
    const auto p = name.find(l);
    if (p != std::string::npos && name.find('.', p + l.size()) == std::string::npos) return true;
  }
  return false;
}

}  // namespace

class UNetHooksTest : public ::testing::Test {
 protected:
  void SetUp() override { DIFFBENCH_REQUIRE_FIXTURE(unet_dir() / "config.json"); }
};

TEST_F(UNetHooksTest, HooksThatDoNothingChangeNothing) {
  c10::InferenceMode guard;
  auto in = inputs();
  const at::Tensor plain = tiny_unet()->forward(in.sample, in.t, in.context);
  Recorder rec;
  const at::Tensor hooked = tiny_unet()->forward(in.sample, in.t, in.context, &rec);
  EXPECT_TRUE(at::equal(plain, hooked)) << "max diff " << test::max_abs_diff(plain, hooked);
  EXPECT_FALSE(rec.events.empty());
}

TEST_F(UNetHooksTest, ModuleNamesAreTheDiffusersPaths) {
  c10::InferenceMode guard;
  auto in = inputs();
  Recorder rec;
  tiny_unet()->forward(in.sample, in.t, in.context, &rec);
  std::set<std::string> expected;
  for (const auto& item : tiny_unet()->named_modules("", false))
    if (is_hooked_module(item.key())) expected.insert(item.key());
  std::set<std::string> seen;
  for (const auto& id : rec.ids) EXPECT_TRUE(seen.insert(id.name).second) << "hooked twice: " << id.name;
  EXPECT_EQ(seen, expected);

  // Block hooks enclose their layers' hooks, in forward order.
  auto pos = [&](const std::string& e) {
    return std::find(rec.events.begin(), rec.events.end(), e) - rec.events.begin();
  };
  EXPECT_LT(pos("before down_blocks.1"), pos("before down_blocks.1.resnets.0"));
  EXPECT_LT(pos("after down_blocks.1.resnets.0"), pos("before down_blocks.1.attentions.0"));
  EXPECT_LT(pos("after down_blocks.1.attentions.1"), pos("before down_blocks.1.downsamplers.0"));
  EXPECT_LT(pos("after down_blocks.1.downsamplers.0"), pos("after down_blocks.1"));
  EXPECT_LT(pos("after down_blocks.3"), pos("before mid_block"));
  EXPECT_LT(pos("after mid_block"), pos("before up_blocks.0"));
  EXPECT_LT(pos("before up_blocks.3.resnets.2"), pos("after up_blocks.3"));

  // Indices and sizes as diffusers numbers them.
  for (const auto& id : rec.ids) {
    if (id.name == "up_blocks.1.attentions.2") {
      EXPECT_EQ(id.section, UNetSection::Up);
      EXPECT_EQ(id.kind, ModuleKind::Attention);
      EXPECT_EQ(id.block, 1);
      EXPECT_EQ(id.layer, 2);
      EXPECT_EQ(id.num_blocks, 4);
      EXPECT_EQ(id.num_layers, 3);
    }
    if (id.name == "down_blocks.2.downsamplers.0") {
      EXPECT_EQ(id.kind, ModuleKind::Downsampler);
      EXPECT_EQ(id.block, 2);
      EXPECT_EQ(id.num_layers, 2);
    }
    if (id.name == "mid_block.resnets.1") {
      EXPECT_EQ(id.section, UNetSection::Mid);
      EXPECT_EQ(id.layer, 1);
    }
  }
  // Transformer blocks: tokens at the start, both attentions after, with the level's size.
  EXPECT_LT(pos("tokens down_blocks.0.attentions.0.transformer_blocks.0"),
            pos("attn down_blocks.0.attentions.0.transformer_blocks.0.attn1"));
  EXPECT_LT(pos("attn down_blocks.0.attentions.0.transformer_blocks.0.attn1"),
            pos("attn down_blocks.0.attentions.0.transformer_blocks.0.attn2"));
  EXPECT_EQ(rec.token_sizes.at("down_blocks.0.attentions.0.transformer_blocks.0"), std::make_pair(int64_t{16}, int64_t{16}));
  EXPECT_EQ(rec.token_sizes.at("mid_block.attentions.0.transformer_blocks.0"), std::make_pair(int64_t{2}, int64_t{2}));
}

TEST_F(UNetHooksTest, SkippedModulesUseTheReturnedOutput) {
  c10::InferenceMode guard;
  auto in = inputs();
  Recorder first;
  const at::Tensor full = tiny_unet()->forward(in.sample, in.t, in.context, &first);
  // Skip whole blocks and single layers with the outputs they had: the same result, and nothing
  // inside a skipped block is hooked.
  Recorder second;
  for (const char* name : {"down_blocks.2", "mid_block", "up_blocks.1", "up_blocks.3.resnets.0", "down_blocks.0.downsamplers.0"})
    second.skip[name] = first.outputs.at(name);
  const at::Tensor reused = tiny_unet()->forward(in.sample, in.t, in.context, &second);
  EXPECT_TRUE(at::equal(full, reused)) << "max diff " << test::max_abs_diff(full, reused);
  for (const auto& e : second.events) {
    EXPECT_EQ(e.find("down_blocks.2."), std::string::npos) << e;
    EXPECT_EQ(e.find("mid_block."), std::string::npos) << e;
    EXPECT_EQ(e.find("up_blocks.1."), std::string::npos) << e;
    EXPECT_NE(e, "after mid_block");
  }
  // A different output really is used.
  Recorder third;
  third.skip["mid_block"] = ModuleOutput{at::zeros_like(first.outputs.at("mid_block").hidden), {}};
  const at::Tensor changed = tiny_unet()->forward(in.sample, in.t, in.context, &third);
  EXPECT_GT(test::max_abs_diff(full, changed), 1e-4);
}

TEST_F(UNetHooksTest, TokenTransformsWrapEveryPartAndAttentionsCanBeReplaced) {
  c10::InferenceMode guard;
  auto in = inputs();
  const at::Tensor plain = tiny_unet()->forward(in.sample, in.t, in.context);
  Reverser rev;
  const at::Tensor reversed = tiny_unet()->forward(in.sample, in.t, in.context, &rev);
  EXPECT_TENSOR_NEAR(reversed, plain, 1e-5);
  // Every transformer block of the model, 3 parts each.
  int blocks = 0;
  for (const auto& item : tiny_unet()->named_modules("", false)) {
    const auto& k = item.key();
    const auto p = k.find(".transformer_blocks.");
    if (p != std::string::npos && k.find('.', p + 20) == std::string::npos) ++blocks;
  }
  EXPECT_GT(blocks, 0);
  EXPECT_EQ(rev.transform->merges, 3 * blocks);
  EXPECT_EQ(rev.transform->unmerges, 3 * blocks);

  // Replacing attentions by their own outputs changes nothing; by zeros it does.
  Recorder first;
  tiny_unet()->forward(in.sample, in.t, in.context, &first);
  Recorder second;
  second.replace_attention = first.attention_out;
  const at::Tensor same = tiny_unet()->forward(in.sample, in.t, in.context, &second);
  EXPECT_TRUE(at::equal(same, plain));
  for (const auto& e : second.events) EXPECT_NE(e.rfind("attn ", 0), 0u) << "replaced attention ran: " << e;
  Recorder third;
  third.replace_attention["down_blocks.0.attentions.0.transformer_blocks.0.attn2"] =
      at::zeros_like(first.attention_out.at("down_blocks.0.attentions.0.transformer_blocks.0.attn2"));
  EXPECT_GT(test::max_abs_diff(tiny_unet()->forward(in.sample, in.t, in.context, &third), plain), 1e-5);
}

// A method that promises not to hook the transformer blocks (DeepCache) still gets its module hooks,
// but no token or attention hook is asked, and the output is the plain one; a composite hooks the blocks
// when any of its methods does.
TEST_F(UNetHooksTest, TransformerBlocksRunUnhookedWhenNoMethodHooksThem) {
  struct ModulesOnly : Recorder {
    bool hooks_transformer_blocks() const override { return false; }
  };
  c10::InferenceMode guard;
  const auto in = inputs();
  const at::Tensor plain = tiny_unet()->forward(in.sample, in.t, in.context);
  ModulesOnly modules_only;
  Recorder all;
  EXPECT_TRUE(all.hooks_transformer_blocks());
  EXPECT_TRUE(at::equal(tiny_unet()->forward(in.sample, in.t, in.context, &modules_only), plain));
  tiny_unet()->forward(in.sample, in.t, in.context, &all);
  const auto count = [](const Recorder& r, const std::string& prefix) {
    const auto starts = [&](const std::string& e) { return e.rfind(prefix, 0) == 0; };
    return std::count_if(r.events.begin(), r.events.end(), starts);
  };
  EXPECT_GT(count(modules_only, "before "), 0);
  EXPECT_EQ(count(modules_only, "before "), count(all, "before "));
  EXPECT_EQ(count(modules_only, "tokens "), 0);
  EXPECT_EQ(count(modules_only, "attn "), 0);
  EXPECT_GT(count(all, "tokens "), 0);
  EXPECT_GT(count(all, "attn "), 0);

  DeepCacheMethod dc(DeepCacheOptions{});
  EXPECT_FALSE(dc.hooks_transformer_blocks());
  EXPECT_FALSE(CompositeHooks({&dc}).hooks_transformer_blocks());
  EXPECT_FALSE(CompositeHooks({&dc, &modules_only}).hooks_transformer_blocks());
  EXPECT_TRUE(CompositeHooks({&dc, &all}).hooks_transformer_blocks());
}

TEST(CompositeHooksTest, FirstSkipWinsTransformsNestAndCountsAdd) {
  Recorder a, b;
  at::Tensor ta = at::ones({1}), tb = at::zeros({1});
  a.skip["mid_block"] = ModuleOutput{ta, {}};
  b.skip["mid_block"] = ModuleOutput{tb, {}};
  b.skip["up_blocks.0"] = ModuleOutput{tb, {}};
  CompositeHooks c({&a, &b});
  ModuleId mid;
  mid.name = "mid_block";
  ModuleId up;
  up.name = "up_blocks.0";
  ModuleId down;
  down.name = "down_blocks.0";
  EXPECT_TRUE(at::equal(c.before_module(mid)->hidden, ta));
  EXPECT_TRUE(at::equal(c.before_module(up)->hidden, tb));
  EXPECT_FALSE(c.before_module(down).has_value());
  EXPECT_EQ(std::count(b.events.begin(), b.events.end(), "before mid_block"), 0);  // a answered first
  EXPECT_EQ(c.module_calls(), 3);
  EXPECT_EQ(c.module_skips(), 2);

  struct Tag : TokenTransform {
    std::string tag;
    std::vector<std::string>* log;
    at::Tensor merge(TransformerPart, const at::Tensor& x) override {
      log->push_back("m" + tag);
      return x;
    }
    at::Tensor unmerge(TransformerPart, const at::Tensor& x) override {
      log->push_back("u" + tag);
      return x;
    }
  };
  struct Tagged : PipelineHooks {
    std::shared_ptr<Tag> t = std::make_shared<Tag>();
    std::shared_ptr<TokenTransform> tokens(const TransformerId&, const at::Tensor&, int64_t, int64_t) override { return t; }
  };
  std::vector<std::string> log;
  Tagged x, y;
  x.t->tag = "1", x.t->log = &log;
  y.t->tag = "2", y.t->log = &log;
  CompositeHooks both({&x, &y});
  auto t = both.tokens(TransformerId{}, at::zeros({1, 4, 1}), 2, 2);
  t->unmerge(TransformerPart::FeedForward, t->merge(TransformerPart::FeedForward, at::zeros({1})));
  EXPECT_EQ(log, (std::vector<std::string>{"m1", "m2", "u2", "u1"}));
}

// ---- the pipeline's step hooks ----

namespace {

Txt2ImgPipeline& tiny_sd() {
  static std::unique_ptr<Txt2ImgPipeline> pipe = [] {
    ModelOptions mo;
    mo.dir = test::fixture("tiny-sd");
    return Txt2ImgPipeline::load(mo);
  }();
  return *pipe;
}

class StepRecorder : public PipelineHooks {
 public:
  size_t drop_from = SIZE_MAX;
  std::vector<std::string> events;
  std::vector<GenerationInfo> generations;
  std::vector<UNetCallInfo> calls;
  bool skip_mid = false;

  void begin_generation(const GenerationInfo& info) override {
    generations.push_back(info);
    events.push_back("begin");
  }
  void before_step(const StepInfo& s) override { events.push_back("before " + std::to_string(s.step)); }
  void after_step(const StepInfo& s, const at::Tensor&) override { events.push_back("after " + std::to_string(s.step)); }
  bool drop_unconditional(const StepInfo& s) override { return s.step >= drop_from; }
  void end_generation() override { events.push_back("end"); }
  void begin_call(const UNetCallInfo& info) override { calls.push_back(info); }
  std::optional<ModuleOutput> before_module(const ModuleId& id) override {
    if (skip_mid && id.name == "mid_block" && last_mid_.defined()) return ModuleOutput{last_mid_, {}};
    return std::nullopt;
  }
  void after_module(const ModuleId& id, const ModuleOutput& out) override {
    if (id.name == "mid_block") last_mid_ = out.hidden;
  }

 private:
  at::Tensor last_mid_;
};

const std::vector<std::string> kPrompts = {"A man is in a kitchen making pizzas.", "a red bus"};

}  // namespace

class PipelineHooksTest : public ::testing::Test {
 protected:
  void SetUp() override { DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json")); }
};

TEST_F(PipelineHooksTest, StepHooksRunInOrderWithTheTimesteps) {
  GenerateOptions opt;
  opt.steps = 4;
  opt.batch_size = 1;
  StepRecorder rec;
  opt.hooks = {&rec};
  auto result = tiny_sd().generate(kPrompts, opt);
  ASSERT_EQ(rec.generations.size(), 2u);  // one per batch
  EXPECT_EQ(rec.generations[1].batch_index, 1u);
  EXPECT_EQ(rec.generations[0].steps, 4);
  EXPECT_EQ(rec.generations[0].timesteps.size(), 5u);  // PNDM: one UNet call more
  EXPECT_EQ(rec.generations[0].timesteps[1], rec.generations[0].timesteps[2]);
  EXPECT_TRUE(rec.generations[0].guidance);
  EXPECT_EQ(rec.events.front(), "begin");
  EXPECT_EQ(rec.events[1], "before 0");
  EXPECT_EQ(rec.events[2], "after 0");
  EXPECT_EQ(rec.events[11], "end");
  ASSERT_EQ(rec.calls.size(), 10u);
  EXPECT_EQ(rec.calls[3].step, 3u);
  EXPECT_EQ(rec.calls[3].total_steps, 5u);
  EXPECT_EQ(rec.calls[3].batch, 2);  // both guidance halves
  EXPECT_EQ(rec.calls[3].timestep, rec.generations[0].timesteps[3]);
  EXPECT_EQ(result.batches[0].unet_calls, 5);
  EXPECT_EQ(result.batches[0].guided_calls, 5);
  EXPECT_EQ(result.skipped_module_fraction(), 0.0);
}

TEST_F(PipelineHooksTest, DroppingTheUnconditionalHalfFromStepZeroIsGuidanceOne) {
  GenerateOptions opt;
  opt.steps = 6;
  opt.batch_size = 2;
  opt.guidance = 1.0;
  const at::Tensor no_cfg = tiny_sd().generate(kPrompts, opt).images;
  opt.guidance = 7.5;
  StepRecorder rec;
  rec.drop_from = 0;
  opt.hooks = {&rec};
  auto dropped = tiny_sd().generate(kPrompts, opt);
  EXPECT_TRUE(at::equal(dropped.images, no_cfg)) << test::max_abs_diff(dropped.images, no_cfg);
  EXPECT_EQ(dropped.batches[0].guided_calls, 0);
  EXPECT_EQ(rec.calls[0].batch, 2);

  // From step 3 on: 3 guided calls, then conditional-only ones.
  StepRecorder later;
  later.drop_from = 3;
  opt.hooks = {&later};
  auto partly = tiny_sd().generate(kPrompts, opt);
  EXPECT_EQ(partly.batches[0].guided_calls, 3);
  EXPECT_EQ(later.calls[2].batch, 4);
  EXPECT_EQ(later.calls[3].batch, 2);
  opt.hooks = {};
  const at::Tensor full = tiny_sd().generate(kPrompts, opt).images;
  EXPECT_GT(test::max_abs_diff(partly.images, full), 1e-4);
  EXPECT_GT(test::max_abs_diff(partly.images, no_cfg), 1e-4);
}

TEST_F(PipelineHooksTest, SkippedModuleFractionIsCounted) {
  GenerateOptions opt;
  opt.steps = 3;
  opt.batch_size = 2;
  StepRecorder counter;  // asks but never skips
  opt.hooks = {&counter};
  auto plain = tiny_sd().generate(kPrompts, opt);
  const int64_t per_call = plain.batches[0].module_calls / plain.batches[0].unet_calls;
  EXPECT_GT(per_call, 20);
  EXPECT_EQ(plain.batches[0].module_skips, 0);

  StepRecorder skipper;
  skipper.skip_mid = true;  // reuse the mid block's output after the first call
  opt.hooks = {&skipper};
  auto skipped = tiny_sd().generate(kPrompts, opt);
  const auto& b = skipped.batches[0];
  // 4 calls; the last 3 skip the mid block and so never ask about its 3 layers.
  EXPECT_EQ(b.unet_calls, 4);
  EXPECT_EQ(b.module_skips, 3);
  EXPECT_EQ(b.module_calls, 4 * per_call - 3 * 3);
  EXPECT_DOUBLE_EQ(skipped.skipped_module_fraction(), 3.0 / static_cast<double>(4 * per_call - 9));
  EXPECT_GT(test::max_abs_diff(skipped.images, plain.images), 1e-5);
}

// ---- CUDA-graph readiness (UNetHooks::graph_variant), checked on the CPU ----

namespace {

// Passes every hook to a method and records the outputs it hands back for skipped modules.
class Spy : public PipelineHooks {
 public:
  explicit Spy(PipelineHooks& m) : m_(m) {}
  std::map<std::string, ModuleOutput> returned, computed;
  void begin_generation(const GenerationInfo& info) override { m_.begin_generation(info); }
  void begin_call(const UNetCallInfo& info) override {
    returned.clear();
    computed.clear();
    m_.begin_call(info);
  }
  std::optional<ModuleOutput> before_module(const ModuleId& id) override {
    auto out = m_.before_module(id);
    if (out) returned[id.name] = *out;
    return out;
  }
  void after_module(const ModuleId& id, const ModuleOutput& out) override {
    computed[id.name] = ModuleOutput{out.hidden.clone(), {}};
    m_.after_module(id, out);
  }
  std::optional<std::string> graph_variant() override { return m_.graph_variant(); }
  void replayed() override { m_.replayed(); }

 private:
  PipelineHooks& m_;
};

}  // namespace

TEST_F(UNetHooksTest, DeepCacheKeepsWhatPartialCallsReadInBuffersThatStayPut) {
  DeepCacheMethod dc(DeepCacheOptions{});  // interval 3, branch 0
  Spy spy(dc);
  const auto in = inputs();
  GenerationInfo gen;
  for (int i = 0; i < 8; ++i) gen.timesteps.push_back(900.0 - 100.0 * i);
  gen.steps = 8;
  auto call = [&](size_t step, bool run) {
    UNetCallInfo info;
    info.step = step;
    info.total_steps = 8;
    info.timestep = gen.timesteps[step];
    info.batch = 2;
    info.latent_h = info.latent_w = 16;
    spy.begin_call(info);
    const auto variant = spy.graph_variant();
    if (run)
      tiny_unet()->forward(in.sample, in.t, in.context, &spy);
    else
      spy.replayed();  // what the runner does for a graph replay: no module hooks
    return variant;
  };
  torch::NoGradGuard no_grad;
  spy.begin_generation(gen);
  // Until a partial call has shown what it reads, every call runs eagerly.
  EXPECT_FALSE(call(0, true).has_value());
  EXPECT_FALSE(call(1, true).has_value());
  ASSERT_FALSE(spy.returned.empty());
  std::map<std::string, const void*> where;
  for (const auto& [name, out] : spy.returned) where[name] = out.hidden.data_ptr();
  EXPECT_EQ(call(2, true), "deepcache:partial");
  for (const auto& [name, out] : spy.returned) EXPECT_EQ(out.hidden.data_ptr(), where.at(name)) << name;
  EXPECT_EQ(call(3, true), "deepcache:full");
  const auto full = spy.computed;
  // The full call wrote the buffers in place: the next partial call reads its outputs there.
  EXPECT_EQ(call(4, true), "deepcache:partial");
  EXPECT_EQ(spy.returned.size(), where.size());
  for (const auto& [name, out] : spy.returned) {
    EXPECT_EQ(out.hidden.data_ptr(), where.at(name)) << name;
    EXPECT_TRUE(at::equal(out.hidden, full.at(name).hidden)) << name;
  }
  // A new generation whose full call is replayed (no hooks) still finds the buffers.
  spy.begin_generation(gen);
  EXPECT_EQ(call(0, false), "deepcache:full");
  EXPECT_EQ(call(1, true), "deepcache:partial");
  for (const auto& [name, out] : spy.returned) EXPECT_EQ(out.hidden.data_ptr(), where.at(name)) << name;
  // Every partial call counts its skipped modules, replayed or not.
  EXPECT_EQ(dc.stats()["partial_calls"], 4);
  EXPECT_EQ(dc.stats()["skipped_modules"], 4 * static_cast<int64_t>(where.size()));
}

TEST(CompositeHooksTest, GraphVariantsJoinAndReplaysCountWhatTheVariantDid) {
  struct Keyed : Recorder {
    std::optional<std::string> key;
    int replays = 0;
    std::optional<std::string> graph_variant() override { return key; }
    void replayed() override { ++replays; }
  };
  Keyed a, b;
  a.key = "a";
  b.key = "b";
  a.skip["mid_block"] = ModuleOutput{at::ones({1}), {}};
  CompositeHooks c({&a, &b});
  ModuleId mid, up;
  mid.name = "mid_block";
  up.name = "up_blocks.0";
  auto hex = [](const UNetHooks& h) {
    char id[24];
    std::snprintf(id, sizeof id, "%016llx", static_cast<unsigned long long>(h.instance_id()));
    return std::string(id);
  };
  EXPECT_NE(a.instance_id(), b.instance_id());
  const std::string joined = hex(a) + ":a+" + hex(b) + ":b";
  c.begin_call(UNetCallInfo{});
  EXPECT_EQ(c.graph_variant(), joined);
  c.before_module(mid);
  c.before_module(up);
  EXPECT_EQ(c.module_calls(), 2);
  EXPECT_EQ(c.module_skips(), 1);
  c.begin_call(UNetCallInfo{});
  EXPECT_EQ(c.graph_variant(), joined);
  c.replayed();  // a replay of "a+b" asks and skips what its last run did
  EXPECT_EQ(c.module_calls(), 4);
  EXPECT_EQ(c.module_skips(), 2);
  // Counts of a variant outlive the CompositeHooks object when the caller keeps them (the pipeline
  // makes one per generation; replays happen in later ones).
  CompositeHooks::VariantCounts kept;
  {
    CompositeHooks first({&a, &b}, &kept);
    first.begin_call(UNetCallInfo{});
    first.graph_variant();
    first.before_module(mid);
    first.begin_call(UNetCallInfo{});
  }
  CompositeHooks later({&a, &b}, &kept);
  later.begin_call(UNetCallInfo{});
  later.graph_variant();
  later.replayed();
  EXPECT_EQ(later.module_calls(), 1);
  EXPECT_EQ(later.module_skips(), 1);
  EXPECT_EQ(a.replays, 2);
  EXPECT_EQ(b.replays, 2);
  b.key.reset();  // one method without a key: the call runs eagerly
  c.begin_call(UNetCallInfo{});
  EXPECT_FALSE(c.graph_variant().has_value());
}
