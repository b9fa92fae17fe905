// eval's protocol defaults: the bundled prompts and the CLIP scorer found by id in the hub cache.
#include <cstdlib>
#include <fstream>

#include "cli/cli_support.hpp"
#include "diffbench/eval/protocol.hpp"
#include "diffbench/io/json_config.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

// A hub cache whose snapshot of `id` links to the files of `folder`, as huggingface_hub's symlinks do.
void cache_folder_as(const fs::path& cache, const std::string& id, const fs::path& folder) {
  const std::string commit(40, 'c');
  const fs::path repo = cache / ("models--" + id.substr(0, id.find('/')) + "--" + id.substr(id.find('/') + 1));
  fs::create_directories(repo / "refs");
  fs::create_directories(repo / "snapshots" / commit);
  std::ofstream(repo / "refs" / "main") << commit;
  for (const auto& e : fs::directory_iterator(folder))
    fs::create_symlink(fs::absolute(e.path()), repo / "snapshots" / commit / e.path().filename());
}

// `ENV diffbench ARGS` (ENV: shell assignments, already quoted).
CommandResult run_with_env(const std::string& env, const std::string& args) {
  CommandResult r;
  const std::string cmd = env + " " + shell_quote(DIFFBENCH_BINARY) + " " + args + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  if (!p) return r;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) r.output.append(buf, n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

}  // namespace

TEST(ProtocolDefaults, EvalWithoutPromptsOrClipUsesTheDefaults) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip/config.json"));
  const fs::path dir = test::temp_dir("protocol-defaults");
  const fs::path cache = dir / "hub";
  fs::create_directories(cache);
  cache_folder_as(cache, "acme/tiny-sd", test::fixture("tiny-sd"));
  std::ofstream(dir / "cand.toml") << "[pipeline]\nmodel = \"acme/tiny-sd\"\nsteps = 4\n"
                                   << "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 2\n";
  const std::string env = "HF_HUB_CACHE=" + shell_quote(cache.string());
  const std::string spec = shell_quote((dir / "cand.toml").string());

  // No scorer in the cache: exit 2 naming the ids and the download command.
  CommandResult r = run_with_env(env, "eval " + spec + " --out " + shell_quote((dir / "r0").string()));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  for (const auto& id : default_clip_ids()) EXPECT_NE(r.output.find(id), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("hf download " + default_clip_ids()[0]), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir / "r0"));

  // The last listed scorer cached (tiny-clip under its name): eval runs with no --prompts or --clip.
  cache_folder_as(cache, default_clip_ids().back(), test::fixture("tiny-clip"));
  r = run_with_env(env, "eval " + spec + " --repeats 1 --num-samples 2 --batch-size 2 --warmup 0 --max-quality-loss 100 --json --out " + shell_quote((dir / "r1").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rep = read_json_file(dir / "r1" / "report.json");
  const auto& proto = rep["protocol"];
  EXPECT_EQ(proto["prompts_source"], "coco2017-val");
  EXPECT_EQ(proto["prompts"][0], "A man is in a kitchen making pizzas.");
  EXPECT_EQ(proto["clip_source"]["id"], default_clip_ids().back());
  EXPECT_EQ(proto["clip_source"]["commit"], std::string(40, 'c'));
  EXPECT_TRUE(proto["clip_source"]["default"].get<bool>());
  const auto& used = proto["defaults_used"];
  auto has = [&](const std::string& s) { return std::find(used.begin(), used.end(), s) != used.end(); };
  EXPECT_TRUE(has("--prompts=coco2017-val")) << used;
  EXPECT_TRUE(has("--clip=" + default_clip_ids().back())) << used;
  EXPECT_TRUE(has("--seed=42")) << used;
  EXPECT_FALSE(has("--num-samples=2")) << used;  // given, so not a default
  EXPECT_EQ(rep["candidate"]["spec"]["hub"]["id"], "acme/tiny-sd");
  EXPECT_EQ(rep["candidate"]["spec"]["hub"]["commit"], std::string(40, 'c'));
  std::ifstream md(dir / "r1" / "report.md");
  const std::string text((std::istreambuf_iterator<char>(md)), std::istreambuf_iterator<char>());
  EXPECT_NE(text.find("Defaults used: `--prompts=coco2017-val`"), std::string::npos) << text;
  fs::remove_all(dir);
}

TEST(ProtocolDefaults, HelpShowsDefaultValues) {
  const auto r = run_diffbench("eval --help");
  EXPECT_EQ(r.exit_code, 0);
  EXPECT_NE(r.output.find("--prompts TEXT=coco2017-val"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--num-samples UINT=32"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("laion/CLIP-ViT-g-14-laion2B-s34B-b88K"), std::string::npos) << r.output;
}
