// The command end to end: help, version, generate on tiny-sd against diffusers' images, bad input.
#include <fstream>

#include "cli_support.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> reference_prompts() {
  return read_json_file(test::fixture("tiny-sd-reference.json")).at("prompts").get<std::vector<std::string>>();
}

std::string prompt_args() {
  std::string args;
  for (const auto& p : reference_prompts()) args += " --prompt " + shell_quote(p);
  return args;
}

at::Tensor read_images(const fs::path& dir, size_t n) {
  std::vector<at::Tensor> imgs;
  for (size_t i = 0; i < n; ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06zu.png", i);
    imgs.push_back(read_png(dir / name).to(at::kFloat) / 255.0);
  }
  return at::stack(imgs);
}

// A copy of tiny-sd made of symlinks, so single files can be replaced cheaply.
fs::path linked_copy(const std::string& tag) {
  auto dir = test::temp_dir(tag);
  const auto src = test::fixture("tiny-sd");
  for (const auto& comp : fs::directory_iterator(src)) {
    if (comp.is_directory()) {
      fs::create_directories(dir / comp.path().filename());
      for (const auto& f : fs::directory_iterator(comp.path()))
        fs::create_symlink(f.path(), dir / comp.path().filename() / f.path().filename());
    } else {
      fs::create_symlink(comp.path(), dir / comp.path().filename());
    }
  }
  return dir;
}

void replace_with_text(const fs::path& link, const std::string& text) {
  fs::remove(link);
  std::ofstream(link) << text;
}

}  // namespace

TEST(Cli, HelpAndVersion) {
  auto r = run_diffbench("--help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("generate"), std::string::npos);
  EXPECT_NE(r.output.find("init-random"), std::string::npos);
  r = run_diffbench("generate --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--noise"), std::string::npos);
  r = run_diffbench("--version");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find(DIFFBENCH_VERSION), std::string::npos);
  r = run_diffbench("generate --bogus-option");
  EXPECT_EQ(r.exit_code, 2);
  r = run_diffbench("frobnicate");
  EXPECT_EQ(r.exit_code, 2);
}

TEST(Cli, GenerateMatchesDiffusersImages) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd-reference.safetensors"));
  auto out = test::temp_dir("cli-gen") / "run";
  auto r = run_diffbench("generate --model " + shell_quote(test::fixture("tiny-sd").string()) + prompt_args() +
                         " --batch-size 4 --noise diffusers --steps 50 --quiet --out " + shell_quote(out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto ref = SafetensorsFile::open(test::fixture("tiny-sd-reference.safetensors"))->get("pndm50.image");
  EXPECT_TENSOR_NEAR(read_images(out, 4), ref, 2.0 / 255 + 1e-6);
  auto run = read_json_file(out / "run.json");
  EXPECT_EQ(run["images"], 4);
  EXPECT_EQ(run["unet_calls_per_image"], 51.0);
  EXPECT_EQ(run["settings"]["seed"], 42);
  EXPECT_EQ(run["prompts"][0], reference_prompts()[0]);
  EXPECT_GT(run["times"]["denoise_s"].get<double>(), 0.0);
  fs::remove_all(out.parent_path());
}

TEST(Cli, PerPromptImagesIndependentOfBatchSize) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  auto base = test::temp_dir("cli-batch");
  std::vector<at::Tensor> images;
  for (int bs : {1, 2, 4}) {
    auto out = base / ("bs" + std::to_string(bs));
    auto r = run_diffbench("generate --model " + shell_quote(test::fixture("tiny-sd").string()) + prompt_args() +
                           " --steps 8 --quiet --noise per-prompt --batch-size " + std::to_string(bs) + " --out " +
                           shell_quote(out.string()));
    ASSERT_EQ(r.exit_code, 0) << r.output;
    images.push_back(read_images(out, 4));
  }
  EXPECT_LE(test::max_abs_diff(images[1], images[0]), 1.0 / 255 + 1e-6);
  EXPECT_LE(test::max_abs_diff(images[2], images[0]), 1.0 / 255 + 1e-6);
  fs::remove_all(base);
}

TEST(Cli, BadInputGivesExitCode2AndNoOutput) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  struct Case {
    std::string name;
    std::function<void(const fs::path&)> damage;
    std::string expect;  // part of the message
  };
  std::vector<Case> cases = {
      {"missing-component", [](const fs::path& m) { fs::remove_all(m / "vae"); }, "vae"},
      {"truncated-weights",
       [](const fs::path& m) {
         auto f = m / "unet" / "diffusion_pytorch_model.safetensors";
         auto target = fs::read_symlink(f);
         fs::remove(f);
         fs::copy_file(target, f);
         fs::resize_file(f, fs::file_size(f) / 2);
       },
       "diffusion_pytorch_model.safetensors"},
      {"lying-header",
       [](const fs::path& m) {
         auto f = m / "vae" / "diffusion_pytorch_model.safetensors";
         fs::remove(f);
         std::ofstream out(f, std::ios::binary);
         const char len[8] = {'\xff', '\xff', 0, 0, 0, 0, 0, 0};
         out.write(len, 8);
         out << "{}";
       },
       "diffusion_pytorch_model.safetensors"},
      {"shape-mismatch",
       [](const fs::path& m) {
         auto cfg = read_json_file(m / "unet" / "config.json");
         cfg["cross_attention_dim"] = 48;
         replace_with_text(m / "unet" / "config.json", cfg.dump());
       },
       "attn2.to_k.weight"},
      {"unknown-block",
       [](const fs::path& m) {
         auto cfg = read_json_file(m / "unet" / "config.json");
         cfg["down_block_types"][1] = "SimpleCrossAttnDownBlock2D";
         replace_with_text(m / "unet" / "config.json", cfg.dump());
       },
       "SimpleCrossAttnDownBlock2D"},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.name);
    auto model = linked_copy("bad-" + c.name);
    c.damage(model);
    auto out = model.parent_path() / (model.filename().string() + "-out");
    auto r = run_diffbench("generate --model " + shell_quote(model.string()) + " --prompt x --steps 2 --quiet --out " +
                           shell_quote(out.string()));
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_NE(r.output.find(c.expect), std::string::npos) << r.output;
    EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1) << "one message: " << r.output;
    EXPECT_FALSE(fs::exists(out));
    fs::remove_all(model);
  }
  // An empty prompt file.
  auto dir = test::temp_dir("bad-prompts");
  std::ofstream(dir / "empty.txt").close();
  auto r = run_diffbench("generate --model " + shell_quote(test::fixture("tiny-sd").string()) + " --prompts " +
                         shell_quote((dir / "empty.txt").string()) + " --quiet --out " + shell_quote((dir / "out").string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("empty.txt"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "out"));
  fs::remove_all(dir);
}

TEST(Cli, InitRandomWritesALoadableFolder) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("clip-tokenizer/vocab.json"));
  auto dir = test::temp_dir("init-random");
  auto r = run_diffbench("init-random --arch tiny --seed 3 --tokenizer " +
                         shell_quote(test::fixture("clip-tokenizer").string()) + " --out " + shell_quote((dir / "m").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_diffbench("generate --model " + shell_quote((dir / "m").string()) +
                    " --prompt 'a red square' --steps 3 --quiet --out " + shell_quote((dir / "out").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(fs::exists(dir / "out" / "000000.png"));
  r = run_diffbench("init-random --arch tiny --out " + shell_quote((dir / "m2").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("--tokenizer"), std::string::npos) << r.output;

  // The bundled tokenizer (open_clip's merges list alone): the model folder gets Hugging Face's files,
  // the same bytes as the reference folder's, and the same image comes out.
  const fs::path bundled = fs::path(DIFFBENCH_SOURCE_DIR) / "assets" / "clip-tokenizer";
  r = run_diffbench("init-random --arch tiny --seed 3 --tokenizer " + shell_quote(bundled.string()) + " --out " +
                    shell_quote((dir / "m3").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* f : {"vocab.json", "merges.txt"})
    EXPECT_TRUE(test::read_bytes(dir / "m3" / "tokenizer" / f) == test::read_bytes(test::fixture("clip-tokenizer") / f)) << f;
  EXPECT_FALSE(fs::exists(dir / "m3" / "tokenizer" / "bpe_simple_vocab_16e6.txt.gz"));
  r = run_diffbench("generate --model " + shell_quote((dir / "m3").string()) +
                    " --prompt 'a red square' --steps 3 --quiet --out " + shell_quote((dir / "out3").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_TRUE(test::read_bytes(dir / "out3" / "000000.png") == test::read_bytes(dir / "out" / "000000.png"));
  fs::remove_all(dir);
}

TEST(Cli, BenchSmokeOnCpu) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  auto dir = test::temp_dir("bench");
  std::ofstream(dir / "spec.toml") << "[pipeline]\nmodel = \"" << test::fixture("tiny-sd").string()
                                    << "\"\nsteps = 3\nguidance = 7.5\n";
  // --json: JSON alone on stdout; progress, one line per run when stderr is not a terminal, on stderr.
  auto r = run_shell_split(shell_quote(DIFFBENCH_BINARY) + " bench " + shell_quote((dir / "spec.toml").string()) +
                           " --runs 2 --warmup 1 --batch-size 2 --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_NE(r.err.find("bench: batch 1/2 · "), std::string::npos) << r.err;
  EXPECT_NE(r.err.find("bench: batch 2/2 · "), std::string::npos) << r.err;
  EXPECT_EQ(r.err.find('\r'), std::string::npos) << "an in-place bar off a terminal";
  auto j = nlohmann::json::parse(r.out);
  EXPECT_EQ(j["schema"], "diffbench.bench/1");
  EXPECT_EQ(j["unet_calls_per_image"], 4);  // PNDM: steps + 1
  EXPECT_EQ(j["seconds_per_image"]["all"].size(), 2u);
  const auto& s = j["stages_mean_s"];
  EXPECT_GT(s["denoise_s"].get<double>(), 0.0);
  EXPECT_LE(s["text_encoder_s"].get<double>() + s["denoise_s"].get<double>() + s["vae_decode_s"].get<double>(),
            s["total_s"].get<double>() + 1e-6);
  EXPECT_GT(j["unet_steps_per_second"].get<double>(), 0.0);
  EXPECT_EQ(j["peak_memory_kind"], "host-rss");
  EXPECT_EQ(run_diffbench("bench " + shell_quote((dir / "spec.toml").string()) + " --runs 0").exit_code, 2);
  std::filesystem::remove_all(dir);
}

TEST(Cli, VPredictionCheckpointRunsWithEveryScheduler) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("clip-tokenizer/vocab.json"));
  auto dir = test::temp_dir("vpred");
  auto r = run_diffbench("init-random --arch tiny --seed 5 --prediction-type v_prediction --tokenizer " +
                         shell_quote(test::fixture("clip-tokenizer").string()) + " --out " + shell_quote((dir / "m").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* s : {"pndm", "ddim", "euler", "euler_a", "dpmpp_2m"}) {
    const auto out = dir / (std::string("out-") + s);
    r = run_diffbench("generate --model " + shell_quote((dir / "m").string()) + " --prompt 'a red circle' --steps 4 --quiet" +
                      " --scheduler " + s + " --out " + shell_quote(out.string()));
    ASSERT_EQ(r.exit_code, 0) << s << ": " << r.output;
    auto run = read_json_file(out / "run.json");
    EXPECT_EQ(run["scheduler"]["name"], s);
    EXPECT_EQ(run["scheduler"]["config"]["prediction_type"], "v_prediction") << s;
    const auto img = read_png(out / "000000.png");
    EXPECT_EQ(img.sizes(), at::IntArrayRef({3, 128, 128}));
  }
  r = run_diffbench("generate --model " + shell_quote((dir / "m").string()) +
                    " --prompt x --steps 2 --scheduler lms --quiet --out " + shell_quote((dir / "bad").string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("lms"), std::string::npos) << r.output;
  EXPECT_FALSE(std::filesystem::exists(dir / "bad"));
  std::filesystem::remove_all(dir);
}
