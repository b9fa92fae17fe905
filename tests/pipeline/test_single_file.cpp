// Single-file checkpoints: the key table against diffusers' conversion script, the same images as
// the diffusers folder bit for bit, the inferred configuration, and the errors.
#include <gtest/gtest.h>
#include <xxhash.h>

#include "diffbench/error.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/pipeline/single_file.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "pipeline/single_file_support.hpp"
#include "cli/cli_support.hpp"
#include "test_support.hpp"

namespace diffbench {
namespace {

namespace fs = std::filesystem;
using test::fixture;

const std::vector<std::string> kPrompts = {"A man is in a kitchen making pizzas.", "a red bus"};

fs::path data_dir() { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data"; }

std::string xxh3(const at::Tensor& t) {
  const at::Tensor c = t.contiguous().to(at::kFloat);
  char hex[17];
  std::snprintf(hex, sizeof hex, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits(c.data_ptr(), static_cast<size_t>(c.numel()) * 4)));
  return hex;
}

// The files written for a test process, removed when it exits.
struct MadeFiles {
  std::map<CheckpointFamily, fs::path> files;
  ~MadeFiles() {
    std::error_code ec;
    for (const auto& entry : files) fs::remove_all(entry.second.parent_path(), ec);
  }
};

// The original-layout file of tiny-sd (or its SD 2.x-shaped variant), written once per family.
fs::path original_file(CheckpointFamily family) {
  static MadeFiles made_files;
  auto& made = made_files.files;
  auto it = made.find(family);
  if (it != made.end()) return it->second;
  const fs::path dir = test::temp_dir(family == CheckpointFamily::SD1   ? "single-sd1"
                                      : family == CheckpointFamily::SD2 ? "single-sd2"
                                                                        : "single-sdxl");
  fs::path folder = fixture("tiny-sd");
  if (family == CheckpointFamily::SD2) {
    test::write_sd2_folder(folder, dir / "tiny-sd2");
    folder = dir / "tiny-sd2";
  }
  if (family == CheckpointFamily::SDXL) {
    test::write_sdxl_l2_folder(data_dir(), dir / "tiny-sdxl-l2");
    folder = dir / "tiny-sdxl-l2";
  }
  const fs::path file = dir / "model.safetensors";
  save_safetensors(file, test::original_layout(folder, family, true));
  return made[family] = file;
}

at::Tensor generate(const fs::path& model, const fs::path& config = {}, const std::string& prediction_type = {}) {
  ModelOptions mo;
  mo.dir = model;
  mo.config_dir = config;
  mo.prediction_type = prediction_type;
  auto pipe = Txt2ImgPipeline::load(mo);
  GenerateOptions go;
  go.steps = 4;
  go.height = go.width = 64;
  go.batch_size = 2;
  return pipe->generate(kPrompts, go).images;
}

// Every tensor diffusers' convert_diffusers_to_original_stable_diffusion.py writes for tiny-sd, with
// the same shape and bytes: diffbench's table, run backwards, is diffusers' conversion.
void expect_matches_diffusers_script(CheckpointFamily family, const std::string& key) {
  const auto ref = read_json_file(fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data/tiny-sd-original.tensors.json")[key];
  fs::path folder = fixture("tiny-sd");
  const fs::path dir = test::temp_dir("single-table");
  if (family == CheckpointFamily::SD2) {
    test::write_sd2_folder(folder, dir / "tiny-sd2");
    folder = dir / "tiny-sd2";
  }
  const StateDict ours = test::original_layout(folder, family, /*extra_text_layer=*/false);
  EXPECT_EQ(ours.size(), ref.size());
  for (const auto& [name, t] : ours) {
    ASSERT_TRUE(ref.contains(name)) << "diffusers' script writes no tensor '" << name << "'";
    EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), ref[name][0].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(xxh3(t), ref[name][1].get<std::string>()) << name;
  }
  fs::remove_all(dir);
}

TEST(SingleFile, KeyTableIsDiffusersConversionSd1) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  expect_matches_diffusers_script(CheckpointFamily::SD1, "sd1");
}

TEST(SingleFile, KeyTableIsDiffusersConversionSd2) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  expect_matches_diffusers_script(CheckpointFamily::SD2, "sd2");
}

TEST(SingleFile, Sd1SameImagesAsFolder) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const at::Tensor folder = generate(fixture("tiny-sd"));
  const at::Tensor single = generate(original_file(CheckpointFamily::SD1), fixture("tiny-sd"));
  EXPECT_TRUE(at::equal(folder, single)) << "max abs diff " << test::max_abs_diff(folder, single);
}

TEST(SingleFile, Sd2SameImagesAsFolder) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const fs::path file = original_file(CheckpointFamily::SD2);
  const fs::path folder = file.parent_path() / "tiny-sd2";
  const at::Tensor a = generate(folder);
  const at::Tensor b = generate(file, folder);
  EXPECT_TRUE(at::equal(a, b)) << "max abs diff " << test::max_abs_diff(a, b);
}

// `generate --model FILE --config DIR` is the spec's `config`: the single file with the folder's configs
// writes the folder's PNG byte for byte; a --config that is not a folder is an input error naming it.
TEST(SingleFile, GenerateCliTakesAConfigFolder) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const fs::path dir = test::temp_dir("single-cli");
  const std::string common = " --prompt 'a red cube' --steps 3 --height 64 --width 64 --quiet --out ";
  const auto folder = run_diffbench("generate --model " + shell_quote(fixture("tiny-sd").string()) + common +
                                    shell_quote((dir / "folder").string()));
  ASSERT_EQ(folder.exit_code, 0) << folder.output;
  const std::string file = shell_quote(original_file(CheckpointFamily::SD1).string());
  const auto single = run_diffbench("generate --model " + file + " --config " + shell_quote(fixture("tiny-sd").string()) +
                                    common + shell_quote((dir / "single").string()));
  ASSERT_EQ(single.exit_code, 0) << single.output;
  EXPECT_EQ(test::read_bytes(dir / "folder" / "000000.png"), test::read_bytes(dir / "single" / "000000.png"));
  const auto bad = run_diffbench("generate --model " + file + " --config " + shell_quote((dir / "nowhere").string()) +
                                 common + shell_quote((dir / "bad").string()));
  EXPECT_EQ(bad.exit_code, 2) << bad.output;
  EXPECT_NE(bad.output.find("nowhere"), std::string::npos) << bad.output;
  EXPECT_FALSE(fs::exists(dir / "bad"));
  std::error_code ec;
  fs::remove_all(dir, ec);
}

// What the tensors show is read from them; what they cannot show takes the family's default.
TEST(SingleFile, InfersTheConfigFromTheTensors) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const auto ck = open_single_file(original_file(CheckpointFamily::SD1));
  EXPECT_EQ(ck.family, CheckpointFamily::SD1);
  const auto unet = read_json_file(fixture("tiny-sd/unet/config.json"));
  for (const char* k : {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "cross_attention_dim",
                        "down_block_types", "up_block_types", "use_linear_projection", "transformer_layers_per_block"})
    EXPECT_EQ(ck.unet_config[k], unet[k]) << "unet " << k;
  EXPECT_EQ(ck.unet_config["attention_head_dim"], 8);  // SD 1.x: ldm's num_heads = 8
  const auto vae = read_json_file(fixture("tiny-sd/vae/config.json"));
  for (const char* k : {"in_channels", "out_channels", "latent_channels", "block_out_channels", "layers_per_block", "scaling_factor"})
    EXPECT_EQ(ck.vae_config[k], vae[k]) << "vae " << k;
  const auto text = read_json_file(fixture("tiny-sd/text_encoder/config.json"));
  for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "max_position_embeddings", "hidden_act"})
    EXPECT_EQ(ck.text_config[k], text[k]) << "text " << k;
  EXPECT_EQ(ck.scheduler_config["_class_name"], "PNDMScheduler");
  EXPECT_EQ(ck.tokenizer_dir.filename(), "clip-tokenizer");  // the bundled CLIP vocabulary
  EXPECT_TRUE(fs::exists(ck.tokenizer_dir / "bpe_simple_vocab_16e6.txt.gz"));  // open_clip's merges list
  EXPECT_TRUE(fs::exists(ck.tokenizer_dir / "LICENSE"));

  const auto sd2 = open_single_file(original_file(CheckpointFamily::SD2), {"v_prediction", {}});
  EXPECT_EQ(sd2.family, CheckpointFamily::SD2);
  EXPECT_EQ(sd2.text_config["num_hidden_layers"], text["num_hidden_layers"]);  // the stored last layer skipped
  EXPECT_EQ(sd2.text_config["hidden_act"], "gelu");
  EXPECT_EQ(sd2.unet_config["use_linear_projection"], true);
  EXPECT_EQ(sd2.scheduler_config["prediction_type"], "v_prediction");
  EXPECT_EQ(sd2.scheduler_config["_class_name"], "DDIMScheduler");
  EXPECT_EQ(sd2.pad_token, "!");
}

TEST(SingleFile, Sd2NeedsAPredictionType) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  try {
    open_single_file(original_file(CheckpointFamily::SD2));
    FAIL() << "no error";
  } catch (const UsageError& e) {
    EXPECT_NE(std::string(e.what()).find("prediction_type = \"v_prediction\""), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("--prediction-type"), std::string::npos) << e.what();
  }
}

TEST(SingleFile, RefusesPickleAndOtherLayouts) {
  const fs::path dir = test::temp_dir("single-errors");
  { std::ofstream(dir / "model.ckpt") << "not read"; }
  try {
    ModelSource::open(dir / "model.ckpt");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("safetensors.torch"), std::string::npos) << e.what();
  }
  save_safetensors(dir / "sdxl.safetensors", {{"conditioner.embedders.0.transformer.x", at::zeros({1})},
                                              {"model.diffusion_model.y", at::zeros({1})}});
  EXPECT_THROW(ModelSource::open(dir / "sdxl.safetensors"), ModelError);
  save_safetensors(dir / "other.safetensors", {{"weight", at::zeros({1})}});
  EXPECT_THROW(ModelSource::open(dir / "other.safetensors"), ModelError);
  fs::remove_all(dir);
}

// ---- SDXL: conditioner.embedders.0 (CLIP ViT-L as transformers saves it), conditioner.embedders.1
// (open_clip's text tower), the UNet's label_emb. The folder form is the tiny SDXL pipeline with SDXL
// base's UNet block structure (test::write_sdxl_l2_folder), which diffusers' SDXL script needs.

// Every tensor diffusers' convert_diffusers_to_original_sdxl.py writes, with the same shape and bytes.
TEST(SingleFile, KeyTableIsDiffusersConversionSdxl) {
  const auto ref = read_json_file(data_dir() / "tiny-sdxl-original.tensors.json");
  const fs::path dir = test::temp_dir("single-table-sdxl");
  test::write_sdxl_l2_folder(data_dir(), dir / "tiny-sdxl-l2");
  const StateDict ours = test::original_layout(dir / "tiny-sdxl-l2", CheckpointFamily::SDXL, false);
  EXPECT_EQ(ours.size(), ref.size());
  for (const auto& [name, t] : ours) {
    ASSERT_TRUE(ref.contains(name)) << "diffusers' script writes no tensor '" << name << "'";
    EXPECT_EQ(std::vector<int64_t>(t.sizes().begin(), t.sizes().end()), ref[name][0].get<std::vector<int64_t>>()) << name;
    EXPECT_EQ(xxh3(t), ref[name][1].get<std::string>()) << name;
  }
  fs::remove_all(dir);
}

TEST(SingleFile, SdxlSameImagesAsFolder) {
  const fs::path file = original_file(CheckpointFamily::SDXL);
  const fs::path folder = file.parent_path() / "tiny-sdxl-l2";
  const at::Tensor a = generate(folder);
  const at::Tensor b = generate(file, folder);
  EXPECT_TRUE(at::equal(a, b)) << "max abs diff " << test::max_abs_diff(a, b);
  // Stability's own files hold open_clip's text_projection ([width, projection], no ".weight"): the
  // same model.
  StateDict sd = load_safetensors(file);
  const std::string key = "conditioner.embedders.1.model.text_projection";
  sd[key] = sd.at(key + ".weight").t().contiguous();
  sd.erase(key + ".weight");
  const fs::path stability = file.parent_path() / "stability.safetensors";
  save_safetensors(stability, sd);
  const at::Tensor c = generate(stability, folder);
  EXPECT_TRUE(at::equal(a, c)) << "max abs diff " << test::max_abs_diff(a, c);
}

TEST(SingleFile, SdxlInfersTheConfigFromTheTensors) {
  const fs::path file = original_file(CheckpointFamily::SDXL);
  const fs::path folder = file.parent_path() / "tiny-sdxl-l2";
  const auto ck = open_single_file(file);
  EXPECT_EQ(ck.family, CheckpointFamily::SDXL);
  const auto unet = read_json_file(folder / "unet/config.json");
  for (const char* k : {"in_channels", "out_channels", "block_out_channels", "layers_per_block", "cross_attention_dim",
                        "down_block_types", "up_block_types", "use_linear_projection", "transformer_layers_per_block",
                        "addition_embed_type", "projection_class_embeddings_input_dim"})
    EXPECT_EQ(ck.unet_config[k], unet[k]) << "unet " << k;
  EXPECT_EQ(ck.unet_config["addition_time_embed_dim"], 256);  // SDXL's; the tiny UNet's 8 cannot be seen
  const auto vae = read_json_file(folder / "vae/config.json");
  for (const char* k : {"block_out_channels", "layers_per_block", "scaling_factor", "force_upcast"})
    EXPECT_EQ(ck.vae_config[k], vae[k]) << "vae " << k;
  const auto text = read_json_file(folder / "text_encoder/config.json");
  const auto text_2 = read_json_file(folder / "text_encoder_2/config.json");
  for (const char* k : {"vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "max_position_embeddings"}) {
    EXPECT_EQ(ck.text_config[k], text[k]) << "text " << k;
    EXPECT_EQ(ck.text_config_2[k], text_2[k]) << "text_2 " << k;
  }
  EXPECT_EQ(ck.text_config_2["projection_dim"], text_2["projection_dim"]);
  EXPECT_EQ(ck.scheduler_config["_class_name"], "EulerDiscreteScheduler");
  EXPECT_EQ(ck.pad_token_2, "!");
  EXPECT_FALSE(ck.text_projection_transposed);
  const auto source = ModelSource::open(file);
  EXPECT_TRUE(source.sdxl());
  EXPECT_EQ(source.pipeline_class(), "SDXL single file");
}

}  // namespace
}  // namespace diffbench
