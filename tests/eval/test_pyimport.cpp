// import-py: Python pipeline files (tests/eval/data/py) read statically into pipeline specs.
#include <cstdlib>
#include <fstream>

#include "cli/cli_support.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/pyimport.hpp"
#include "diffbench/io/json_config.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;
using nlohmann::json;

namespace {

fs::path data_dir() { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests" / "eval" / "data" / "py"; }

std::vector<fs::path> files(const std::string& prefix, bool bad) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(data_dir())) {
    const std::string name = e.path().filename().string();
    if (e.path().extension() == ".py" && (name.rfind("bad_", 0) == 0) == bad && name.rfind(prefix, 0) == 0)
      out.push_back(e.path());
  }
  std::sort(out.begin(), out.end());
  return out;
}

// The spec's fields in the expected files' vocabulary (defaults filled in).
json summary(const PipelineSpec& s) {
  json acc = json::array();
  for (const auto& a : s.accelerate) acc.push_back({{"method", a.method}, {"params", a.params}});
  return {{"model", s.model_ref},   {"dtype", s.dtype},         {"device", s.device},
          {"steps", s.steps},       {"guidance", s.guidance},   {"height", s.height},
          {"width", s.width},       {"scheduler", s.scheduler}, {"scheduler_options", s.scheduler_options},
          {"variant", s.variant},   {"revision", s.revision},   {"accelerate", acc}};
}

json expected_for(const fs::path& py) {
  json e = read_json_file(fs::path(py).replace_extension(".expected.json"));
  const json defaults = {{"height", 0},   {"width", 0},    {"scheduler", ""}, {"scheduler_options", json::object()},
                         {"variant", ""}, {"revision", ""}};
  for (auto it = defaults.begin(); it != defaults.end(); ++it)
    if (!e.contains(it.key())) e[it.key()] = it.value();
  return e;
}

std::string read_text(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

}  // namespace

TEST(PyImport, ExamplesGiveTheirExpectedSpecs) {
  const auto examples = files("", false);
  ASSERT_GE(examples.size(), 10u);
  for (const auto& py : examples) {
    SCOPED_TRACE(py.filename().string());
    const PyImport r = import_python(py);
    EXPECT_EQ(summary(r.spec), expected_for(py));
    EXPECT_EQ(r.spec.file, py);
    EXPECT_EQ(r.spec.origin["python"], py.string());
    EXPECT_FALSE(r.statements.empty());
    // Every statement of the file is accounted for once, as translated or as ignored.
    for (const auto& s : r.statements) EXPECT_FALSE(s["became"].get<std::string>().empty()) << s;
  }
}

TEST(PyImport, StatementTableSaysWhatEachLineBecame) {
  const PyImport r = import_python(data_dir() / "functions.py");
  std::map<int, std::string> became, why;
  for (const auto& s : r.statements) became[s["line"]] = s["became"];
  for (const auto& s : r.ignored) why[s["line"]] = s["why"];
  EXPECT_EQ(became[14], "model = \"runwayml/stable-diffusion-v1-5\", dtype = \"fp16\"");
  EXPECT_EQ(became[15], "scheduler = \"euler\"");
  EXPECT_EQ(became[16], "device = \"cuda\"");
  EXPECT_EQ(became[21], "deepcache cache_branch_id=0 cache_interval=4 skip_mode=\"uniform\"");
  EXPECT_EQ(became[22], "[[accelerate]] deepcache");
  EXPECT_EQ(became[34], "steps = 30, guidance = 7.0");
  EXPECT_NE(why[23].find("memory option"), std::string::npos) << why[23];
  EXPECT_NE(why[35].find("print"), std::string::npos) << why[35];
  const PyImport ign = import_python(data_dir() / "ignored.py");
  std::string all;
  for (const auto& s : ign.ignored) all += std::to_string(s["line"].get<int>()) + ": " + s["why"].get<std::string>() + "\n";
  for (const char* why_text : {"8: torch.backends setting", "12: memory option", "14: attention backend", "15: progress bar",
                               "16: torch.compile of a component", "17: memory format", "22: timing", "24: saves an image",
                               "26: file system or process call"})
    EXPECT_NE(all.find(why_text), std::string::npos) << why_text << " in\n" << all;
}

TEST(PyImport, RefusedFilesNameFileLineAndStatement) {
  const auto bad = files("bad_", true);
  ASSERT_GE(bad.size(), 8u);
  for (const auto& py : bad) {
    SCOPED_TRACE(py.filename().string());
    // First line: "# expect-error: LINE: TEXT" (LINE 0: the error names the file only).
    const std::string head = read_text(py).substr(0, read_text(py).find('\n'));
    const std::string spec = head.substr(head.find(':') + 2);
    const int line = std::stoi(spec);
    const std::string what = spec.substr(spec.find(':') + 2);
    try {
      import_python(py);
      ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), line ? py.string() + ":" + std::to_string(line) : py.string()) << e.what();
      EXPECT_NE(std::string(e.what()).find(what), std::string::npos) << e.what();
      EXPECT_EQ(e.exit_code(), 2);
    }
  }
}

TEST(PyImport, RefusalPointsToPlugins) {
  try {
    import_python(data_dir() / "bad_unknown_helper.py");
    FAIL();
  } catch (const InputError& e) {
    EXPECT_NE(e.message().find("`my_fast_attention(pipe)`"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("docs/plugins.md"), std::string::npos) << e.what();
  }
}

TEST(PyImport, FileIsNeverRun) {
  const fs::path dir = test::temp_dir("pyimport-side-effects");
  const fs::path py = dir / "side_effects.py";
  fs::copy_file(data_dir() / "side_effects.py", py);
  const PyImport r = import_python(py);
  EXPECT_EQ(r.spec.model_ref, "runwayml/stable-diffusion-v1-5");
  EXPECT_FALSE(fs::exists(dir / "ran.txt"));
  auto cli = run_diffbench("import-py " + shell_quote(py.string()));
  EXPECT_EQ(cli.exit_code, 0) << cli.output;
  EXPECT_FALSE(fs::exists(dir / "ran.txt"));
  // The control: running the file does leave the trace and exits 7.
  const int status = std::system(("python3 " + shell_quote(py.string()) + " 2>/dev/null").c_str());
  EXPECT_EQ(WEXITSTATUS(status), 7);
  EXPECT_TRUE(fs::exists(dir / "ran.txt"));
  fs::remove_all(dir);
}

TEST(PyImport, WithoutPythonExits2SayingSo) {
  const fs::path dir = test::temp_dir("pyimport-no-python");
  auto r = run_diffbench("import-py " + shell_quote((data_dir() / "tome.py").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const std::string cmd = "env -u DIFFBENCH_PYTHON PATH=" + shell_quote(dir.string()) + " " + shell_quote(DIFFBENCH_BINARY) +
                          " import-py " + shell_quote((data_dir() / "tome.py").string()) + " 2>&1";
  FILE* p = ::popen(cmd.c_str(), "r");
  ASSERT_NE(p, nullptr);
  std::string out;
  char buf[4096];
  size_t n;
  while ((n = std::fread(buf, 1, sizeof buf, p)) > 0) out.append(buf, n);
  const int status = ::pclose(p);
  EXPECT_EQ(WEXITSTATUS(status), 2) << out;
  EXPECT_NE(out.find("no python3 was found"), std::string::npos) << out;
  fs::remove_all(dir);
}

TEST(PyImport, TomlOutputReadsBackAsTheSameSpec) {
  for (const auto& py : files("", false)) {
    SCOPED_TRACE(py.filename().string());
    const PyImport r = import_python(py);
    const PipelineSpec back = parse_spec(to_toml(r), "/x/back.toml");
    json a = summary(r.spec), b = summary(back);
    EXPECT_EQ(a, b);
  }
}

TEST(PyImport, CliJsonHasSpecStatementsAndIgnored) {
  const fs::path py = data_dir() / "deepcache_tome.py";
  auto r = run_diffbench("import-py " + shell_quote(py.string()) + " --json 2>/dev/null");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const json j = json::parse(r.output);
  EXPECT_EQ(j["spec"]["accelerate"].size(), 2u);
  EXPECT_EQ(j["spec"]["accelerate"][1]["method"], "deepcache");
  EXPECT_EQ(j["statements"][0]["line"], 7);
  EXPECT_TRUE(j["ignored"].is_array());
  r = run_diffbench("import-py " + shell_quote((data_dir() / "bad_lora.py").string()));
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find((data_dir() / "bad_lora.py").string() + ":5"), std::string::npos) << r.output;
}

// eval of a .py file and of the equivalent TOML spec: the same pipelines, the same numbers.
TEST(PyImport, EvalOfPyMatchesEvalOfSpec) {
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-sd/model_index.json"));
  DIFFBENCH_REQUIRE_FIXTURE(test::fixture("tiny-clip/config.json"));
  const fs::path dir = test::temp_dir("pyimport-eval");
  const std::string model = test::fixture("tiny-sd").string();
  std::ofstream(dir / "1_gen.py") << "import torch\nfrom diffusers import StableDiffusionPipeline, DDIMScheduler\n"
                                     "from DeepCache import DeepCacheSDHelper\n"
                                  << "pipe = StableDiffusionPipeline.from_pretrained(" << json(model).dump()
                                  << ", safety_checker=None)\n"
                                     "pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)\n"
                                     "helper = DeepCacheSDHelper(pipe=pipe)\n"
                                     "helper.set_params(cache_interval=3, cache_branch_id=0)\nhelper.enable()\n"
                                     "image = pipe('a cat', num_inference_steps=4, guidance_scale=7.5).images[0]\n";
  std::ofstream(dir / "spec.toml") << "[pipeline]\nmodel = " << json(model).dump()
                                   << "\nscheduler = \"ddim\"\nsteps = 4\nguidance = 7.5\n"
                                      "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\ncache_branch_id = 0\n";
  const std::string common = " --prompts demo --repeats 1 --num-samples 2 --batch-size 2 --warmup 0 --clip " +
                             shell_quote(test::fixture("tiny-clip").string()) + " --json --out ";
  // The random tiny scorer may give these prompts a CLIP score of 0, which makes the quality loss
  // undefined and fails the default threshold (exit 1): both routes must end the same way.
  auto a = run_diffbench("eval " + shell_quote((dir / "1_gen.py").string()) + common + shell_quote((dir / "a").string()));
  ASSERT_TRUE(a.exit_code == 0 || a.exit_code == 1) << a.output;
  auto b = run_diffbench("eval " + shell_quote((dir / "spec.toml").string()) + common + shell_quote((dir / "b").string()));
  EXPECT_EQ(b.exit_code, a.exit_code) << b.output;
  const json ra = read_json_file(dir / "a" / "report.json"), rb = read_json_file(dir / "b" / "report.json");
  for (const char* run : {"baseline", "candidate"}) {
    EXPECT_EQ(ra[run]["per_sample_clip"], rb[run]["per_sample_clip"]) << run;
    EXPECT_EQ(ra[run]["unet_calls_per_image"], rb[run]["unet_calls_per_image"]) << run;
    EXPECT_EQ(ra[run]["methods"], rb[run]["methods"]) << run;
  }
  EXPECT_EQ(ra["quality_loss_pct"], rb["quality_loss_pct"]);
  EXPECT_EQ(ra["paired"], rb["paired"]);
  // The report records the source file and the statement table.
  const json& origin = ra["candidate"]["spec"]["origin"];
  EXPECT_EQ(origin["python"], (dir / "1_gen.py").string());
  EXPECT_EQ(origin["pipeline_class"], "StableDiffusionPipeline");
  EXPECT_EQ(origin["statements"].size(), 5u) << origin;
  fs::remove_all(dir);
}
