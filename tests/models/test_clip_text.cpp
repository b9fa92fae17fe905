// CLIPTextModel (SD's text encoder) against transformers' outputs on tiny-sd.
// Tolerances: 1e-4 against the transformers references, the precision ../shared/README.md gives for a
// float32 module call on any CPU; 1e-6 where both sides are our own code on the same input.
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/clip_text.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

std::filesystem::path text_encoder_dir() { return test::fixture("tiny-sd/text_encoder"); }

ClipTextModel load_text_encoder() {
  const auto dir = text_encoder_dir();
  const auto config = ClipTextConfig::from_json(JsonConfig::load(dir / "config.json"));
  ClipTextModel model = [&] {
    ParameterTarget target(at::TensorOptions(at::kFloat));
    return ClipTextModel(config);
  }();
  load_weights(*model, dir / "model.safetensors");
  model->eval();
  return model;
}

// The empty prompt as CLIPTokenizer pads it: BOS, EOS, then the pad token (<|endoftext|>) to 77.
at::Tensor empty_prompt_ids(int64_t batch) {
  auto ids = at::full({batch, 77}, 49407, at::kLong);
  ids.select(1, 0).fill_(49406);
  return ids;
}

}  // namespace

TEST(ClipText, ConfigReadsTinySd) {
  const auto dir = text_encoder_dir();
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  auto c = ClipTextConfig::from_json(JsonConfig::load(dir / "config.json"));
  EXPECT_EQ(c.hidden_size, 32);
  EXPECT_EQ(c.intermediate_size, 37);
  EXPECT_EQ(c.num_hidden_layers, 2);
  EXPECT_EQ(c.num_attention_heads, 4);
  EXPECT_EQ(c.eos_token_id, 49407);
  EXPECT_EQ(c.hidden_act, "quick_gelu");
}

TEST(ClipText, ConfigDefaultsAreTransformers) {
  auto c = ClipTextConfig::from_json(JsonConfig(nlohmann::json::object(), "defaults"));
  EXPECT_EQ(c.hidden_size, 512);
  EXPECT_EQ(c.intermediate_size, 2048);
  EXPECT_EQ(c.num_hidden_layers, 12);
  EXPECT_EQ(c.num_attention_heads, 8);
  EXPECT_EQ(c.max_position_embeddings, 77);
  EXPECT_EQ(c.eos_token_id, 49407);
  EXPECT_THROW(ClipTextConfig::from_json(JsonConfig(nlohmann::json{{"hidden_act", "swish42"}}, "bad")), InputError);
}

TEST(ClipText, ParameterNamesEqualCheckpointKeys) {
  const auto file = text_encoder_dir() / "model.safetensors";
  DIFFBENCH_REQUIRE_FIXTURE(file);
  ClipTextModel model(ClipTextConfig::from_json(JsonConfig::load(text_encoder_dir() / "config.json")));
  const auto st = SafetensorsFile::open(file);
  std::vector<std::string> keys;
  for (const auto& t : st->tensors()) keys.push_back(t.name);
  std::sort(keys.begin(), keys.end());
  EXPECT_EQ(state_names(*model), keys);
}

TEST(ClipText, PromptAndNegativeEmbedsMatchTransformers) {
  const auto ref_file = test::fixture("tiny-sd-reference.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(ref_file);
  DIFFBENCH_REQUIRE_FIXTURE(text_encoder_dir());
  auto ref = SafetensorsFile::open(ref_file);
  auto model = load_text_encoder();
  c10::InferenceMode guard;

  const auto ids = ref->get("prompt.input_ids").to(at::kLong);  // [4, 77]
  const auto out = model->forward(ids);
  EXPECT_TENSOR_NEAR(out.last_hidden_state, ref->get("prompt.embeds"), 1e-4);
  std::cout << "prompt.embeds max abs diff " << test::max_abs_diff(out.last_hidden_state, ref->get("prompt.embeds"))
            << "\n";

  const auto neg = ref->get("negative.embeds");
  const auto neg_out = model->forward(empty_prompt_ids(neg.size(0)));
  EXPECT_TENSOR_NEAR(neg_out.last_hidden_state, neg, 1e-4);
  std::cout << "negative.embeds max abs diff " << test::max_abs_diff(neg_out.last_hidden_state, neg) << "\n";

  // pooled is the hidden state at the first EOS (49407; the pad token equals it).
  ASSERT_EQ(out.pooled.sizes(), at::IntArrayRef({4, 32}));
  auto first_eos = ids.eq(49407).to(at::kInt).argmax(-1);
  for (int64_t b = 0; b < ids.size(0); ++b)
    EXPECT_TRUE(at::equal(out.pooled[b], out.last_hidden_state[b][first_eos[b].item<int64_t>()])) << b;
  EXPECT_TRUE(at::equal(neg_out.pooled, neg_out.last_hidden_state.select(1, 1)));
}

TEST(ClipText, LoadsTextModelPrefixedCheckpoints) {
  // SD1.5-era checkpoints: every key under `text_model.` plus the position_ids buffer.
  const auto file = text_encoder_dir() / "model.safetensors";
  DIFFBENCH_REQUIRE_FIXTURE(file);
  StateDict prefixed;
  for (const auto& [k, v] : load_safetensors(file)) prefixed["text_model." + k] = v;
  prefixed["text_model.embeddings.position_ids"] = at::arange(77, at::kLong).unsqueeze(0);

  auto reference = load_text_encoder();
  ClipTextModel model(reference->config());
  EXPECT_THROW(load_into(*model, prefixed, "prefixed"), ModelError);
  load_into(*model, prefixed, "prefixed", clip_text_load_options());
  c10::InferenceMode guard;
  auto ids = empty_prompt_ids(1);
  EXPECT_TRUE(at::equal(model->forward(ids).last_hidden_state, reference->forward(ids).last_hidden_state));
}

TEST(ClipText, AttentionMaskOnlyAffectsPaddedPositions) {
  // Pad keys sit after the EOS, so the causal mask already hides them from every position up to
  // the EOS: masking them must not change those positions or the pooled output.
  DIFFBENCH_REQUIRE_FIXTURE(text_encoder_dir());
  auto model = load_text_encoder();
  c10::InferenceMode guard;
  auto ids = empty_prompt_ids(1);
  auto mask = at::zeros({1, 77}, at::kLong);
  mask.slice(1, 0, 2).fill_(1);
  auto plain = model->forward(ids);
  auto masked = model->forward(ids, mask);
  EXPECT_TENSOR_NEAR(masked.last_hidden_state.slice(1, 0, 2), plain.last_hidden_state.slice(1, 0, 2), 1e-6);
  EXPECT_TENSOR_NEAR(masked.pooled, plain.pooled, 1e-6);
  EXPECT_GT(test::max_abs_diff(masked.last_hidden_state, plain.last_hidden_state), 1e-6);
}

TEST(ClipText, ClipSkipIsTheShallowerStackThroughFinalNorm) {
  // diffusers' clip_skip=1: final_layer_norm(hidden_states[-2]), i.e. what a model with one layer
  // fewer (same weights) returns; pooled still comes from the full stack.
  const auto file = text_encoder_dir() / "model.safetensors";
  DIFFBENCH_REQUIRE_FIXTURE(file);
  auto model = load_text_encoder();
  auto shallow_config = model->config();
  shallow_config.num_hidden_layers -= 1;
  ClipTextModel shallow(shallow_config);
  LoadOptions options;
  options.ignore_unexpected = {"encoder.layers." + std::to_string(shallow_config.num_hidden_layers) + "."};
  load_into(*shallow, load_safetensors(file), file.string(), options);

  c10::InferenceMode guard;
  auto ids = empty_prompt_ids(2);
  auto full = model->forward(ids);
  auto skip = model->forward(ids, {}, 1);
  EXPECT_TENSOR_NEAR(skip.last_hidden_state, shallow->forward(ids).last_hidden_state, 1e-6);
  EXPECT_TRUE(at::equal(skip.pooled, full.pooled));
  EXPECT_THROW(model->forward(ids, {}, 2), UsageError);
}
