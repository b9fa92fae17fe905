// Issue 18's reproductions through the real binary: output folders that must never lose a user's
// files, config values that used to crash or exit 3, inputs that used to hang or pass silently.
#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <functional>

#include "cli_support.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/pipeline/device.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class Reliability : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
    dir_ = test::temp_dir(std::string("rel-") + ::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { fs::remove_all(dir_); }

  // diffbench ARGS run from `cwd`, killed after a minute so that a hang fails the test instead of CI.
  static CommandResult run_in(const fs::path& cwd, const std::string& args) {
    return run_shell("cd " + shell_quote(cwd.string()) + " && timeout 60 " + shell_quote(DIFFBENCH_BINARY) + " " + args);
  }
  CommandResult generate(const std::string& out, const std::string& extra = "", const fs::path& model = {}) const {
    return run_in(dir_, "generate --model " + shell_quote((model.empty() ? test::fixture("tiny-sd") : model).string()) +
                            " --prompt 'a red cube' --steps 2 --height 64 --width 64 --quiet --out " + shell_quote(out) +
                            " " + extra);
  }

  // A copy of tiny-sd made of symlinks, so that single files can be replaced cheaply.
  fs::path linked_copy(const std::string& name) const {
    const fs::path dir = dir_ / name;
    for (const auto& comp : fs::directory_iterator(test::fixture("tiny-sd"))) {
      if (!comp.is_directory()) {
        fs::create_directories(dir);
        fs::create_symlink(comp.path(), dir / comp.path().filename());
        continue;
      }
      fs::create_directories(dir / comp.path().filename());
      for (const auto& f : fs::directory_iterator(comp.path()))
        fs::create_symlink(f.path(), dir / comp.path().filename() / f.path().filename());
    }
    return dir;
  }
  // The model with one of its JSON configs edited by `edit`.
  fs::path with_config(const std::string& name, const std::string& file, const std::function<void(nlohmann::json&)>& edit) {
    const fs::path model = linked_copy(name);
    auto j = read_json_file(model / file);
    edit(j);
    fs::remove(model / file);
    std::ofstream(model / file) << j.dump();
    return model;
  }

  std::vector<std::string> names(const fs::path& dir) const {
    std::vector<std::string> out;
    for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
    std::sort(out.begin(), out.end());
    return out;
  }
  std::string read(const fs::path& p) const {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }

  fs::path dir_;
};

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

}  // namespace

TEST_F(Reliability, ForceWithATrailingSlashNeverDeletesUserFiles) {
  // mkdir -p x && touch x/keep && diffbench generate ... --out x/ --force deleted x/keep.
  fs::create_directories(dir_ / "x");
  std::ofstream(dir_ / "x" / "keep") << "user data";
  for (const std::string out : {"x/", "x", "./x/."}) {
    const auto r = generate(out, "--force");
    EXPECT_EQ(r.exit_code, 2) << out << ": " << r.output;
    EXPECT_CONTAINS(r.output, "not written by diffbench");
  }
  EXPECT_EQ(read(dir_ / "x" / "keep"), "user data");
  EXPECT_EQ(names(dir_ / "x"), std::vector<std::string>{"keep"});
}

TEST_F(Reliability, TheCurrentFolderIsNeverAnOutputFolder) {
  fs::create_directories(dir_ / "work");
  std::ofstream(dir_ / "work" / "notes.txt") << "mine";
  for (const std::string out : {".", "./", "..", "../work"}) {
    const auto r = run_in(dir_ / "work", "generate --model " + shell_quote(test::fixture("tiny-sd").string()) +
                                             " --prompt x --steps 2 --quiet --force --out " + out);
    EXPECT_EQ(r.exit_code, 2) << out << ": " << r.output;
    EXPECT_CONTAINS(r.output, "current folder");
  }
  EXPECT_EQ(names(dir_ / "work"), std::vector<std::string>{"notes.txt"});
}

TEST_F(Reliability, TrailingSlashOutputIsWrittenAndNotReplacedWithoutForce) {
  auto r = generate("y/");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(names(dir_ / "y"), (std::vector<std::string>{"000000.png", "run.json"}));
  EXPECT_EQ(names(dir_), std::vector<std::string>{"y"});  // no staging folder or lock file left beside it
  const std::string first = read(dir_ / "y" / "run.json");
  // The check runs before any work: an occupied --out fails at once and leaves the first run intact.
  r = generate("y");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--force");
  EXPECT_EQ(read(dir_ / "y" / "run.json"), first);
  // --force replaces diffbench's own folder.
  r = generate("y/", "--force --seed 7");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(read(dir_ / "y" / "run.json"), first);
  EXPECT_EQ(names(dir_), std::vector<std::string>{"y"});
}

TEST_F(Reliability, ASecondEvalIntoTheSameOutFailsWithoutForce) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip/config.json"));
  std::ofstream(dir_ / "spec.toml") << "[pipeline]\nmodel = \"" << test::fixture("tiny-sd").string() << "\"\nsteps = 2\n";
  std::ofstream(dir_ / "p.txt") << "a red cube\n";
  fs::create_directories(dir_ / "rep");
  std::ofstream(dir_ / "rep" / "report.json") << "{\"first\": true}";  // an earlier eval's report
  const auto r = run_in(dir_, "eval spec.toml --prompts p.txt --clip " + shell_quote(test::fixture("tiny-clip").string()) +
                                  " --repeats 1 --num-samples 1 --out rep/ --quiet --allow-identical");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "not empty");
  EXPECT_EQ(read(dir_ / "rep" / "report.json"), "{\"first\": true}");
}

TEST_F(Reliability, ConfigValuesOutOfBoundsAreExit2NamingFileAndKey) {
  struct Case {
    std::string file, key;
    nlohmann::json value;
  };
  const std::vector<Case> cases = {
      {"unet/config.json", "attention_head_dim", 0},  // SIGFPE before
      {"unet/config.json", "norm_num_groups", 0},     // SIGFPE before
      {"unet/config.json", "block_out_channels", {1000000000, 64, 64, 64}},
      {"unet/config.json", "layers_per_block", 1000000000},
      {"unet/config.json", "sample_size", 1e9},
      {"unet/config.json", "in_channels", -4},
      {"vae/config.json", "norm_num_groups", 0},
      {"vae/config.json", "scaling_factor", 0},
      {"text_encoder/config.json", "num_attention_heads", 1000000000},
      {"text_encoder/config.json", "vocab_size", 0},
      {"scheduler/scheduler_config.json", "num_train_timesteps", 1e12},
      {"scheduler/scheduler_config.json", "num_train_timesteps", 1000000000000},
  };
  int i = 0;
  for (const auto& c : cases) {
    SCOPED_TRACE(c.file + " " + c.key + " = " + c.value.dump());
    const auto model = with_config("m" + std::to_string(i++), c.file, [&](nlohmann::json& j) { j[c.key] = c.value; });
    const auto r = generate("out", "", model);
    EXPECT_EQ(r.exit_code, 2) << r.output;
    EXPECT_CONTAINS(r.output, c.file);
    EXPECT_CONTAINS(r.output, c.key);
    EXPECT_FALSE(fs::exists(dir_ / "out"));
  }
}

TEST_F(Reliability, DeeplyNestedSchedulerConfigIsExit2) {
  // 150 000 levels crashed (stack overflow); 50 000 wrote a 4.7 GB run.json.
  const auto model = linked_copy("deep");
  auto j = read_json_file(model / "scheduler/scheduler_config.json");
  fs::remove(model / "scheduler/scheduler_config.json");
  std::string text = j.dump();
  text.insert(1, "\"junk\": " + std::string(150000, '[') + std::string(150000, ']') + ", ");
  std::ofstream(model / "scheduler/scheduler_config.json") << text;
  const auto r = generate("out", "", model);
  EXPECT_EQ(r.exit_code, 2) << r.output.substr(0, 2000);
  EXPECT_CONTAINS(r.output, "nested deeper");
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(Reliability, AFifoAsAConfigOrWeightsFileDoesNotHang) {
  for (const std::string file : {"unet/config.json", "vae/diffusion_pytorch_model.safetensors"}) {
    const auto model = linked_copy("fifo" + std::to_string(file.size()));
    fs::remove(model / file);
    ASSERT_EQ(::mkfifo((model / file).c_str(), 0600), 0);
    const auto r = generate("out", "", model);
    EXPECT_EQ(r.exit_code, 2) << file << ": " << r.output;  // 124 from timeout when it hangs
    EXPECT_CONTAINS(r.output, "not a regular file");
  }
  ASSERT_EQ(::mkfifo((dir_ / "spec.toml").c_str(), 0600), 0);
  const auto r = run_in(dir_, "generate --spec spec.toml --prompt x --out out");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}

TEST_F(Reliability, ImageSizesAreBounded) {
  for (const std::string size : {"0", "-64", "2147483640", "100000", "16392"}) {
    const auto r = run_in(dir_, "generate --model " + shell_quote(test::fixture("tiny-sd").string()) +
                                    " --prompt x --steps 2 --quiet --out out --height " + size);
    EXPECT_EQ(r.exit_code, 2) << size << ": " << r.output;
    EXPECT_CONTAINS(r.output, "--height");
  }
  std::ofstream(dir_ / "big.toml") << "[pipeline]\nmodel = \"" << test::fixture("tiny-sd").string()
                                   << "\"\nheight = 100000\n";
  const auto r = run_in(dir_, "generate --spec big.toml --prompt x --out out");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "out"));
}

TEST_F(Reliability, PromptFilesRejectEmptyPromptsAndNulBytes) {
  std::ofstream(dir_ / "empty.jsonl") << "{\"prompt\": \"a cat\"}\n{\"prompt\": \"\"}\n";
  std::ofstream(dir_ / "nul.jsonl") << "{\"prompt\": \"a\\u0000b\"}\n";
  for (const std::string file : {"empty.jsonl", "nul.jsonl"}) {
    const auto r = run_in(dir_, "generate --model " + shell_quote(test::fixture("tiny-sd").string()) + " --prompts " +
                                    file + " --steps 2 --quiet --out out");
    EXPECT_EQ(r.exit_code, 2) << file << ": " << r.output;
    EXPECT_CONTAINS(r.output, file);
  }
}

TEST_F(Reliability, BenchProfileToAnUnwritablePathFailsFirst) {
  std::ofstream(dir_ / "spec.toml") << "[pipeline]\nmodel = \"" << test::fixture("tiny-sd").string() << "\"\nsteps = 2\n";
  const auto r = run_in(dir_, "bench spec.toml --runs 1 --warmup 0 --profile no/such/folder/trace.json");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "--profile");
  EXPECT_EQ(r.output.find("seconds"), std::string::npos) << "failed after benchmarking: " << r.output;
}

TEST_F(Reliability, InitRandomRefusesABrokenTokenizer) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("clip-tokenizer/vocab.json"));
  fs::create_directories(dir_ / "tok");
  fs::copy_file(test::fixture("clip-tokenizer/vocab.json"), dir_ / "tok" / "vocab.json");
  std::ofstream(dir_ / "tok" / "merges.txt") << "#version: 0.2\nthis line is not a merge\n";
  const auto r = run_in(dir_, "init-random --arch tiny --tokenizer tok --out m");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_CONTAINS(r.output, "merges.txt");
  EXPECT_FALSE(fs::exists(dir_ / "m"));
}

TEST(ErrorMapping, HostAllocationFailureIsOutOfMemoryNamingTheSize) {
  // LibTorch's CPU allocator throws a plain c10::Error (not c10::OutOfMemoryError): main() used to
  // report it as an internal error (exit 3). is_out_of_memory() makes it exit 2 "out of memory".
  try {
    at::empty({int64_t(1) << 52}, at::kByte);
    ADD_FAILURE() << "a 4 PiB allocation succeeded";
  } catch (const c10::Error& e) {
    EXPECT_TRUE(is_out_of_memory(e)) << e.what_without_backtrace();
    EXPECT_NE(std::string(e.what_without_backtrace()).find(std::to_string(int64_t(1) << 52)), std::string::npos)
        << e.what_without_backtrace();
  }
  try {
    at::ones({2}).view({3});
  } catch (const c10::Error& e) {
    EXPECT_FALSE(is_out_of_memory(e)) << e.what_without_backtrace();
  }
}
