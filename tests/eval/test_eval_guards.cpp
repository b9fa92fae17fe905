// `diffbench eval` verdicts to trust, end to end on tiny-sd with the tiny-clip scorer: meaningless
// comparisons refused, out-of-range numbers refused, undefined quality loss failing, non-finite
// runs stopped, the timing schedule (ABBA, repeats, memory fallback) with its interval, and
// several seeds pooled.
#include <cmath>
#include <fstream>

#include "cli/cli_support.hpp"
#include "eval/eval_fixture.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/metrics/stats.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

class EvalGuards : public test::EvalFixture {
 protected:
  std::string pipeline(int steps, const std::string& guidance = "7.5") const {
    return "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() + "\"\nsteps = " + std::to_string(steps) +
           "\nguidance = " + guidance + "\n";
  }
  std::string prompts() const {
    return " --prompts " + shell_quote("coco:" + test::shared_data("captions_val2017.json").string());
  }
  // --repeats is always given (1 by default): no automatic timing passes.
  std::string common(const fs::path& out, int samples = 8, const fs::path& clip = {}, int batch = 4, int repeats = 1) const {
    return prompts() + " --repeats " + std::to_string(repeats) + " --num-samples " + std::to_string(samples) + " --batch-size " + std::to_string(batch) + " --clip " +
           shell_quote((clip.empty() ? test::fixture("tiny-clip") : clip).string()) + " --out " + shell_quote(out.string());
  }
  CommandResult eval(const fs::path& cand, const fs::path& base, const std::string& args) {
    return run_diffbench("eval " + shell_quote(cand.string()) +
                         (base.empty() ? std::string() : " --baseline " + shell_quote(base.string())) + args);
  }
  static std::string read_text(const fs::path& p) {
    std::ifstream in(p);
    return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  }
  static bool warned(const nlohmann::json& rep, const std::string& code) {
    for (const auto& w : rep["warnings"])
      if (w["code"] == code) return true;
    return false;
  }
};

}  // namespace

TEST_F(EvalGuards, IdenticalCandidateIsAnErrorUnlessAllowed) {
  auto spec = write_spec("same", pipeline(3));
  auto r = eval(spec, {}, common(dir_ / "r1", 4) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("identical to its baseline"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--allow-identical"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "r1"));
  // The same spec given as --baseline is just as identical.
  r = eval(spec, spec, common(dir_ / "r2", 4) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;

  // Allowed: a noise measurement. Its 95 % interval excludes 1 in about one run of twenty by
  // definition (more with the heavy-tailed noise of millisecond batches on a shared machine), so the
  // test asks what must hold in every run: the interval brackets the speedup, and the six batch pairs
  // show no bias between the two sides at 99.9 % (Student's t, 5 degrees of freedom, on log ratios),
  // unless the run is flagged as noisy.
  r = eval(spec, {}, common(dir_ / "r3", 4, {}, 2, 3) + " --allow-identical --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rep = read_json_file(dir_ / "r3" / "report.json");
  EXPECT_TRUE(rep["consistency"]["comparison"]["identical"].get<bool>());
  const double lo = rep["speedup_ci"][0].get<double>(), hi = rep["speedup_ci"][1].get<double>();
  const double speedup = rep["timing"]["speedup"].get<double>();
  EXPECT_TRUE(lo <= speedup && speedup <= hi) << rep["timing"].dump();
  const auto ratios = rep["timing"]["batch_ratios"].get<std::vector<double>>();
  ASSERT_EQ(ratios.size(), 6u) << rep["timing"].dump();
  double mean = 0, var = 0;
  for (double x : ratios) mean += std::log(x) / 6;
  for (double x : ratios) var += (std::log(x) - mean) * (std::log(x) - mean) / 5;
  const double half = 6.869 * std::sqrt(var / 6);  // t(0.9995, 5)
  EXPECT_TRUE((mean - half <= 0 && 0 <= mean + half) || warned(rep, "timing_noise")) << rep["timing"].dump();
}

TEST_F(EvalGuards, OutOfRangeNumbersAreUsageErrors) {
  auto base = write_spec("base", pipeline(3));
  auto cand = write_spec("cand", pipeline(2));
  struct Case {
    std::string args, words;
  };
  const std::vector<Case> cases = {
      {"--max-quality-loss nan", "--max-quality-loss"}, {"--max-quality-loss inf", "--max-quality-loss"},
      {"--max-quality-loss -1", "--max-quality-loss"},  {"--min-speedup nan", "--min-speedup"},
      {"--min-speedup 0", "--min-speedup"},             {"--min-speedup -2", "--min-speedup"},
      {"--max-latency inf", "--max-latency"},           {"--num-samples 0", "--num-samples"},
      {"--repeats 0", "--repeats"},                     {"--batch-size 0", "--batch-size"},
      {"--seed -1", "--seed"},                          {"--memory-budget nan", "--memory-budget"},
      {"--schedule abba", "--schedule"},
  };
  for (const auto& c : cases) {
    std::string args = common(dir_ / "out", 4);
    if (c.args.rfind("--repeats", 0) == 0) args.erase(args.find(" --repeats 1 "), 12);  // given once, by the case
    auto r = eval(cand, base, args + " " + c.args + " --quiet");
    EXPECT_EQ(r.exit_code, 2) << c.args << "\n" << r.output;
    EXPECT_NE(r.output.find(c.words), std::string::npos) << c.args << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "out")) << c.args;
  }
  // generate: --height 0 is an error, not "the default"; guidance must be a finite number >= 0.
  const std::string gen = "generate --model " + shell_quote(test::fixture("tiny-sd").string()) +
                          " --prompt x --steps 2 --out " + shell_quote((dir_ / "gen").string()) + " ";
  for (const std::string bad : {"--height 0", "--width 0", "--height -8", "--guidance nan", "--guidance -1", "--guidance inf"}) {
    auto r = run_diffbench(gen + bad);
    EXPECT_EQ(r.exit_code, 2) << bad << "\n" << r.output;
    EXPECT_NE(r.output.find(bad.substr(0, bad.find(' '))), std::string::npos) << bad << "\n" << r.output;
    EXPECT_FALSE(fs::exists(dir_ / "gen")) << bad;
  }
  // A spec's guidance likewise (TOML has nan and inf), named by file and line.
  auto nan_spec = write_spec("nanguid", pipeline(2, "nan"));
  auto r = eval(nan_spec, base, common(dir_ / "out", 4) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("nanguid.toml:4"), std::string::npos) << r.output;
}

TEST_F(EvalGuards, SizeAndGuidanceChangesNeedAllowTaskChange) {
  auto base = write_spec("base", pipeline(3));
  auto guid = write_spec("guid", pipeline(3, "3.0"));
  auto r = eval(guid, base, common(dir_ / "r1", 4) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("guidance 7.5"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--allow-task-change"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "r1"));
  auto size = write_spec("size", pipeline(3) + "height = 64\nwidth = 64\n");
  r = eval(size, base, common(dir_ / "r2", 4) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("image size"), std::string::npos) << r.output;
  // Steps are an acceleration: allowed without the flag. Guidance with it, and listed.
  auto steps = write_spec("steps", pipeline(2));
  r = eval(steps, base, common(dir_ / "r3", 4) + " --max-quality-loss 100 --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.output;
  r = eval(guid, base, common(dir_ / "r4", 4) + " --allow-task-change --max-quality-loss 100 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto rep = read_json_file(dir_ / "r4" / "report.json");
  EXPECT_EQ(rep["consistency"]["comparison"]["task_changes"].size(), 1u) << rep["consistency"].dump();
}

TEST_F(EvalGuards, QualityLossIsUndefinedWhenTheBaselineScoresZero) {
  // A scorer whose text projection is negated scores every image with the opposite sign, so with
  // --clip-score mean-clamp exactly one of the two scorers gives the baseline a score of 0.
  auto negated = dir_ / "negated-clip";
  fs::create_directories(negated);
  for (const auto& e : fs::directory_iterator(test::fixture("tiny-clip")))
    if (e.path().filename() != "model.safetensors") fs::copy_file(e.path(), negated / e.path().filename());
  auto weights = load_safetensors(test::fixture("tiny-clip/model.safetensors"));
  weights["text_projection.weight"] = -weights["text_projection.weight"];
  save_safetensors(negated / "model.safetensors", weights);

  auto base = write_spec("base", pipeline(3));
  auto cand = write_spec("cand", pipeline(2));
  int undefined = 0;
  for (const auto& clip : {test::fixture("tiny-clip"), negated}) {
    const auto out = dir_ / ("r-" + clip.filename().string());
    auto r = eval(cand, base, common(out, 4, clip) + " --clip-score mean-clamp --max-quality-loss 100 --quiet");
    auto rep = read_json_file(out / "report.json");
    if (rep["baseline"]["clip_score"].get<double>() > 0) {
      EXPECT_EQ(r.exit_code, 0) << r.output;
      EXPECT_TRUE(rep["quality_loss_pct"].is_number());
      continue;
    }
    ++undefined;
    EXPECT_EQ(r.exit_code, 1) << r.output;  // the gate cannot pass on an undefined loss, never "0 %"
    EXPECT_TRUE(rep["quality_loss_pct"].is_null()) << rep["quality_loss_pct"];
    EXPECT_NE(rep["quality_loss_undefined"].get<std::string>().find("baseline CLIP score is 0"), std::string::npos);
    ASSERT_EQ(rep["failures"].size(), 1u);
    EXPECT_NE(rep["failures"][0].get<std::string>().find("undefined"), std::string::npos);
    EXPECT_NE(read_text(out / "report.md").find("quality loss undefined"), std::string::npos);
  }
  EXPECT_EQ(undefined, 1);
}

TEST_F(EvalGuards, NonFiniteLatentsStopTheRunNamingStepAndMethod) {
  // Guidance 1e300 is finite as a double but inf as the float32 the UNet output is scaled with.
  const std::string gen = "generate --model " + shell_quote(test::fixture("tiny-sd").string()) +
                          " --prompt x --steps 3 --guidance 1e300 --out " + shell_quote((dir_ / "gen").string());
  auto r = run_diffbench(gen + " --accel deepcache:cache_interval=2");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("NaN or inf at denoising step 1 of 4"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("active methods: deepcache"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--allow-nonfinite"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / "gen"));
  r = run_diffbench(gen + " --allow-nonfinite --quiet");
  EXPECT_EQ(r.exit_code, 0) << r.output;

  // eval stops before writing a report.
  auto cand = write_spec("inf", pipeline(2, "1e300") + "[[accelerate]]\nmethod = \"deepcache\"\n");
  r = eval(cand, {}, common(dir_ / "rep", 4) + " --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("no acceleration method was active"), std::string::npos) << r.output;  // the baseline
  EXPECT_FALSE(fs::exists(dir_ / "rep"));
}

TEST_F(EvalGuards, InterleavedAbbaWithRepeatsAndMemoryFallback) {
  // A candidate of known cost: 5 instead of 10 PNDM steps (6 vs 11 UNet calls).
  auto base = write_spec("base10", pipeline(10));
  auto cand = write_spec("steps5", pipeline(5));
  auto r = eval(cand, base, common(dir_ / "inter", 4, {}, 2, 2) + " --max-quality-loss 100 --min-speedup 1.2 --quiet");
  ASSERT_LE(r.exit_code, 1) << r.output;
  auto rep = read_json_file(dir_ / "inter" / "report.json");
  EXPECT_EQ(rep["schema"], "diffbench.eval/2");
  EXPECT_EQ(rep["schedule"]["schedule"], "interleaved");
  EXPECT_NE(rep["schedule"]["reason"].get<std::string>().find("fit in memory"), std::string::npos);
  EXPECT_EQ(rep["schedule"]["order"], "BCCBBCCB");  // 2 batches × 2 passes, ABBA
  // The recorded start times follow that order.
  const auto& bs = rep["baseline"]["batch_start_s"];
  const auto& cs = rep["candidate"]["batch_start_s"];
  ASSERT_EQ(bs.size(), 4u);
  ASSERT_EQ(cs.size(), 4u);
  EXPECT_EQ(rep["baseline"]["batch_seconds"].size(), 4u);
  for (size_t k = 0; k < 4; ++k) {
    const bool base_first = k % 2 == 0;
    EXPECT_EQ(bs[k].get<double>() < cs[k].get<double>(), base_first) << k;
    if (k > 0) EXPECT_GT(std::min(bs[k].get<double>(), cs[k].get<double>()), std::max(bs[k - 1].get<double>(), cs[k - 1].get<double>()));
  }
  // UNet calls from one pass (PNDM: steps + 1), the speedup from all.
  EXPECT_EQ(rep["baseline"]["unet_calls_per_image"].get<double>(), 11.0);
  EXPECT_EQ(rep["candidate"]["unet_calls_per_image"].get<double>(), 6.0);
  const double s = rep["speedup"].get<double>(), lo = rep["speedup_ci"][0].get<double>(), hi = rep["speedup_ci"][1].get<double>();
  EXPECT_LE(lo, s);
  EXPECT_GE(hi, s);
  EXPECT_EQ(rep["timing"]["pairs"], 4);
  // 5 vs 10 steps is faster: a confident interval must say so; otherwise the noise is flagged.
  EXPECT_TRUE(lo > 1.0 || warned(rep, "timing_noise")) << rep["timing"].dump();
  EXPECT_EQ(r.exit_code, hi < 1.2 ? 1 : 0) << r.output;
  std::cout << "[ 5 vs 10 steps ] speedup " << s << " [" << lo << ", " << hi << "]\n";
  // report.md: the interval in the verdict line, warnings before the table.
  const std::string md = read_text(dir_ / "inter" / "report.md");
  EXPECT_NE(md.find("(95 % interval)"), std::string::npos) << md;
  if (!rep["warnings"].empty()) EXPECT_LT(md.find("warning ("), md.find("| | baseline | candidate |")) << md;

  // A memory budget too small for both pipelines: sequential, one side after the other, the same images.
  r = eval(cand, base, common(dir_ / "seq", 4, {}, 2) + " --memory-budget 1 --max-quality-loss 100 --quiet");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  auto seq = read_json_file(dir_ / "seq" / "report.json");
  EXPECT_EQ(seq["schedule"]["schedule"], "sequential");
  EXPECT_EQ(seq["schedule"]["free_bytes"], 1024 * 1024);
  EXPECT_GT(seq["schedule"]["estimated_bytes"].get<int64_t>(), 1024 * 1024);
  EXPECT_NE(seq["schedule"]["reason"].get<std::string>().find("do not fit"), std::string::npos);
  EXPECT_EQ(seq["schedule"]["order"], "BBCC");
  EXPECT_LT(seq["baseline"]["batch_start_s"][1].get<double>(), seq["candidate"]["batch_start_s"][0].get<double>());
  EXPECT_EQ(seq["baseline"]["per_sample_clip"], rep["baseline"]["per_sample_clip"]);
  EXPECT_EQ(seq["candidate"]["per_sample_clip"], rep["candidate"]["per_sample_clip"]);
}

TEST_F(EvalGuards, SeveralSeedsArePooledKeepingAPromptsSeedsTogether) {
  auto base = write_spec("base", pipeline(3));
  auto cand = write_spec("cand", pipeline(2));
  auto r = eval(cand, base, common(dir_ / "r", 4) + " --seeds 42,43 --max-quality-loss 100 --quiet");
  ASSERT_LE(r.exit_code, 1) << r.output;
  auto rep = read_json_file(dir_ / "r" / "report.json");
  EXPECT_EQ(rep["protocol"]["seeds"], nlohmann::json({42, 43}));
  const auto& per_seed = rep["per_seed"];
  ASSERT_EQ(per_seed.size(), 2u);
  // By hand: pooled CLIP = mean of the clamped scores over every (prompt, seed); the paired
  // interval = the bootstrap over prompts of each prompt's seed-averaged difference.
  std::vector<double> prompt_b(4, 0.0), prompt_c(4, 0.0);
  double sum_b = 0, sum_c = 0;
  for (size_t k = 0; k < 2; ++k) {
    EXPECT_EQ(per_seed[k]["seed"], 42 + k);
    for (size_t i = 0; i < 4; ++i) {
      const double b = std::max(per_seed[k]["baseline_per_sample_clip"][i].get<double>(), 0.0);
      const double c = std::max(per_seed[k]["candidate_per_sample_clip"][i].get<double>(), 0.0);
      sum_b += b;
      sum_c += c;
      prompt_b[i] += b / 2.0;
      prompt_c[i] += c / 2.0;
    }
  }
  EXPECT_NEAR(rep["baseline"]["clip_score"].get<double>(), sum_b / 8, 1e-9);
  EXPECT_NEAR(rep["candidate"]["clip_score"].get<double>(), sum_c / 8, 1e-9);
  const PairedStats p = paired_bootstrap(prompt_b, prompt_c, 10000, 42);
  EXPECT_NEAR(rep["paired"]["mean_diff"].get<double>(), p.mean_diff, 1e-12);
  EXPECT_NEAR(rep["paired"]["ci95"][0].get<double>(), p.ci_low, 1e-12);
  EXPECT_NEAR(rep["paired"]["ci95"][1].get<double>(), p.ci_high, 1e-12);
  EXPECT_NEAR(rep["paired"]["mean_diff"].get<double>(), (sum_b - sum_c) / 8, 1e-9);
  // Per seed: its own scores; the top-level per-sample list is the first seed's.
  EXPECT_EQ(rep["baseline"]["per_sample_clip"], per_seed[0]["baseline_per_sample_clip"]);
  EXPECT_NE(per_seed[0]["baseline_per_sample_clip"], per_seed[1]["baseline_per_sample_clip"]);
  // Timing pools both seeds: 1 batch × 2 seeds.
  EXPECT_EQ(rep["timing"]["pairs"], 2);
  // Images per seed; other seeds draw other noise.
  EXPECT_EQ(rep["image_dirs"]["baseline"], "baseline/seed-42");
  const auto a = read_png(dir_ / "r" / "baseline" / "seed-42" / "000000.png");
  const auto b = read_png(dir_ / "r" / "baseline" / "seed-43" / "000000.png");
  EXPECT_GT(test::max_abs_diff(a, b), 0);
  EXPECT_TRUE(fs::exists(dir_ / "r" / "candidate" / "seed-43" / "000003.png"));
  EXPECT_NE(read_text(dir_ / "r" / "report.md").find("![](baseline/seed-42/000000.png)"), std::string::npos);

  r = eval(cand, base, common(dir_ / "r2", 4) + " --seeds 42,42 --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--seeds"), std::string::npos) << r.output;
  r = eval(cand, base, common(dir_ / "r3", 4) + " --seeds 1 --num-seeds 2 --quiet");
  EXPECT_EQ(r.exit_code, 2) << r.output;
}
