// transformers CLIPModel and open_clip CLIP through load_clip_embedder, against the libraries' own
// features and scores on the tiny fixtures.
// Tolerances: features 1e-4 and scores 0.01 against the transformers/open_clip references, the
// precision ../shared/README.md gives for float32 on any CPU; 1e-5 where both sides are our own code.
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/clip_model.hpp"
#include "diffbench/models/clip_embedder.hpp"
#include "diffbench/models/open_clip.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> checkpoint_keys(const fs::path& file) {
  const auto st = SafetensorsFile::open(file);
  std::vector<std::string> keys;
  for (const auto& t : st->tensors()) keys.push_back(t.name);
  std::sort(keys.begin(), keys.end());
  return keys;
}

at::Tensor normalized(const at::Tensor& x) { return x / x.norm(2, -1, true); }

// Per-sample CLIP score: 100 * cos(image, text).
at::Tensor scores(const at::Tensor& image, const at::Tensor& text) {
  return 100.0 * (normalized(image) * normalized(text)).sum(-1);
}

}  // namespace

TEST(ClipModel, ParameterNamesEqualCheckpointKeys) {
  const auto dir = test::fixture("tiny-clip");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  ClipModel model(ClipConfig::from_json(JsonConfig::load(dir / "config.json")));
  EXPECT_EQ(state_names(*model), checkpoint_keys(dir / "model.safetensors"));
}

TEST(ClipModel, FeaturesAndScoresMatchTransformers) {
  const auto dir = test::fixture("tiny-clip");
  const auto ref_file = test::fixture("tiny-clip-reference.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  DIFFBENCH_REQUIRE_FIXTURE(ref_file);
  auto ref = SafetensorsFile::open(ref_file);
  auto scorer = load_clip_embedder(dir);
  EXPECT_EQ(scorer->layout(), "transformers");
  EXPECT_EQ(scorer->context_length(), 77);
  c10::InferenceMode guard;

  auto image = scorer->image_features(ref->get("pixel_values"));
  auto text = scorer->text_features(ref->get("text_input_ids"), ref->get("text_attention_mask"));
  EXPECT_TENSOR_NEAR(image, ref->get("image_features"), 1e-4);
  EXPECT_TENSOR_NEAR(text, ref->get("text_features"), 1e-4);
  auto s = scores(image, text);
  EXPECT_TENSOR_NEAR(s, ref->get("scores"), 0.01);
  std::cout << "tiny-clip max abs diff: image_features " << test::max_abs_diff(image, ref->get("image_features"))
            << ", text_features " << test::max_abs_diff(text, ref->get("text_features")) << ", scores "
            << test::max_abs_diff(s, ref->get("scores")) << "\n";

  // The attention mask cannot change the pooled (first-EOS) features.
  EXPECT_TENSOR_NEAR(scorer->text_features(ref->get("text_input_ids")), text, 1e-5);
}

TEST(ClipModel, ImageSpecFromProcessorConfig) {
  const auto dir = test::fixture("tiny-clip");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  auto spec = load_clip_embedder(dir)->image_spec();
  EXPECT_EQ(spec.size, 224);
  EXPECT_DOUBLE_EQ(spec.mean[0], 0.48145466);
  EXPECT_DOUBLE_EQ(spec.mean[2], 0.40821073);
  EXPECT_DOUBLE_EQ(spec.std[1], 0.26130258);
}

TEST(OpenClip, ConfigFollowsViTg14Layout) {
  const auto file = test::fixture("tiny-openclip/open_clip_config.json");
  DIFFBENCH_REQUIRE_FIXTURE(file);
  auto c = OpenClipConfig::from_json(JsonConfig::load(file));
  EXPECT_EQ(c.embed_dim, 48);
  EXPECT_FALSE(c.quick_gelu);
  EXPECT_EQ(c.vision_cfg.heads(), 4);
  EXPECT_EQ(c.vision_cfg.mlp_width(), 279);  // int(64 * 4.3637)
  EXPECT_EQ(c.text_cfg.mlp_width(), 128);
  EXPECT_THROW(OpenClipConfig::from_json(JsonConfig(nlohmann::json{{"custom_text", true}}, "custom")), InputError);
  EXPECT_THROW(
      OpenClipConfig::from_json(JsonConfig(nlohmann::json{{"vision_cfg", {{"layers", {3, 4, 6, 3}}}}}, "resnet")),
      InputError);
}

TEST(OpenClip, ParameterNamesEqualCheckpointKeys) {
  const auto dir = test::fixture("tiny-openclip");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  OpenClipModel model(OpenClipConfig::from_json(JsonConfig::load(dir / "open_clip_config.json")));
  EXPECT_EQ(state_names(*model), checkpoint_keys(dir / "open_clip_model.safetensors"));
}

TEST(OpenClip, LayerScaleAddsGammaParameters) {
  OpenClipConfig c;
  c.embed_dim = 8;
  c.vision_cfg = {32, 16, 16, 1, 8, 2.0, 0.1};
  c.text_cfg.width = 16;
  c.text_cfg.heads = 2;
  c.text_cfg.layers = 1;
  c.text_cfg.vocab_size = 10;
  c.text_cfg.ls_init_value = 0.1;
  auto names = state_names(*OpenClipModel(c));
  for (const char* key : {"visual.transformer.resblocks.0.ls_1.gamma", "visual.transformer.resblocks.0.ls_2.gamma",
                          "transformer.resblocks.0.ls_1.gamma", "transformer.resblocks.0.ls_2.gamma"})
    EXPECT_TRUE(std::count(names.begin(), names.end(), key)) << key;
}

TEST(OpenClip, FeaturesAndScoresMatchOpenClip) {
  const auto dir = test::fixture("tiny-openclip");
  const auto ref_file = test::fixture("tiny-openclip-reference.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  DIFFBENCH_REQUIRE_FIXTURE(ref_file);
  auto ref = SafetensorsFile::open(ref_file);
  auto scorer = load_clip_embedder(dir);
  EXPECT_EQ(scorer->layout(), "open_clip");
  EXPECT_EQ(scorer->context_length(), 77);
  c10::InferenceMode guard;

  auto image = scorer->image_features(ref->get("pixel_values"));
  auto text = scorer->text_features(ref->get("input_ids"));
  EXPECT_TENSOR_NEAR(normalized(image), ref->get("image_features_normalized"), 1e-4);
  EXPECT_TENSOR_NEAR(normalized(text), ref->get("text_features_normalized"), 1e-4);
  auto s = scores(image, text);
  EXPECT_TENSOR_NEAR(s, ref->get("scores"), 0.01);
  std::cout << "tiny-openclip max abs diff: image_features_normalized "
            << test::max_abs_diff(normalized(image), ref->get("image_features_normalized"))
            << ", text_features_normalized "
            << test::max_abs_diff(normalized(text), ref->get("text_features_normalized")) << ", scores "
            << test::max_abs_diff(s, ref->get("scores")) << "\n";

  auto spec = scorer->image_spec();
  EXPECT_EQ(spec.size, 224);
  EXPECT_DOUBLE_EQ(spec.std[2], 0.27577711);
}

TEST(ClipScorer, PickleOnlyFoldersAreRefusedWithAHint) {
  auto dir = test::temp_dir("clip-pickle");
  for (const char* name : {"pytorch_model.bin", "open_clip_pytorch_model.bin"}) {
    fs::remove_all(dir);
    fs::create_directories(dir);
    std::ofstream(dir / "config.json") << "{}";
    std::ofstream(dir / name) << "not really a pickle";
    try {
      load_clip_embedder(dir);
      ADD_FAILURE() << name << ": no error";
    } catch (const InputError& e) {
      const std::string what = e.what();
      EXPECT_NE(what.find(name), std::string::npos) << what;
      EXPECT_NE(what.find("safetensors"), std::string::npos) << what;
      EXPECT_NE(what.find(dir.string()), std::string::npos) << what;
    }
  }
  fs::remove_all(dir);
  fs::create_directories(dir);
  EXPECT_THROW(load_clip_embedder(dir), InputError);
  EXPECT_THROW(load_clip_embedder(dir / "missing"), InputError);
  fs::remove_all(dir);
}

TEST(ClipScorer, AcceptsOlderTransformersCheckpointsWithPositionIds) {
  // transformers < 4.31 also saved the position_ids buffers of both towers.
  const auto dir = test::fixture("tiny-clip");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  auto copy = test::temp_dir("clip-position-ids");
  fs::copy_file(dir / "config.json", copy / "config.json");
  auto weights = load_safetensors(dir / "model.safetensors");
  weights["text_model.embeddings.position_ids"] = at::arange(77, at::kLong).unsqueeze(0);
  weights["vision_model.embeddings.position_ids"] = at::arange(50, at::kLong).unsqueeze(0);
  save_safetensors(copy / "model.safetensors", weights);
  auto scorer = load_clip_embedder(copy);
  auto spec = scorer->image_spec();  // no processor config: OpenAI defaults and the tower's size
  EXPECT_EQ(spec.size, 224);
  EXPECT_EQ(spec.mean, kOpenAiClipMean);
  c10::InferenceMode guard;
  auto reference = load_clip_embedder(dir);
  auto ids = at::full({1, 77}, 49407, at::kLong);
  ids.select(1, 0).fill_(49406);
  EXPECT_TRUE(at::equal(scorer->text_features(ids), reference->text_features(ids)));
  fs::remove_all(copy);
}
