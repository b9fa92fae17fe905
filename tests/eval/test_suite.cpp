// `diffbench suite`, `diffbench sweep` and the baseline cache end to end on tiny-sd with the
// tiny-clip scorer: few prompts, few steps (the runs are small on purpose).
#include <cmath>
#include <fstream>

#include "cli/cli_support.hpp"
#include "diffbench/eval/sweep.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class SuiteCli : public test::EvalFixture {
 protected:
  std::string spec(int steps, const std::string& accel = "", const fs::path& model = {}) const {
    return "[pipeline]\nmodel = \"" + (model.empty() ? test::fixture("tiny-sd") : model).string() +
           "\"\nsteps = " + std::to_string(steps) + "\nguidance = 7.5\n" + accel;
  }
  static std::string deepcache(int interval) {
    return "[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = " + std::to_string(interval) +
           "\ncache_branch_id = 0\n";
  }
  // Two prompts in one batch, no warm-up; thresholds loose except the one a test sets.
  std::string common(const fs::path& out, int samples = 2) const {
    return " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
           " --repeats 1 --num-samples " + std::to_string(samples) + " --batch-size 2 --warmup 0 --max-quality-loss 100 --clip " +
           shell_quote(test::fixture("tiny-clip").string()) + " --out " + shell_quote(out.string());
  }
  static std::string read(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  // tiny-sd with one byte of its UNet weights changed: another model.
  fs::path other_model() const {
    const fs::path m = dir_ / "other-sd";
    fs::copy(test::fixture("tiny-sd"), m, fs::copy_options::recursive);
    const fs::path unet = m / "unet" / "diffusion_pytorch_model.safetensors";
    test::flip_last_byte(unet);
    return m;
  }
};

const nlohmann::json& row(const nlohmann::json& suite, const std::string& name) {
  for (const auto& r : suite["rows"])
    if (r["name"] == name) return r;
  static const nlohmann::json none;
  ADD_FAILURE() << "no row " << name;
  return none;
}

}  // namespace

// Five candidates against one --baseline, sequential: the baseline runs once; the malformed file,
// the candidate of another model and the one below --min-ssim are recorded with their reasons.
TEST_F(SuiteCli, FiveCandidatesOneBaseline) {
  const fs::path cands = dir_ / "candidates";
  fs::create_directories(cands);
  auto put = [&](const std::string& name, const std::string& body) { std::ofstream(cands / name) << body; };
  put("a-dc2.toml", spec(10, deepcache(2)));
  put("b-dc3.toml", spec(10, deepcache(3)));
  put("c-steps1.toml", spec(1));
  put("d-malformed.toml", "[pipeline\nmodel = \n");
  put("e-other.toml", spec(10, deepcache(2), other_model()));
  const fs::path base = write_spec("base", spec(10));
  const fs::path out = dir_ / "suite";
  // SSIM against the 10-step baseline: about 0.93 for DeepCache every 2 steps, 0.95 every 3, 0.64 for a
  // single step (measured on tiny-sd; the assertions below print them); 0.85 lies between.
  auto r = run_diffbench("suite " + shell_quote(cands.string()) + " --baseline " + shell_quote(base.string()) +
                         common(out) + " --schedule sequential --min-ssim 0.85 --no-baseline-cache");
  ASSERT_EQ(r.exit_code, 1) << r.output;
  EXPECT_NE(r.output.find("2 of 5 passed"), std::string::npos) << r.output;
  const auto s = read_json_file(out / "suite.json");
  EXPECT_EQ(s["schema"], "diffbench.suite/1");
  EXPECT_EQ(s["baseline_runs"]["generated"], 1) << s["baseline_runs"].dump();
  EXPECT_EQ(s["baseline_runs"]["retimed_with_candidate"], 0);
  EXPECT_EQ(s["tally"], nlohmann::json({{"passed", 2}, {"fidelity", 1}, {"invalid_spec", 1}, {"config_mismatch", 1}}))
      << s.dump(1);
  const auto& a = row(s, "a-dc2");
  const auto& b = row(s, "b-dc3");
  EXPECT_EQ(a["status"], "passed") << a.dump();
  EXPECT_EQ(b["status"], "passed") << b.dump();
  EXPECT_EQ(a["baseline"]["source"], "run");
  EXPECT_EQ(b["baseline"]["source"], "suite");
  EXPECT_EQ(b["baseline"]["timing"], "reused");
  EXPECT_GT(a["ssim"].get<double>(), 0.85);
  const auto& c = row(s, "c-steps1");
  EXPECT_EQ(c["reason"], "fidelity") << c.dump();
  EXPECT_LT(c["ssim"].get<double>(), 0.85);
  EXPECT_EQ(row(s, "d-malformed")["reason"], "invalid_spec");
  EXPECT_NE(row(s, "d-malformed")["messages"][0].get<std::string>().find("d-malformed.toml"), std::string::npos);
  EXPECT_EQ(row(s, "e-other")["reason"], "config_mismatch") << row(s, "e-other").dump();
  ASSERT_EQ(s["baselines"].size(), 1u);
  EXPECT_EQ(s["baselines"][0]["ran_with"], "a-dc2");
  EXPECT_EQ(s["baselines"][0]["candidates"], nlohmann::json({"a-dc2", "b-dc3", "c-steps1"}));

  // Per candidate: a report, or error.json with the reason.
  const auto ra = read_json_file(out / "a-dc2" / "report.json");
  const auto rb = read_json_file(out / "b-dc3" / "report.json");
  EXPECT_FALSE(ra.contains("baseline_reuse"));
  EXPECT_EQ(rb["baseline_reuse"]["source"], "suite");
  EXPECT_EQ(rb["baseline_reuse"]["ran_with"], "a-dc2");
  EXPECT_EQ(rb["baseline_reuse"]["reused"], nlohmann::json({"images", "clip_scores", "timings"}));
  EXPECT_EQ(rb["baseline"]["per_sample_clip"], ra["baseline"]["per_sample_clip"]);
  EXPECT_EQ(rb["baseline"]["batch_seconds"], ra["baseline"]["batch_seconds"]);
  EXPECT_TRUE(read_png(out / "b-dc3" / "baseline" / "000001.png").equal(read_png(out / "a-dc2" / "baseline" / "000001.png")));
  EXPECT_EQ(read_json_file(out / "d-malformed" / "error.json")["reason"], "invalid_spec");
  EXPECT_TRUE(fs::exists(out / "e-other" / "error.json"));

  const std::string csv = read(out / "suite.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 6) << csv;
  EXPECT_EQ(csv.rfind("name,file,params,status,reason,", 0), 0u) << csv;
  EXPECT_NE(csv.find("\nc-steps1,"), std::string::npos) << csv;
  const std::string md = read(out / "suite.md");
  EXPECT_EQ(md.rfind("# diffbench suite: 2 of 5 candidates passed", 0), 0u) << md;
  EXPECT_NE(md.find("| invalid_spec | 1 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| c-steps1 | FAILED | fidelity: "), std::string::npos) << md;
}

// A .py pipeline among the candidates: read (not run) into a spec, evaluated against its own derived
// baseline (the same pipeline without DeepCache: DDIM, 4 steps), which the .toml candidate of the same
// pipeline shares; the PNDM candidate has another baseline. suite.html lists all three.
TEST_F(SuiteCli, PythonCandidateUsesItsDerivedBaseline) {
  const fs::path cands = dir_ / "candidates";
  fs::create_directories(cands);
  const std::string model = nlohmann::json(test::fixture("tiny-sd").string()).dump();
  std::ofstream(cands / "a_gen.py") << "import torch\nfrom diffusers import StableDiffusionPipeline, DDIMScheduler\n"
                                       "from DeepCache import DeepCacheSDHelper\n"
                                    << "pipe = StableDiffusionPipeline.from_pretrained(" << model
                                    << ", safety_checker=None)\n"
                                       "pipe.scheduler = DDIMScheduler.from_config(pipe.scheduler.config)\n"
                                       "helper = DeepCacheSDHelper(pipe=pipe)\n"
                                       "helper.set_params(cache_interval=3, cache_branch_id=0)\nhelper.enable()\n"
                                       "image = pipe('a cat', num_inference_steps=4, guidance_scale=7.5).images[0]\n";
  std::ofstream(cands / "b_dc.toml") << spec(4) << "scheduler = \"ddim\"\n" << deepcache(2);
  std::ofstream(cands / "c_pndm.toml") << spec(4, deepcache(2));
  const fs::path out = dir_ / "suite";
  auto r = run_diffbench("suite " + shell_quote(cands.string()) + common(out) + " --schedule sequential --no-baseline-cache");
  ASSERT_LE(r.exit_code, 1) << r.output;
  const auto s = read_json_file(out / "suite.json");
  ASSERT_EQ(s["rows"].size(), 3u) << s.dump(1);
  const auto& py = row(s, "a_gen");
  EXPECT_EQ(py["file"], (cands / "a_gen.py").string());
  ASSERT_EQ(py["report"], "a_gen/report.json") << py.dump();  // evaluated, not an invalid_spec
  EXPECT_TRUE(py["speedup"].is_number()) << py.dump();
  // Two baselines: DDIM (run by the .py candidate, reused by b_dc) and PNDM.
  EXPECT_EQ(s["baseline_runs"]["generated"], 2) << s["baseline_runs"].dump();
  ASSERT_EQ(s["baselines"].size(), 2u);
  EXPECT_EQ(s["baselines"][0]["ran_with"], "a_gen");
  EXPECT_EQ(s["baselines"][0]["candidates"], nlohmann::json({"a_gen", "b_dc"}));
  EXPECT_EQ(s["baselines"][1]["candidates"], nlohmann::json({"c_pndm"}));
  EXPECT_EQ(py["baseline"]["source"], "run");
  EXPECT_EQ(row(s, "b_dc")["baseline"]["source"], "suite");

  // The .py candidate's report: its pipeline as the file builds it, the baseline that pipeline
  // without DeepCache, both recorded as read from the file.
  const auto rep = read_json_file(out / "a_gen" / "report.json");
  EXPECT_EQ(rep["candidate"]["spec"]["scheduler"], "ddim");
  EXPECT_EQ(rep["candidate"]["spec"]["steps"], 4);
  ASSERT_EQ(rep["candidate"]["methods"].size(), 1u);
  EXPECT_EQ(rep["candidate"]["methods"][0]["method"], "deepcache");
  EXPECT_EQ(rep["candidate"]["methods"][0]["params"]["cache_interval"], 3);
  EXPECT_EQ(rep["baseline"]["spec"]["scheduler"], "ddim");
  EXPECT_EQ(rep["baseline"]["spec"]["steps"], 4);
  EXPECT_EQ(rep["baseline"]["methods"], nlohmann::json::array());
  EXPECT_EQ(rep["candidate"]["spec"]["origin"]["python"], (cands / "a_gen.py").string());
  EXPECT_EQ(rep["baseline"]["spec"]["origin"]["python"], (cands / "a_gen.py").string());
  // The baseline the .toml candidate reused is the one the .py candidate ran.
  const auto dc = read_json_file(out / "b_dc" / "report.json");
  EXPECT_EQ(dc["baseline_reuse"]["ran_with"], "a_gen");
  EXPECT_EQ(dc["baseline"]["per_sample_clip"], rep["baseline"]["per_sample_clip"]);
  EXPECT_TRUE(read_png(out / "b_dc" / "baseline" / "000000.png").equal(read_png(out / "a_gen" / "baseline" / "000000.png")));
  // suite.html: a row per candidate, each linking its report.html, which exists.
  const std::string html = read(out / "suite.html");
  size_t rows = 0;
  for (size_t p = html.find("class=\"candidate-row\""); p != std::string::npos; p = html.find("class=\"candidate-row\"", p + 1)) ++rows;
  EXPECT_EQ(rows, 3u);
  for (const char* name : {"a_gen", "b_dc", "c_pndm"}) {
    EXPECT_NE(html.find(std::string("href=\"") + name + "/report.html\""), std::string::npos) << name;
    EXPECT_TRUE(fs::exists(out / name / "report.html")) << name;
  }
}

// Interleaved: the second candidate reuses the baseline's images and scores but times the baseline
// again beside itself, and its regenerated images equal the reused ones.
TEST_F(SuiteCli, InterleavedSuiteRetimesTheSharedBaseline) {
  const fs::path a = write_spec("dc2", spec(4, deepcache(2))), b = write_spec("dc3", spec(4, deepcache(3)));
  const fs::path out = dir_ / "suite";
  auto r = run_shell_split("DIFFBENCH_BASELINE_CACHE=off " + shell_quote(DIFFBENCH_BINARY) + " suite " +
                            shell_quote(a.string()) + " " + shell_quote(b.string()) + common(out, 1) +
                            " --schedule interleaved --json");
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  const auto s = nlohmann::json::parse(r.out);  // --json: suite.json on stdout, nothing else
  EXPECT_EQ(s, read_json_file(out / "suite.json"));
  EXPECT_EQ(s["baseline_runs"]["generated"], 1);
  EXPECT_EQ(s["baseline_runs"]["retimed_with_candidate"], 1);
  EXPECT_EQ(row(s, "dc3")["baseline"], nlohmann::json({{"group", 0}, {"source", "suite"}, {"timing", "measured_now"}}));
  const auto rb = read_json_file(out / "dc3" / "report.json");
  EXPECT_EQ(rb["baseline_reuse"]["measured_now"], nlohmann::json({"timings"}));
  EXPECT_TRUE(rb["baseline_reuse"]["images_reproduced"].get<bool>());
  EXPECT_EQ(rb["schedule"]["order"], "BC");
}

// The cache: an identical second eval reuses the stored baseline (all of it, sequential); an
// interleaved one times the baseline again and finds the same images; another protocol misses.
TEST_F(SuiteCli, BaselineCacheHitAndMiss) {
  const fs::path cand = write_spec("dc", spec(10, deepcache(3)));
  const fs::path cache = dir_ / "cache";
  const std::string opts = " --baseline-cache " + shell_quote(cache.string());
  auto first = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "r1") + opts + " --schedule sequential");
  ASSERT_LE(first.exit_code, 1) << first.output;
  auto entries = [&] {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(cache)) n += fs::is_regular_file(e.path() / "entry.json");
    return n;
  };
  EXPECT_EQ(entries(), 1u);
  const auto r1 = read_json_file(dir_ / "r1" / "report.json");
  EXPECT_FALSE(r1.contains("baseline_reuse"));
  // The wall clock names the key's time (hashing the files) apart from the process's set-up.
  const auto& w1 = r1["wall_clock_s"];
  ASSERT_TRUE(w1.contains("baseline_cache_key")) << w1.dump();
  EXPECT_GT(w1["baseline_cache_key"].get<double>(), 0.0);
  EXPECT_GE(w1["process_setup"].get<double>(), 0.0);
  EXPECT_GE(w1["total"].get<double>(), w1["process_setup"].get<double>() + w1["baseline_cache_key"].get<double>() +
                                           w1["timed_generation"].get<double>());
  EXPECT_NE(read(dir_ / "r1" / "report.md").find("hashing files for the baseline cache's key"), std::string::npos);

  auto second = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "r2") + opts + " --schedule sequential");
  ASSERT_LE(second.exit_code, 1) << second.output;
  const auto r2 = read_json_file(dir_ / "r2" / "report.json");
  ASSERT_TRUE(r2.contains("baseline_reuse")) << second.output;
  EXPECT_EQ(r2["baseline_reuse"]["source"], "cache");
  EXPECT_EQ(r2["baseline_reuse"]["reused"], nlohmann::json({"images", "clip_scores", "timings"}));
  EXPECT_EQ(r2["baseline"]["batch_seconds"], r1["baseline"]["batch_seconds"]);
  EXPECT_EQ(r2["baseline"]["per_sample_clip"], r1["baseline"]["per_sample_clip"]);
  EXPECT_EQ(r2["schedule"]["order"], "C");  // the baseline did not run
  EXPECT_NE(read(dir_ / "r2" / "report.md").find("baseline images and CLIP scores reused from cache"), std::string::npos);

  auto third = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "r3") + opts + " --schedule interleaved");
  ASSERT_LE(third.exit_code, 1) << third.output;
  const auto r3 = read_json_file(dir_ / "r3" / "report.json");
  EXPECT_EQ(r3["baseline_reuse"]["measured_now"], nlohmann::json({"timings"}));
  EXPECT_TRUE(r3["baseline_reuse"]["images_reproduced"].get<bool>());
  EXPECT_EQ(r3["schedule"]["order"], "BC");
  EXPECT_EQ(r3["baseline"]["per_sample_clip"], r1["baseline"]["per_sample_clip"]);
  EXPECT_EQ(r3["baseline_reuse"]["reproduction"], nlohmann::json({{"max_abs_diff", 0}, {"psnr_db", 100.0}}));

  // A stored image changed by 7 levels in one pixel: the retimed baseline no longer reproduces it,
  // and on the CPU (deterministic arithmetic) any difference is a warning with its size.
  fs::path stored;
  for (const auto& e : fs::directory_iterator(cache))
    if (fs::is_regular_file(e.path() / "entry.json")) stored = e.path() / "seed-42" / "000000.png";
  at::Tensor img = read_png(stored);
  img.index_put_({0, 0, 0}, static_cast<uint8_t>((img.index({0, 0, 0}).item<int>() + 7) % 256));
  write_png(stored, img);
  auto changed = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "r3b") + opts + " --schedule interleaved");
  ASSERT_LE(changed.exit_code, 1) << changed.output;
  const auto r3b = read_json_file(dir_ / "r3b" / "report.json");
  EXPECT_FALSE(r3b["baseline_reuse"]["images_reproduced"].get<bool>());
  EXPECT_EQ(r3b["baseline_reuse"]["reproduction"]["max_abs_diff"], 7);
  const double db = r3b["baseline_reuse"]["reproduction"]["psnr_db"].get<double>();
  const double elements = 2.0 * static_cast<double>(img.numel());  // both images of the seed
  EXPECT_NEAR(db, 10 * std::log10(255.0 * 255.0 / (49.0 / elements)), 1e-9);
  bool warned = false;
  for (const auto& w : r3b["warnings"])
    warned = warned || (w["code"] == "baseline_not_reproduced" &&
                        w["message"].get<std::string>().find("largest pixel difference 7/255") != std::string::npos);
  EXPECT_TRUE(warned) << r3b["warnings"].dump();

  // Another protocol (one prompt fewer): a miss, a second entry.
  auto other = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "r4", 1) + opts +
                             " --schedule sequential");
  ASSERT_LE(other.exit_code, 1) << other.output;
  EXPECT_FALSE(read_json_file(dir_ / "r4" / "report.json").contains("baseline_reuse"));
  EXPECT_EQ(entries(), 2u);
  // --no-baseline-cache: neither read nor written.
  auto off = run_diffbench("eval " + shell_quote(cand.string()) + common(dir_ / "r5") +
                           " --no-baseline-cache --schedule sequential");
  ASSERT_LE(off.exit_code, 1) << off.output;
  EXPECT_FALSE(read_json_file(dir_ / "r5" / "report.json").contains("baseline_reuse"));
}

// deepcache.cache_interval=2,3,5 x steps=10,20: six points against one baseline; sweep.json's
// frontier flags are those of pareto_front on the points' own numbers.
TEST_F(SuiteCli, SweepSixPoints) {
  const fs::path sp = write_spec("dc", spec(10, deepcache(3)));
  const fs::path out = dir_ / "sweep";
  auto r = run_diffbench("sweep " + shell_quote(sp.string()) +
                         " --grid deepcache.cache_interval=2,3,5 --grid steps=10,20" + common(out) +
                         " --schedule sequential --no-baseline-cache");
  ASSERT_LE(r.exit_code, 1) << r.output;
  const auto s = read_json_file(out / "sweep.json");
  EXPECT_EQ(s["schema"], "diffbench.sweep/1");
  ASSERT_EQ(s["points"].size(), 6u);
  EXPECT_EQ(s["baseline_runs"]["generated"], 1);
  EXPECT_EQ(s["points"][0]["params"], nlohmann::json({{"deepcache.cache_interval", "2"}, {"steps", "10"}}));
  EXPECT_EQ(s["points"][5]["params"], nlohmann::json({{"deepcache.cache_interval", "5"}, {"steps", "20"}}));
  const auto rep = read_json_file(out / s["points"][5]["name"].get<std::string>() / "report.json");
  EXPECT_EQ(rep["candidate"]["spec"]["steps"], 20);
  EXPECT_EQ(rep["baseline"]["spec"]["steps"], 10);
  EXPECT_EQ(rep["candidate"]["methods"][0]["params"]["cache_interval"], 5);
  for (const char* metric : {"quality_loss_pct", "psnr_db", "ssim"}) {
    const auto& f = s["frontiers"][metric];
    ASSERT_EQ(f["points"].size(), 6u) << metric;
    std::vector<FrontierPoint> pts;
    for (const auto& p : f["points"]) pts.push_back({p["x"].get<double>(), p["y"].get<double>()});
    const auto expect = pareto_front(pts, f["direction"] == "higher-is-better");
    size_t on = 0;
    for (size_t i = 0; i < 6; ++i) {
      EXPECT_EQ(f["points"][i]["pareto"].get<bool>(), expect[i]) << metric << " " << i;
      on += expect[i];
    }
    EXPECT_EQ(f["frontier"].size(), on);
    EXPECT_GE(on, 1u);
  }
  EXPECT_TRUE(fs::exists(out / "sweep.md"));
  EXPECT_TRUE(fs::exists(out / "suite.json"));
  EXPECT_TRUE(fs::exists(out / "suite.csv"));
}

// A sweep of steps over a spec without accelerations: the point equal to the baseline (steps=10) is measured
// like the other, its report marked identical, not failed as config_mismatch; the same spec as a suite
// candidate against itself still is (--allow-identical is the suite's way).
TEST_F(SuiteCli, SweepPointEqualToTheBaselineIsMeasured) {
  const fs::path sp = write_spec("plain", spec(10));
  const fs::path out = dir_ / "sweep";
  auto r = run_diffbench("sweep " + shell_quote(sp.string()) + " --grid steps=5,10" + common(out) +
                         " --schedule sequential --no-baseline-cache");
  ASSERT_LE(r.exit_code, 1) << r.output;
  const auto s = read_json_file(out / "sweep.json");
  ASSERT_EQ(s["points"].size(), 2u);
  for (size_t i = 0; i < 2; ++i) {
    const auto& p = s["points"][i];
    EXPECT_NE(p["reason"], "config_mismatch") << p.dump();
    ASSERT_TRUE(p["report"].is_string()) << p.dump();
    const auto rep = read_json_file(out / p["report"].get<std::string>());
    EXPECT_EQ(rep["consistency"]["comparison"]["identical"].get<bool>(), i == 1) << p.dump();
    EXPECT_TRUE(p["speedup"].is_number()) << p.dump();
  }
  auto suite = run_diffbench("suite " + shell_quote(sp.string()) + " --baseline " + shell_quote(sp.string()) +
                             common(dir_ / "suite") + " --no-baseline-cache");
  EXPECT_EQ(suite.exit_code, 1) << suite.output;
  EXPECT_EQ(read_json_file(dir_ / "suite" / "suite.json")["rows"][0]["reason"], "config_mismatch");
}

TEST_F(SuiteCli, SuiteLevelErrorsAreExit2) {
  const fs::path out = dir_ / "suite";
  auto none = run_diffbench("suite " + shell_quote((dir_ / "nothing-here").string()) + common(out));
  EXPECT_EQ(none.exit_code, 1) << none.output;  // a missing candidate file is that candidate's failure
  fs::create_directories(dir_ / "empty");
  auto empty = run_diffbench("suite " + shell_quote((dir_ / "empty").string()) + common(dir_ / "s2"));
  EXPECT_EQ(empty.exit_code, 2) << empty.output;
  const fs::path cand = write_spec("dc", spec(10, deepcache(3)));
  auto bad_base = run_diffbench("suite " + shell_quote(cand.string()) + " --baseline " +
                                shell_quote((dir_ / "missing.toml").string()) + common(dir_ / "s3"));
  EXPECT_EQ(bad_base.exit_code, 2) << bad_base.output;
  auto no_clip = run_diffbench("suite " + shell_quote(cand.string()) + " --prompts " +
                               shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                               " --repeats 1 --num-samples 2 --clip " + shell_quote((dir_ / "no-clip").string()) + " --out " +
                               shell_quote((dir_ / "s5").string()));
  EXPECT_EQ(no_clip.exit_code, 2) << no_clip.output;
  EXPECT_NE(no_clip.output.find("no-clip"), std::string::npos) << no_clip.output;
  auto bad_grid = run_diffbench("sweep " + shell_quote(cand.string()) + " --grid tome.ratio=0.5" + common(dir_ / "s4"));
  EXPECT_EQ(bad_grid.exit_code, 2) << bad_grid.output;
  EXPECT_NE(bad_grid.output.find("--grid"), std::string::npos) << bad_grid.output;
  EXPECT_FALSE(fs::exists(dir_ / "s4"));
}
