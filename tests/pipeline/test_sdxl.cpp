// Parity of the SDXL pipeline (StableDiffusionXLPipeline) with diffusers on the project's tiny
// random-weight SDXL folder (tests/pipeline/data/tiny-sdxl, made with diffusers by
// tools/refs/make_sdxl_refs.py, with its references in sdxl_refs.*): float32 on the CPU.
#include "diffbench/error.hpp"
#include "diffbench/eval/evaluator.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "pipeline/sdxl_text.hpp"
#include "tiny_sd_support.hpp"

using namespace diffbench;

namespace {

namespace fs = std::filesystem;

constexpr double kTensorTolerance = 1e-4;  // text encoders and one UNet call (../shared/README.md)
constexpr double kForcedStepTolerance = 1e-4;
constexpr double kFinalLatentsTolerance = 1e-3;
constexpr double kImageTolerance = 2.0 / 255;

fs::path data_dir() { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data"; }
fs::path model_dir() { return data_dir() / "tiny-sdxl"; }
const test::Reference& sdxl_reference() { return test::reference_file(data_dir(), "sdxl_refs"); }
at::Tensor expected(const std::string& key) { return sdxl_reference().tensors->get(key); }

Txt2ImgPipeline& tiny_sdxl() {
  static std::unique_ptr<Txt2ImgPipeline> pipe = [] {
    ModelOptions mo;
    mo.dir = model_dir();
    return Txt2ImgPipeline::load(mo);
  }();
  return *pipe;
}

std::vector<std::string> checkpoint_names(const fs::path& file) {
  std::vector<std::string> names;
  const auto checkpoint = SafetensorsFile::open(file);
  for (const auto& t : checkpoint->tensors()) names.push_back(t.name);
  std::sort(names.begin(), names.end());
  return names;
}

GenerateOptions sdxl_protocol() { return test::sdxl_reference_protocol(); }

// Teacher-forced steps (see test::teacher_forced_step_errors), then a free run's final latents and
// images.
void check_run(const std::string& run, const GenerateOptions& opt) {
  const at::Tensor per_step = expected(run + ".latents_per_step");
  std::vector<double> diffs;
  tiny_sdxl().generate(sdxl_reference().prompts, opt, [&](size_t, size_t step, size_t, const at::Tensor& latents) {
    diffs.push_back(static_cast<int64_t>(step) < per_step.size(0) ? test::max_abs_diff(latents, per_step[step])
                                                                  : std::numeric_limits<double>::infinity());
    if (static_cast<int64_t>(step) < per_step.size(0)) latents.copy_(per_step[step]);
  });
  ASSERT_EQ(static_cast<int64_t>(diffs.size()), per_step.size(0)) << run << ": scheduler steps";
  const auto worst = std::max_element(diffs.begin(), diffs.end());
  std::cout << "[ forced   ] " << run << ": worst step " << (worst - diffs.begin()) << " max abs diff " << *worst
            << "\n";
  EXPECT_LE(*worst, kForcedStepTolerance) << run << ": step " << (worst - diffs.begin());

  at::Tensor last;
  const auto result = tiny_sdxl().generate(sdxl_reference().prompts, opt,
                                           [&](size_t, size_t, size_t, const at::Tensor& l) { last = l.clone(); });
  ASSERT_TRUE(last.defined());
  const at::Tensor final_ref = per_step[per_step.size(0) - 1];
  std::cout << "[ free-run ] " << run << ": final latents max abs diff " << test::max_abs_diff(last, final_ref)
            << ", image " << test::max_abs_diff(result.images, expected(run + ".image")) << "\n";
  EXPECT_TENSOR_NEAR(last, final_ref, kFinalLatentsTolerance);
  EXPECT_TENSOR_NEAR(result.images, expected(run + ".image"), kImageTolerance);
}

}  // namespace

// Module member names mirror the diffusers / transformers checkpoint keys, add_embedding included.
TEST(Sdxl, ParameterNamesEqualCheckpointKeys) {
  const UNetConfig config = UNetConfig::from_json(JsonConfig::load(model_dir() / "unet/config.json"));
  EXPECT_EQ(config.addition_embed_type, "text_time");
  UNet2DConditionModel unet(config);
  EXPECT_EQ(state_names(*unet), checkpoint_names(model_dir() / "unet/diffusion_pytorch_model.safetensors"));

  ClipTextModelWithProjection text_2(ClipTextConfig::from_json(JsonConfig::load(model_dir() / "text_encoder_2/config.json")));
  std::vector<std::string> keys = checkpoint_names(model_dir() / "text_encoder_2/model.safetensors");
  keys.erase(std::remove(keys.begin(), keys.end(), "text_model.embeddings.position_ids"), keys.end());
  EXPECT_EQ(state_names(*text_2), keys);
}

// encode_prompt: both encoders' penultimate hidden states concatenated, text_encoder_2's projected
// pooled output; the negative prompt zeroed (force_zeros_for_empty_prompt) or encoded.
TEST(Sdxl, TextConditioningMatchesDiffusers) {
  c10::InferenceMode guard;
  ModelOptions mo;
  mo.dir = model_dir();
  const auto source = ModelSource::open(mo.dir);
  auto text = SdxlText::load(source, mo);
  EXPECT_TRUE(text->force_zeros_for_empty_prompt);
  ClipTokenizer tokenizer = ClipTokenizer::from_dir(model_dir() / "tokenizer");
  EXPECT_TRUE(at::equal(tokenizer.encode_batch(sdxl_reference().prompts), expected("prompt.input_ids")));
  EXPECT_TRUE(at::equal(text->tokenizer_2.encode_batch(sdxl_reference().prompts), expected("prompt.input_ids_2")));

  ClipTextModel encoder(ClipTextConfig::from_json(JsonConfig::load(model_dir() / "text_encoder/config.json")));
  load_weights(*encoder, model_dir() / "text_encoder/model.safetensors", clip_text_load_options());
  const TextConditioning cond = text->encode(tokenizer, encoder, "text_encoder", sdxl_reference().prompts, at::kCPU);
  EXPECT_TENSOR_NEAR(cond.embeds, expected("prompt.embeds"), kTensorTolerance);
  EXPECT_TENSOR_NEAR(cond.pooled, expected("prompt.pooled"), kTensorTolerance);
  EXPECT_TENSOR_NEAR(tiny_sdxl().encode_prompts(sdxl_reference().prompts), expected("prompt.embeds"), kTensorTolerance);

  const TextConditioning zeros = text->negative(tokenizer, encoder, "text_encoder", cond, at::kCPU);
  EXPECT_TRUE(at::equal(zeros.embeds, expected("negative.embeds")));
  EXPECT_TRUE(at::equal(zeros.pooled, expected("negative.pooled")));
  const std::vector<std::string> negative_prompts =
      read_json_file(data_dir() / "sdxl_refs.json").at("negative_prompts").get<std::vector<std::string>>();
  const TextConditioning encoded = text->encode(tokenizer, encoder, "text_encoder", negative_prompts, at::kCPU);
  EXPECT_TENSOR_NEAR(encoded.embeds, expected("negative_text.embeds"), kTensorTolerance);
  EXPECT_TENSOR_NEAR(encoded.pooled, expected("negative_text.pooled"), kTensorTolerance);

  EXPECT_TRUE(at::equal(sdxl_time_ids(64, 64, 1, at::kFloat), expected("add_time_ids")));
}

// One UNet call with the added text_time conditioning (pooled embedding + 6 time ids).
TEST(Sdxl, UNetCallWithAddedConditioning) {
  c10::InferenceMode guard;
  UNet2DConditionModel unet(UNetConfig::from_json(JsonConfig::load(model_dir() / "unet/config.json")));
  load_weights(*unet, model_dir() / "unet/diffusion_pytorch_model.safetensors");
  const UNetAddedCond added{expected("prompt.pooled"), expected("add_time_ids").repeat({2, 1})};
  const at::Tensor out = unet->forward(expected("unet.call.t500.sample"), at::scalar_tensor(500.0), expected("prompt.embeds"),
                                       nullptr, added);
  EXPECT_TENSOR_NEAR(out, expected("unet.call.t500.out"), kTensorTolerance);
  // Without the added conditioning the UNet refuses to run rather than silently ignoring it.
  EXPECT_THROW(unet->forward(expected("unet.call.t500.sample"), at::scalar_tensor(500.0), expected("prompt.embeds")),
               UsageError);
}

TEST(Sdxl, PipelineDefaultsComeFromTheFolder) {
  EXPECT_EQ(tiny_sdxl().default_height(), 64);  // unet sample_size 8 x VAE scale 8 (SDXL: 128 x 8 = 1024)
  GenerateOptions opt = sdxl_protocol();
  opt.steps = 1;
  const auto result = tiny_sdxl().generate({"x"}, opt);
  EXPECT_EQ(result.scheduler, "euler");
  EXPECT_EQ(result.height, 64);
}

TEST(Sdxl, EulerMatchesDiffusers) { check_run("euler10", sdxl_protocol()); }

TEST(Sdxl, DdimMatchesDiffusers) {
  GenerateOptions opt = sdxl_protocol();
  opt.scheduler = "ddim";
  opt.scheduler_options = {{"clip_sample", false}};
  check_run("ddim10", opt);
}

TEST(Sdxl, GuidanceRescaleMatchesDiffusers) {
  GenerateOptions opt = sdxl_protocol();
  opt.guidance_rescale = 0.7;
  check_run("euler10.rescale0.7", opt);
}

// The evaluator's same-model check reads SDXL's second text encoder too: a copy of the folder is
// the same model until one byte of text_encoder_2's weights changes.
TEST(Sdxl, ConsistencyCheckComparesTextEncoder2) {
  const fs::path copy = test::temp_dir("sdxl-consistency") / "tiny-sdxl";
  fs::copy(model_dir(), copy, fs::copy_options::recursive);
  PipelineSpec base, cand;
  base.model = model_dir();
  cand.model = copy;
  const auto same = check_consistency(base, cand, false);
  EXPECT_TRUE(same["same_model"].get<bool>());
  ASSERT_TRUE(same["components"].contains("text_encoder_2")) << same.dump();
  EXPECT_TRUE(same["components"]["text_encoder_2"]["identical"].get<bool>());

  test::flip_last_byte(copy / "text_encoder_2/model.safetensors");  // a float of its last tensor
  try {
    check_consistency(base, cand, false);
    ADD_FAILURE() << "a changed text_encoder_2 passed the same-model check";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("text_encoder_2"), std::string::npos) << e.what();
  }
  const auto differs = check_consistency(base, cand, true);
  EXPECT_FALSE(differs["same_model"].get<bool>());
  EXPECT_FALSE(differs["components"]["text_encoder_2"]["identical"].get<bool>());
  EXPECT_TRUE(differs["components"]["text_encoder"]["identical"].get<bool>());
  fs::remove_all(copy.parent_path());
}
