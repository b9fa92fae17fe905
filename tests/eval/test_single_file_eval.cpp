// `eval` on single-file checkpoints with each acceleration method, through `diffbench suite` (one
// process runs every candidate through the evaluator; one plain `eval` besides): the original-layout
// file of tiny-sd with a LoRA, and the tiny SDXL file, each beside the same candidates on the equivalent
// diffusers folder. Both forms load the same weights, so every baseline and candidate image must be the
// folder's byte for byte (tests/pipeline/test_single_file.cpp shows it for plain generations); the
// same-model check accepts each candidate against its baseline, and each method acts (its counters,
// images unlike the baseline's).
#include <fstream>
#include <map>

#include "cli/cli_support.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "eval/eval_fixture.hpp"
#include "pipeline/single_file_support.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

fs::path data_dir() { return fs::path(DIFFBENCH_SOURCE_DIR) / "tests/pipeline/data"; }

struct MethodCase {
  std::string name, accelerate, counter;
};

class SingleFileEval : public test::EvalFixture {
 protected:
  // Writes FORM-METHOD.toml for each model form (name -> [pipeline] and [[lora]] tables) and method into
  // one folder and runs it as a suite: no --baseline, so each candidate's baseline is itself without its
  // method, one baseline run per form. Two prompts in one batch, no warm-up, sequential schedule: the
  // baselines run once. Returns suite.json.
  nlohmann::json run_suite(const std::map<std::string, std::string>& forms, const std::vector<MethodCase>& methods) {
    const fs::path cands = dir_ / "candidates";
    fs::create_directories(cands);
    for (const auto& [form, model] : forms)
      for (const auto& m : methods) std::ofstream(cands / (form + "-" + m.name + ".toml")) << model << m.accelerate;
    out_ = dir_ / "suite";
    const auto r = run_diffbench("suite " + shell_quote(cands.string()) + " --prompts " +
                                 shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                                 " --num-samples 2 --batch-size 2 --repeats 1 --warmup 0 --schedule sequential"
                                 " --max-quality-loss 100 --clip " +
                                 shell_quote(test::fixture("tiny-clip").string()) + " --out " + shell_quote(out_.string()) +
                                 " --quiet");
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return read_json_file(out_ / "suite.json");
  }

  // The candidate FORM-METHOD's report, checked: passed, the same model on both sides (LoRA included), the
  // method acted and changed the images.
  nlohmann::json report(const std::string& form, const MethodCase& m, bool lora) {
    const std::string name = form + "-" + m.name;
    SCOPED_TRACE(name);
    const auto rep = read_json_file(out_ / name / "report.json");
    EXPECT_TRUE(rep["passed"].get<bool>()) << rep["failures"].dump();
    EXPECT_TRUE(rep["consistency"]["same_model"].get<bool>()) << rep["consistency"].dump();
    if (lora) EXPECT_TRUE(rep["consistency"]["components"]["lora"]["identical"].get<bool>()) << rep["consistency"].dump();
    const auto& methods = rep["candidate"]["methods"];
    EXPECT_EQ(methods.size(), 1u) << methods.dump();
    if (!methods.empty()) EXPECT_GT(methods[0]["stats"][m.counter].get<int64_t>(), 0) << methods.dump();
    EXPECT_LT(rep["metrics"]["psnr"]["mean"].get<double>(), kPsnrCapDb);  // the method changed the images
    return rep;
  }

  // Every baseline and candidate PNG of `single`-METHOD equals folder-METHOD's byte for byte.
  void expect_same_pngs(const std::string& single, const std::string& folder, const std::vector<MethodCase>& methods) {
    for (const auto& m : methods)
      for (const char* which : {"baseline", "candidate"})
        for (const char* png : {"000000.png", "000001.png"}) {
          const fs::path a = out_ / (folder + "-" + m.name) / which / png, b = out_ / (single + "-" + m.name) / which / png;
          ASSERT_TRUE(fs::exists(a)) << a;
          EXPECT_TRUE(test::read_bytes(a) == test::read_bytes(b))
              << m.name << " " << which << " " << png << " differs from the folder's: max abs pixel difference "
              << test::max_abs_diff(read_png(a), read_png(b));
        }
  }

  static std::string lora(const fs::path& file, double scale) {
    return "[[lora]]\nfile = " + nlohmann::json(file.string()).dump() + "\nscale = " + std::to_string(scale) + "\n";
  }

  fs::path out_;
};

// A suite's baselines, one per form: run, not shared or taken from a cache (the images compared are
// each form's own).
void expect_one_baseline_per_form(const nlohmann::json& suite, size_t forms) {
  EXPECT_EQ(suite["baseline_runs"]["generated"], forms) << suite["baseline_runs"].dump();
  EXPECT_EQ(suite["baselines"].size(), forms);
  EXPECT_EQ(suite["tally"]["passed"], 3 * forms) << suite["tally"].dump();
}

}  // namespace

// SD 1.x: tiny-sd's original-layout file (its configs from the folder: the tiny model's 2 heads cannot
// be seen in the tensors) with tiny-sd's kohya LoRA, against tiny-sd with the same LoRA.
TEST_F(SingleFileEval, Sd1FileWithLoraEachMethodAsTheFolder) {
  const fs::path tiny_sd = test::fixture("tiny-sd");
  const fs::path file = dir_ / "sd1.safetensors";
  save_safetensors(file, test::original_layout(tiny_sd, CheckpointFamily::SD1, false));
  const std::string settings = "steps = 6\nguidance = 7.5\nheight = 64\nwidth = 64\n";
  const std::string lora_table = lora(data_dir() / "tiny-sd-lora.kohya.safetensors", 0.7);
  const std::map<std::string, std::string> forms = {
      {"folder", "[pipeline]\nmodel = " + nlohmann::json(tiny_sd.string()).dump() + "\n" + settings + lora_table},
      {"single", "[pipeline]\nmodel = " + nlohmann::json(file.string()).dump() + "\nconfig = " +
                     nlohmann::json(tiny_sd.string()).dump() + "\n" + settings + lora_table}};
  // PNDM, 6 steps: 7 UNet calls.
  const std::vector<MethodCase> methods = {
      {"deepcache", "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\ncache_branch_id = 0\n", "partial_calls"},
      {"tome", "[[accelerate]]\nmethod = \"tome\"\nratio = 0.5\n", "merging_block_calls"},
      {"tgate", "[[accelerate]]\nmethod = \"tgate\"\ngate_step = 3\n", "single_branch_steps"}};
  const auto suite = run_suite(forms, methods);
  expect_one_baseline_per_form(suite, 2);
  for (const auto& m : methods) {
    report("folder", m, true);
    const auto rep = report("single", m, true);
    // The single file's weights were loaded (not the config folder's), and the LoRA fused into them.
    EXPECT_EQ(rep["consistency"]["pipeline_type"]["candidate"], "SD 1.x single file") << rep["consistency"].dump();
    EXPECT_EQ(rep["consistency"]["components"]["unet"]["candidate_file"], fs::weakly_canonical(file).string());
    const auto& load = rep["candidate"]["load_s"];
    EXPECT_EQ(load["source"]["layout"], "single_file") << load.dump();
    EXPECT_EQ(load["lora"][0]["layers"]["unet"], 128) << load.dump();
  }
  expect_same_pngs("single", "folder", methods);

  // The eval command itself on its default schedule (both pipelines loaded at once, the baseline's text
  // encoder and UNet, LoRA fused, and VAE shared with the candidate): the suite's images again.
  const fs::path spec = write_spec("single-eval", forms.at("single") + methods[0].accelerate);
  const auto r = run_diffbench("eval " + shell_quote(spec.string()) + " --prompts " +
                               shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                               " --num-samples 2 --batch-size 2 --repeats 1 --warmup 0 --max-quality-loss 100 --clip " +
                               shell_quote(test::fixture("tiny-clip").string()) + " --out " +
                               shell_quote((dir_ / "eval").string()) + " --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto rep = read_json_file(dir_ / "eval" / "report.json");
  EXPECT_TRUE(rep["consistency"]["same_model"].get<bool>()) << rep["consistency"].dump();
  EXPECT_EQ(rep["schedule"]["schedule"], "interleaved") << rep["schedule"].dump();
  EXPECT_EQ(rep["candidate"]["reused_components"], nlohmann::json({"text_encoder", "unet", "vae"}));
  EXPECT_EQ(rep["candidate"]["load_s"]["lora"][0]["layers"]["unet"], 128) << "the shared UNet holds the LoRA";
  for (const char* which : {"baseline", "candidate"})
    for (const char* png : {"000000.png", "000001.png"})
      EXPECT_TRUE(test::read_bytes(dir_ / "eval" / which / png) == test::read_bytes(out_ / "folder-deepcache" / which / png))
          << which << " " << png;
}

// SDXL: the tiny SDXL pipeline with SDXL base's UNet block structure (which the original layout needs),
// as a folder and as its original-layout file (configs from the folder: the tiny added-time embedding
// width cannot be seen), each with the text-encoder part of the tiny SDXL's kohya LoRA (its UNet part
// fits tiny-sdxl's UNet, not this one).
TEST_F(SingleFileEval, SdxlFileWithLoraEachMethodAsTheFolder) {
  const fs::path folder = dir_ / "tiny-sdxl-l2";
  test::write_sdxl_l2_folder(data_dir(), folder);
  const fs::path file = dir_ / "sdxl.safetensors";
  save_safetensors(file, test::original_layout(folder, CheckpointFamily::SDXL, true));
  StateDict text_lora;
  for (const auto& [k, t] : load_safetensors(data_dir() / "tiny-sdxl-lora.kohya.safetensors"))
    if (k.rfind("lora_te", 0) == 0) text_lora[k] = t;
  save_safetensors(dir_ / "text-lora.safetensors", text_lora);
  const std::string settings = "steps = 6\nguidance = 5.0\n" + lora(dir_ / "text-lora.safetensors", 0.8);
  const std::map<std::string, std::string> forms = {
      {"folder", "[pipeline]\nmodel = " + nlohmann::json(folder.string()).dump() + "\n" + settings},
      {"single", "[pipeline]\nmodel = " + nlohmann::json(file.string()).dump() + "\nconfig = " +
                     nlohmann::json(folder.string()).dump() + "\n" + settings}};
  // Euler, 6 steps. ToMe merges on SDXL only below the first level (docs/models.md).
  const std::vector<MethodCase> methods = {
      {"deepcache", "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 3\n", "partial_calls"},
      {"tome", "[[accelerate]]\nmethod = \"tome\"\nratio = 0.5\nmax_downsample = 2\n", "merging_block_calls"},
      {"tgate", "[[accelerate]]\nmethod = \"tgate\"\ngate_step = 3\n", "single_branch_steps"}};
  const auto suite = run_suite(forms, methods);
  expect_one_baseline_per_form(suite, 2);
  for (const auto& m : methods) {
    const auto f = report("folder", m, true);
    EXPECT_EQ(f["consistency"]["pipeline_type"]["candidate"], "StableDiffusionXLPipeline");
    const auto rep = report("single", m, true);
    EXPECT_EQ(rep["consistency"]["pipeline_type"]["candidate"], "SDXL single file") << rep["consistency"].dump();
    EXPECT_TRUE(rep["consistency"]["components"]["text_encoder_2"]["identical"].get<bool>()) << rep["consistency"].dump();
    EXPECT_EQ(rep["consistency"]["components"]["unet"]["candidate_file"], fs::weakly_canonical(file).string());
    const auto& load = rep["candidate"]["load_s"];
    EXPECT_EQ(load["source"]["layout"], "single_file") << load.dump();
    EXPECT_EQ(load["lora"][0]["layers"]["text_encoder_2"], 12) << load.dump();
  }
  expect_same_pngs("single", "folder", methods);
}
