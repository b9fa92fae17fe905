// LoRA: fused into the weights at load, compared with diffusers' load_lora_weights + fuse_lora
// (tests/pipeline/data/tiny-sd-lora*, made by tools/refs/make_lora_refs.py).
#include <gtest/gtest.h>

#include "diffbench/error.hpp"
#include "diffbench/eval/evaluator.hpp"
#include "diffbench/eval/pyimport.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "cli/cli_support.hpp"
#include "pipeline/single_file_support.hpp"
#include "test_support.hpp"

namespace diffbench {
namespace {

namespace fs = std::filesystem;
using test::fixture;

fs::path data(const std::string& name) { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data" / name; }

const SafetensorsFile& reference() {
  static auto f = SafetensorsFile::open(data("tiny-sd-lora-expected.safetensors"));
  return *f;
}

// The reference's protocol: its prompts in one batch, one generator seeded 42, PNDM 20 steps, 64x64.
at::Tensor generate(const ModelOptions& mo) {
  auto pipe = Txt2ImgPipeline::load(mo);
  const auto& meta = reference().metadata();
  const auto prompts = nlohmann::json::parse(meta["prompts"].get<std::string>()).get<std::vector<std::string>>();
  GenerateOptions go;
  go.steps = 20;
  go.guidance = 7.5;
  go.height = go.width = 64;
  go.batch_size = static_cast<int>(prompts.size());
  go.noise = NoiseMode::Diffusers;
  return pipe->generate(prompts, go).images;
}

ModelOptions with_lora(const fs::path& model, const std::string& kind) {
  ModelOptions mo;
  mo.dir = model;
  mo.loras = {{data("tiny-sd-lora." + kind + ".safetensors"), std::stod(reference().metadata()["lora_scale"].get<std::string>())}};
  return mo;
}

// Final images within 2/255 of diffusers' (shared/README.md's tolerance for free-running images).
constexpr double kImageTol = 2.0 / 255;

TEST(Lora, BaseMatchesDiffusers) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  ModelOptions mo;
  mo.dir = fixture("tiny-sd");
  EXPECT_TENSOR_NEAR(generate(mo), reference().get("base.image"), kImageTol);
}

TEST(Lora, PeftFileMatchesDiffusersFused) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const at::Tensor ours = generate(with_lora(fixture("tiny-sd"), "peft"));
  EXPECT_TENSOR_NEAR(ours, reference().get("peft.image"), kImageTol);
  // The LoRA changes the images well beyond the tolerance, so the comparison above can fail.
  EXPECT_GT(test::max_abs_diff(ours, reference().get("base.image")), 10 * kImageTol);
}

TEST(Lora, KohyaFileMatchesDiffusersFused) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  EXPECT_TENSOR_NEAR(generate(with_lora(fixture("tiny-sd"), "kohya")), reference().get("kohya.image"), kImageTol);
}

// kohya files named after the original layout's modules (lora_unet_input_blocks_1_1_...) resolve
// through the single-file key table; here on a single file, with the same result as the folder.
TEST(Lora, KohyaOriginalNamesOnASingleFile) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const fs::path dir = test::temp_dir("lora-original");
  save_safetensors(dir / "model.safetensors", test::original_layout(fixture("tiny-sd"), CheckpointFamily::SD1, false));
  UNetLayout u{4, 2, {true, true, true, false}};
  std::vector<KeyRule> rules;
  for (const auto& c : checkpoint_keys(CheckpointFamily::SD1, u, VaeLayout{4, 1}, 2))
    if (c.component == "unet") rules = c.rules;
  // flattened diffusers module name -> flattened original one
  std::map<std::string, std::string> original_flat;
  auto flatten = [](std::string n) {
    std::replace(n.begin(), n.end(), '.', '_');
    return n;
  };
  for (const auto& [name, _] : load_safetensors(fixture("tiny-sd/unet/diffusion_pytorch_model.safetensors"))) {
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    const std::string o = to_original(rules, name);
    original_flat[flatten(name.substr(0, name.size() - 7))] = flatten(o.substr(0, o.size() - 7));
  }
  StateDict renamed;
  for (const auto& [k, t] : load_safetensors(data("tiny-sd-lora.kohya.safetensors"))) {
    std::string key = k;
    if (k.rfind("lora_unet_", 0) == 0) {
      const size_t dot = k.find('.');
      key = "lora_unet_" + original_flat.at(k.substr(10, dot - 10)) + k.substr(dot);
    }
    renamed[key] = t;
  }
  ASSERT_TRUE(renamed.count("lora_unet_input_blocks_1_1_transformer_blocks_0_attn1_to_q.lora_down.weight"));
  save_safetensors(dir / "lora.safetensors", renamed);
  ModelOptions mo;
  mo.dir = dir / "model.safetensors";
  mo.config_dir = fixture("tiny-sd");
  mo.loras = {{dir / "lora.safetensors", std::stod(reference().metadata()["lora_scale"].get<std::string>())}};
  EXPECT_TENSOR_NEAR(generate(mo), reference().get("kohya.image"), kImageTol);
  fs::remove_all(dir);
}

TEST(Lora, UnmatchedKeysAreListed) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const fs::path dir = test::temp_dir("lora-unmatched");
  StateDict bad = load_safetensors(data("tiny-sd-lora.kohya.safetensors"));
  bad["lora_unet_no_such_layer.lora_down.weight"] = at::zeros({4, 32});
  bad["lora_unet_no_such_layer.lora_up.weight"] = at::zeros({32, 4});
  bad["something_else"] = at::zeros({1});
  save_safetensors(dir / "bad.safetensors", bad);
  ModelOptions mo;
  mo.dir = fixture("tiny-sd");
  mo.loras = {{dir / "bad.safetensors", 1.0}};
  try {
    Txt2ImgPipeline::load(mo);
    FAIL() << "no error";
  } catch (const ModelError& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("lora_unet_no_such_layer.lora_down.weight"), std::string::npos) << m;
    EXPECT_NE(m.find("something_else"), std::string::npos) << m;
    EXPECT_NE(e.where().find("bad.safetensors"), std::string::npos);
  }
  fs::remove_all(dir);
}

TEST(Lora, SpecAndPythonForms) {
  const fs::path dir = test::temp_dir("lora-spec");
  const PipelineSpec s = parse_spec(
      "[pipeline]\nmodel = \"m.safetensors\"\nprediction_type = \"v_prediction\"\nconfig = \"cfg\"\n"
      "[[lora]]\nfile = \"a.safetensors\"\nscale = 0.5\n[[lora]]\nfile = \"b.safetensors\"\n",
      dir / "spec.toml");
  ASSERT_EQ(s.loras.size(), 2u);
  EXPECT_EQ(s.loras[0].file, dir / "a.safetensors");
  EXPECT_EQ(s.loras[0].scale, 0.5);
  EXPECT_EQ(s.loras[1].scale, 1.0);
  EXPECT_EQ(s.prediction_type, "v_prediction");
  EXPECT_EQ(s.model_config, dir / "cfg");
  EXPECT_EQ(s.baseline().loras, s.loras);  // the LoRA is part of the model, not an acceleration
  EXPECT_THROW(parse_spec("[pipeline]\nmodel = \"m\"\n[[lora]]\nscale = 1\n", dir / "x.toml"), InputError);
  EXPECT_THROW(parse_spec("[pipeline]\nmodel = \"m\"\nprediction_type = \"x\"\n", dir / "x.toml"), InputError);

  const PyImport py = import_python_text(
      "import torch\nfrom diffusers import StableDiffusionPipeline\n"
      "pipe = StableDiffusionPipeline.from_single_file(\"m.safetensors\", config=\"cfg\", prediction_type=\"epsilon\")\n"
      "pipe.load_lora_weights(\"loras\", weight_name=\"style.safetensors\")\n"
      "pipe.fuse_lora(lora_scale=0.7)\n"
      "pipe.load_lora_weights(\"other.safetensors\")\n"
      "image = pipe(\"a cat\", num_inference_steps=20).images[0]\n",
      dir / "gen.py");
  EXPECT_EQ(py.spec.model, dir / "m.safetensors");
  EXPECT_EQ(py.spec.model_config, dir / "cfg");
  EXPECT_EQ(py.spec.prediction_type, "epsilon");
  ASSERT_EQ(py.spec.loras.size(), 2u);
  EXPECT_EQ(py.spec.loras[0].file, dir / "loras/style.safetensors");
  EXPECT_EQ(py.spec.loras[0].scale, 0.7);
  EXPECT_EQ(py.spec.loras[1].scale, 1.0);  // loaded, not fused: active at scale 1
  const std::string toml = to_toml(py);
  EXPECT_NE(toml.find("[[lora]]"), std::string::npos) << toml;
  EXPECT_EQ(parse_spec(toml, dir / "again.toml").loras.size(), 2u);
  // SDXL single files load the same way, with SDXL's default guidance.
  const PyImport xl = import_python_text(
      "from diffusers import StableDiffusionXLPipeline\n"
      "pipe = StableDiffusionXLPipeline.from_single_file(\"xl.safetensors\")\n"
      "pipe.load_lora_weights(\"xl-lora.safetensors\")\n"
      "pipe.fuse_lora(lora_scale=0.5)\n"
      "image = pipe(\"a cat\", num_inference_steps=20).images[0]\n",
      dir / "xl.py");
  EXPECT_EQ(xl.spec.model, dir / "xl.safetensors");
  EXPECT_EQ(xl.spec.guidance, 5.0);
  ASSERT_EQ(xl.spec.loras.size(), 1u);
  EXPECT_EQ(xl.spec.loras[0].scale, 0.5);
  fs::remove_all(dir);
}

// Baseline and candidate are one model only with the same LoRAs.
TEST(Lora, ConsistencyCheckSeesTheLora) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  PipelineSpec base;
  base.model = fixture("tiny-sd");
  PipelineSpec cand = base;
  cand.loras = {{data("tiny-sd-lora.peft.safetensors"), 0.7}};
  EXPECT_THROW(check_consistency(base, cand, false), InputError);
  const auto allowed = check_consistency(base, cand, true);
  EXPECT_FALSE(allowed["same_model"].get<bool>());
  base.loras = cand.loras;
  EXPECT_TRUE(check_consistency(base, cand, false)["same_model"].get<bool>());
  base.loras[0].scale = 1.0;
  EXPECT_FALSE(check_consistency(base, cand, true)["same_model"].get<bool>());
}

// The command: generate from a single file (configs from tiny-sd) with --lora; run.json lists the fused
// layers. An SD 2.x file without --prediction-type and a LoRA that does not fit are exit 2.
TEST(Lora, GenerateCommandWithSingleFileAndLora) {
  DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd"));
  const fs::path dir = test::temp_dir("lora-cli");
  save_safetensors(dir / "model.safetensors", test::original_layout(fixture("tiny-sd"), CheckpointFamily::SD1, false));
  std::ofstream(dir / "spec.toml") << "[pipeline]\nmodel = \"model.safetensors\"\nconfig = "
                                   << nlohmann::json(fixture("tiny-sd").string()).dump()
                                   << "\nsteps = 2\nheight = 64\nwidth = 64\n";
  const std::string lora = data("tiny-sd-lora.kohya.safetensors").string();
  auto r = run_diffbench("generate --spec " + shell_quote((dir / "spec.toml").string()) + " --lora " +
                               shell_quote(lora + ":0.5") + " --prompt cat --quiet --out " +
                               shell_quote((dir / "out").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto run = read_json_file(dir / "out/run.json");
  const auto& load = run["settings"]["load_s"];
  EXPECT_EQ(load["source"]["layout"], "single_file") << load.dump();
  EXPECT_EQ(load["lora"][0]["scale"], 0.5);
  EXPECT_EQ(load["lora"][0]["format"], "kohya");
  EXPECT_EQ(load["lora"][0]["layers"]["unet"], 128);
  EXPECT_EQ(load["lora"][0]["layers"]["text_encoder"], 8);

  test::write_sd2_folder(fixture("tiny-sd"), dir / "sd2");
  save_safetensors(dir / "sd2.safetensors", test::original_layout(dir / "sd2", CheckpointFamily::SD2, true));
  r = run_diffbench("generate --model " + shell_quote((dir / "sd2.safetensors").string()) +
                          " --prompt cat --quiet --out " + shell_quote((dir / "out2").string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--prediction-type v_prediction"), std::string::npos) << r.output;
  fs::remove_all(dir);
}


// ---- SDXL: both text encoders and the UNet (tests/pipeline/data/tiny-sdxl-lora*, made by
// tools/refs/make_sdxl_lora_refs.py on the project's tiny SDXL folder).

namespace {

const SafetensorsFile& sdxl_reference() {
  static auto f = SafetensorsFile::open(data("tiny-sdxl-lora-expected.safetensors"));
  return *f;
}

// Its protocol: the prompts in one batch, one generator seeded 42, the folder's Euler, 10 steps,
// guidance 5, the folder's 64x64. Returns the images and the final latents.
std::pair<at::Tensor, at::Tensor> generate_sdxl(const std::string& kind, nlohmann::json* load = nullptr,
                                                const fs::path& file = {}) {
  ModelOptions mo;
  mo.dir = data("tiny-sdxl");
  if (!kind.empty())
    mo.loras = {{file.empty() ? data("tiny-sdxl-lora." + kind + ".safetensors") : file,
                 std::stod(sdxl_reference().metadata()["lora_scale"].get<std::string>())}};
  auto pipe = Txt2ImgPipeline::load(mo);
  if (load) *load = pipe->load_report();
  const auto prompts =
      nlohmann::json::parse(sdxl_reference().metadata()["prompts"].get<std::string>()).get<std::vector<std::string>>();
  GenerateOptions go;
  go.steps = 10;
  go.guidance = 5.0;
  go.batch_size = static_cast<int>(prompts.size());
  go.noise = NoiseMode::Diffusers;
  at::Tensor last;
  auto images = pipe->generate(prompts, go, [&](size_t, size_t, size_t, const at::Tensor& l) { last = l.clone(); }).images;
  return {images, last};
}

// Final latents within 1e-3 (shared/README.md's bound for a free run's latents); the LoRA moves the
// images by 0.28 from the base model's.
constexpr double kLatentsTol = 1e-3;

}  // namespace

TEST(Lora, SdxlBaseMatchesDiffusers) {
  EXPECT_TENSOR_NEAR(generate_sdxl("").first, sdxl_reference().get("base.image"), kImageTol);
}

TEST(Lora, SdxlPeftAndKohyaFilesMatchDiffusersFused) {
  for (const std::string kind : {"peft", "kohya"}) {
    SCOPED_TRACE(kind);
    nlohmann::json load;
    const auto [images, latents] = generate_sdxl(kind, &load);
    std::cout << "[ sdxl lora " << kind << " ] final latents max abs diff "
              << test::max_abs_diff(latents, sdxl_reference().get(kind + ".final_latents")) << ", image "
              << test::max_abs_diff(images, sdxl_reference().get(kind + ".image")) << "\n";
    EXPECT_TENSOR_NEAR(latents, sdxl_reference().get(kind + ".final_latents"), kLatentsTol);
    EXPECT_TENSOR_NEAR(images, sdxl_reference().get(kind + ".image"), kImageTol);
    // Every attention projection: 11 transformer blocks x 2 attentions x 4 in the UNet, 3 layers x 4
    // in each text encoder.
    EXPECT_EQ(load["lora"][0]["format"], kind);
    EXPECT_EQ(load["lora"][0]["layers"]["unet"], 88);
    EXPECT_EQ(load["lora"][0]["layers"]["text_encoder"], 12);
    EXPECT_EQ(load["lora"][0]["layers"]["text_encoder_2"], 12);
  }
}

// An SD 1.x LoRA's layers are not the tiny SDXL's: an error naming the file and keys, not a crash.
TEST(Lora, SdxlRefusesALoraOfAnotherModel) {
  ModelOptions mo;
  mo.dir = data("tiny-sdxl");
  mo.loras = {{data("tiny-sd-lora.peft.safetensors"), 1.0}};
  try {
    Txt2ImgPipeline::load(mo);
    ADD_FAILURE() << "an SD 1.x LoRA loaded into the SDXL pipeline";
  } catch (const ModelError& e) {
    EXPECT_NE(std::string(e.what()).find("LoRA"), std::string::npos) << e.what();
  }
}

// kohya's SDXL files name the UNet's modules after the original layout (lora_unet_input_blocks_3_1_...):
// they resolve through the key table as the diffusers names do.
TEST(Lora, SdxlKohyaOriginalNames) {
  const fs::path dir = test::temp_dir("lora-sdxl-original");
  UNetLayout u{3, 1, {false, true, true}};  // the tiny SDXL's UNet
  std::vector<KeyRule> rules;
  for (const auto& c : checkpoint_keys(CheckpointFamily::SDXL, u, VaeLayout{4, 1}, 3))
    if (c.component == "unet") rules = c.rules;
  auto flatten = [](std::string n) {
    std::replace(n.begin(), n.end(), '.', '_');
    return n;
  };
  std::map<std::string, std::string> original_flat;
  for (const auto& [name, _] : load_safetensors(data("tiny-sdxl/unet/diffusion_pytorch_model.safetensors"))) {
    if (name.size() < 7 || name.compare(name.size() - 7, 7, ".weight") != 0) continue;
    const std::string o = to_original(rules, name);
    original_flat[flatten(name.substr(0, name.size() - 7))] = flatten(o.substr(0, o.size() - 7));
  }
  StateDict renamed;
  for (const auto& [k, t] : load_safetensors(data("tiny-sdxl-lora.kohya.safetensors"))) {
    std::string key = k;
    if (k.rfind("lora_unet_", 0) == 0) {
      const size_t dot = k.find('.');
      key = "lora_unet_" + original_flat.at(k.substr(10, dot - 10)) + k.substr(dot);
    }
    renamed[key] = t;
  }
  ASSERT_TRUE(renamed.count("lora_unet_input_blocks_3_1_transformer_blocks_0_attn1_to_q.lora_down.weight"));
  save_safetensors(dir / "lora.safetensors", renamed);
  const auto [images, latents] = generate_sdxl("kohya", nullptr, dir / "lora.safetensors");
  EXPECT_TENSOR_NEAR(latents, sdxl_reference().get("kohya.final_latents"), kLatentsTol);
  EXPECT_TENSOR_NEAR(images, sdxl_reference().get("kohya.image"), kImageTol);
  fs::remove_all(dir);
}

}  // namespace
}  // namespace diffbench
