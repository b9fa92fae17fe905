// The diffbench command: parses options and calls the library. One catch maps error kinds to exit
// codes (0 ok, 1 thresholds failed, 2 usage/input error, 3 internal failure, 128 + N stopped by
// signal N: 130 SIGINT, 143 SIGTERM).
#include <chrono>
#include <csignal>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <optional>
#include <set>

#include <CLI/CLI.hpp>
#include <c10/core/InferenceMode.h>
#include <c10/util/Exception.h>

#include "diffbench/accel/method_docs.hpp"
#include "diffbench/accel/spec_run.hpp"
#include "diffbench/demo/train.hpp"
#include "diffbench/dist/process_group.hpp"
#include "diffbench/dist/world.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/eval/bench.hpp"
#include "diffbench/eval/distributed.hpp"
#include "diffbench/eval/evaluator.hpp"
#include "diffbench/eval/protocol.hpp"
#include "diffbench/eval/pyimport.hpp"
#include "diffbench/eval/score.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/report/report.hpp"
#include "diffbench/io/prompts.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/log.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "diffbench/pipeline/init_random.hpp"
#include "diffbench/pipeline/outputs.hpp"
#include "diffbench/pipeline/txt2img.hpp"
#include "ranks.hpp"
#include "suite_commands.hpp"

namespace {

using namespace diffbench;

// The one piece of global state: the number of the signal that asked `eval` to stop (0: none).
// The handler only stores it; the evaluator reads it between batches (EvalOptions::stop), keeps
// its finished batches and ends with Interrupted. SA_RESETHAND makes a second signal end the
// process at once, as without a handler.
volatile std::sig_atomic_t g_stop_signal = 0;

extern "C" void on_stop_signal(int sig) { g_stop_signal = sig; }

void install_stop_handlers() {
  struct sigaction sa {};
  sa.sa_handler = on_stop_signal;
  sigemptyset(&sa.sa_mask);
  sa.sa_flags = SA_RESETHAND | SA_RESTART;
  ::sigaction(SIGINT, &sa, nullptr);
  ::sigaction(SIGTERM, &sa, nullptr);
}

// A finite number >= min (> min when `exclusive`): NaN and inf are usage errors, which CLI11's
// Range lets through.
CLI::Validator finite_number(double min, bool exclusive = false) {
  char number[32];
  std::snprintf(number, sizeof number, "%g", min);
  const std::string bound = std::string(exclusive ? "> " : ">= ") + number;
  return CLI::Validator(
      [=](std::string& text) -> std::string {
        double v = 0;
        size_t used = 0;
        try {
          v = std::stod(text, &used);
        } catch (const std::exception&) {
          return "'" + text + "' is not a number";
        }
        if (used != text.size()) return "'" + text + "' is not a number";
        if (!std::isfinite(v) || v < min || (exclusive && v == min))
          return "must be a finite number " + bound + " (got " + text + ")";
        return std::string();
      },
      "FINITE " + bound);
}

// Seconds for a message: three decimals (JSON files keep full precision).
std::string seconds_text(double s) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.3f", s);
  return buf;
}

// CLI11 reads "-1" into an unsigned option as 2^64 - 1; a seed or count must not start with '-'.
const CLI::Validator kUnsigned(
    [](std::string& text) { return text.rfind('-', 0) == 0 ? "must be >= 0 (got " + text + ")" : std::string(); },
    "UINT");

struct GenerateArgs {
  std::string spec;
  std::vector<std::string> accel;
  std::string model, prediction_type, config;
  std::vector<std::string> lora;
  std::vector<std::string> prompt;
  std::string prompts;
  size_t num_samples = 0;
  std::string scheduler;
  int steps = 50;
  double guidance = 7.5;
  uint64_t seed = 42;
  int height = 0, width = 0, batch_size = 1;
  std::string noise = "per-prompt", dtype = "fp32", device = "cpu", out;
  bool force = false, quiet = false, no_cuda_graphs = false, no_channels_last = false, allow_nonfinite = false;
};

struct InitRandomArgs {
  std::string arch = "tiny", out, tokenizer, weights_dtype = "fp32", prediction_type = "epsilon";
  uint64_t seed = 0;
};

struct EvalArgs {
  std::string candidate, baseline, prompts = kDefaultPrompts, noise = "per-prompt", clip, clip_score = "per-sample-clamp", out;
  size_t num_samples = kDefaultNumSamples;
  int batch_size = 4, warmup = 1;
  uint64_t seed = 42;
  double max_quality_loss = 5.0;
  std::optional<double> min_speedup, max_latency;
  int repeats = 1, num_seeds = 0;
  std::vector<uint64_t> seeds;
  std::string schedule;
  std::optional<double> memory_budget_mib;
  bool json = false, quiet = false, force = false, allow_model_mismatch = false, allow_identical = false,
       allow_task_change = false, allow_nonfinite = false, embed_images = false, resume = false;
  std::string metrics = "clip,psnr,ssim", lpips;
  std::optional<double> min_psnr, min_ssim, max_lpips;
  std::string inception, reference_images, pickscore, hps;
  std::optional<double> max_fid_increase, max_kid;
  std::vector<std::string> max_metric_loss;
  std::string baseline_cache = default_baseline_cache();
  bool no_baseline_cache = false;
};

struct ScoreArgs {
  std::string images, prompts, clip, clip_score = "per-sample-clamp", against, metrics, lpips, device = "cpu", inception,
      reference_images, pickscore, hps;
  size_t num_samples = 0;
  bool json = false;
};

// eval's KID/FID, preference and generic loss options.
void add_distribution_options(CLI::App& c, EvalArgs& a) {
  c.add_option("--inception", a.inception,
               "FID Inception-v3 weights (pytorch-fid's, as safetensors: docs/metrics.md); adds kid,fid to --metrics "
               "unless it names one");
  c.add_option("--reference-images", a.reference_images,
               "folder of PNGs (e.g. real images) both image sets are compared with by KID and FID");
  c.add_option("--max-fid-increase", a.max_fid_increase,
               "fail when FID rises by more than X: candidate minus baseline FID to --reference-images, or the "
               "candidate's FID to the baseline's images without them")
      ->check(finite_number(0));
  c.add_option("--max-kid", a.max_kid, "fail when the KID of the candidate's images vs the baseline's is above X")
      ->check(finite_number(0));
  c.add_option("--max-metric-loss", a.max_metric_loss,
               "NAME=PCT (repeatable): fail when metric NAME is more than PCT % worse than the baseline's "
               "(clip, ssim, pickscore, hps; kid, fid with --reference-images)");
  c.add_option("--pickscore", a.pickscore, "PickScore CLIPModel folder or ORG/NAME (docs/metrics.md); adds pickscore");
  c.add_option("--hps", a.hps, "HPS v2 open_clip folder or ORG/NAME (docs/metrics.md); adds hps");
}

// The protocol, threshold and output options of eval, suite and sweep.
void add_eval_options(CLI::App* c, EvalArgs& a) {
  c->add_option("--baseline", a.baseline, "baseline spec or .py file (default: the candidate without its accelerations)");
  c->add_option("--prompts", a.prompts,
                "coco2017-val (bundled: first captions of the first 5,000 COCO 2017 val images), coco:FILE, "
                "parti:FILE, geneval:FILE, FILE.txt, FILE.jsonl or demo")
      ->capture_default_str();
  c->add_option("--num-samples", a.num_samples, "the first N prompts")->capture_default_str();
  c->add_option("--batch-size", a.batch_size, "images per batch")->capture_default_str()->check(CLI::Range(1, 4096));
  c->add_option("--seed", a.seed, "seed")->capture_default_str()->check(kUnsigned);
  auto* seeds = c->add_option("--seeds", a.seeds, "run the protocol once per seed, e.g. 42,43,44 (pooled statistics)")
                    ->delimiter(',')->check(kUnsigned);
  c->add_option("--num-seeds", a.num_seeds, "run the protocol with seeds --seed, --seed+1, ... (K of them)")
      ->check(CLI::Range(1, 1000))->excludes(seeds);
  c->add_option("--warmup", a.warmup, "untimed warm-up batches per pipeline")->capture_default_str()->check(CLI::Range(0, 100));
  c->add_option("--noise", a.noise, "per-prompt or diffusers")->capture_default_str()->check(CLI::IsMember({"per-prompt", "diffusers"}));
  std::string ids;
  for (const auto& id : default_clip_ids()) ids += (ids.empty() ? "" : ", ") + id;
  c->add_option("--clip", a.clip,
                "CLIP scorer: a folder (transformers CLIPModel or open_clip layout), a Hugging Face id ORG/NAME from "
                "the local hub cache, or demo [default: the first cached of " + ids + "]");
  c->add_option("--clip-score", a.clip_score, "per-sample-clamp or mean-clamp")
      ->capture_default_str()->check(CLI::IsMember({"per-sample-clamp", "mean-clamp"}));
  c->add_option("--max-quality-loss", a.max_quality_loss,
                "fail above this quality loss (percent), or when it is undefined (baseline CLIP score <= 0)")
      ->capture_default_str()->check(finite_number(0));
  c->add_option("--min-speedup", a.min_speedup, "fail when the speedup's whole 95 % interval is below this")
      ->check(finite_number(0, true));
  c->add_option("--max-latency", a.max_latency, "fail above this candidate latency (seconds per image)")
      ->check(finite_number(0, true));
  c->add_option("--repeats", a.repeats,
                "timed passes over the prompts per pipeline (images and scores from the first); when not given, "
                "1 plus up to 4 automatic interleaved passes while the speedup's interval is wider than ±10 % or "
                "fewer than 5 batch pairs were timed")
      ->capture_default_str()->check(CLI::Range(1, 1000));
  c->add_option("--schedule", a.schedule,
                "interleaved (both pipelines loaded, batches in ABBA order) or sequential (one at a time); "
                "default: interleaved when both fit in memory")
      ->check(CLI::IsMember({"interleaved", "sequential"}));
  c->add_option("--memory-budget", a.memory_budget_mib, "MiB of device memory to take as free when choosing the schedule")
      ->check(finite_number(0));
  c->add_option("--metrics", a.metrics,
                "quality metrics: clip (each image vs its prompt), psnr, ssim, lpips (candidate vs baseline image per "
                "prompt), kid, fid (the image sets), pickscore, hps (preference, each image vs its prompt)")
      ->capture_default_str();
  c->add_option("--min-psnr", a.min_psnr, "fail when the mean PSNR of candidate vs baseline images is below DB")
      ->check(finite_number(0));
  c->add_option("--min-ssim", a.min_ssim, "fail when the mean SSIM of candidate vs baseline images is below X")
      ->check(finite_number(0));
  c->add_option("--lpips", a.lpips, "LPIPS AlexNet v0.1 weights (safetensors, docs/metrics.md); adds lpips to --metrics");
  c->add_option("--max-lpips", a.max_lpips, "fail when the mean LPIPS of candidate vs baseline images is above X")
      ->check(finite_number(0));
  add_distribution_options(*c, a);
  c->add_flag("--allow-model-mismatch", a.allow_model_mismatch, "compare pipelines whose weights differ");
  c->add_flag("--allow-identical", a.allow_identical, "compare a candidate with an identical baseline (measures timing noise; a sweep's points always may be)");
  c->add_flag("--allow-task-change", a.allow_task_change, "compare pipelines that differ in image size or guidance");
  c->add_flag("--allow-nonfinite", a.allow_nonfinite, "continue when latents or images become NaN or inf");
  c->add_option("--out", a.out, "report folder (default runs/<candidate>-<timestamp>; suite, sweep: runs/suite-<timestamp>)");
  c->add_flag("--embed-images", a.embed_images, "put the images into report.html as data URIs (one portable file)");
  c->add_flag("--force", a.force, "replace a report folder an earlier diffbench run wrote (one with report.json or run.json)");
  c->add_flag("--json", a.json,
              "print report.json (suite: suite.json; sweep: sweep.json) to stdout, nothing else (progress still goes "
              "to stderr)");
  c->add_flag("--quiet", a.quiet, "no progress or log lines on stderr: only the summary and errors");
  auto* no_cache = c->add_flag("--no-baseline-cache", a.no_baseline_cache, "neither read nor write the baseline cache");
  c->add_option("--baseline-cache", a.baseline_cache,
                "baseline cache folder: a baseline's images, times and CLIP scores stored under a key of model file "
                "hashes, baseline spec, protocol, scorer, device and version (docs/suite.md; off: none) "
                "[default: $DIFFBENCH_BASELINE_CACHE, else runs/.baseline-cache]")
      ->excludes(no_cache);
}

void add_eval(CLI::App& app, EvalArgs& a) {
  auto* c = app.add_subcommand("eval", "Compare a candidate pipeline (spec or .py file) with its unaccelerated baseline");
  c->add_option("candidate", a.candidate, "candidate pipeline: a spec (TOML) or a Python pipeline file (.py, read by import-py)")->required();
  add_eval_options(c, a);
  c->add_flag("--resume", a.resume,
              "continue the run of this --out that SIGINT/SIGTERM interrupted (its finished batches are kept), with "
              "any number of processes; the command's other options must be the same");
}

void add_score(CLI::App& app, ScoreArgs& a) {
  auto* c = app.add_subcommand("score", "Score existing images (PNG files in name order): CLIP score against prompts, "
                                        "PSNR/SSIM against reference images");
  c->add_option("--images", a.images, "folder of PNG images (sizes may differ)")->required();
  c->add_option("--prompts", a.prompts,
                "prompt source, one prompt per image (for clip; default: the prompts of a run.json beside the images)");
  c->add_option("--num-samples", a.num_samples, "the first N images (0 = all)")->check(kUnsigned);
  c->add_option("--clip", a.clip, "CLIP scorer folder, Hugging Face id ORG/NAME from the local hub cache, or demo (for clip)");
  c->add_option("--against", a.against, "folder of reference PNGs with the same file names (for psnr, ssim, lpips)");
  c->add_option("--lpips", a.lpips, "LPIPS AlexNet v0.1 weights (safetensors)");
  c->add_option("--inception", a.inception, "FID Inception-v3 weights (safetensors), for kid and fid");
  c->add_option("--pickscore", a.pickscore, "PickScore CLIPModel folder or ORG/NAME (needs prompts)");
  c->add_option("--hps", a.hps, "HPS v2 open_clip folder or ORG/NAME (needs prompts)");
  c->add_option("--reference-images", a.reference_images,
                "folder of PNGs the images are compared with as a set (kid, fid; --against's folder is too)");
  c->add_option("--metrics", a.metrics,
                "clip, psnr, ssim, lpips, kid, fid, pickscore, hps (default: clip; with --against psnr,ssim, plus clip "
                "with --clip, lpips with --lpips, kid,fid with --inception, pickscore and hps with their folders)");
  c->add_option("--clip-score", a.clip_score, "per-sample-clamp or mean-clamp")
      ->capture_default_str()->check(CLI::IsMember({"per-sample-clamp", "mean-clamp"}));
  c->add_option("--device", a.device, "where the CLIP scorer runs: cpu (float32), cuda or cuda:N (float16)")
      ->capture_default_str();
  c->add_flag("--json", a.json, "print JSON");
}

struct MethodsArgs {
  std::string name;
  std::vector<std::string> plugins;
  bool json = false, markdown = false;
};

void add_methods(CLI::App& app, MethodsArgs& a) {
  auto* c = app.add_subcommand("methods", "List the acceleration methods and each parameter's type, default, range "
                                          "and meaning (built-ins, and plugins given with --plugin)");
  c->add_option("name", a.name, "show this method only, e.g. deepcache");
  c->add_option("--plugin", a.plugins, "also list the methods of this plugin library (repeatable)");
  c->add_flag("--json", a.json, "print JSON");
  c->add_flag("--markdown", a.markdown, "print docs/methods.md (the built-in methods as Markdown)");
}

int run_methods(const MethodsArgs& a) {
  std::vector<std::filesystem::path> plugins(a.plugins.begin(), a.plugins.end());
  const nlohmann::json methods = describe_methods(plugins);
  if (a.markdown) {
    std::cout << render_methods_markdown(methods);
  } else if (a.json) {
    const std::string text = render_methods_text(methods, a.name);  // a UsageError for an unknown name
    nlohmann::json out = nlohmann::json::array();
    for (const auto& m : methods)
      if (a.name.empty() || m["name"] == a.name) out.push_back(m);
    std::cout << (a.name.empty() ? out : out[0]).dump(2) << "\n";
  } else {
    std::cout << render_methods_text(methods, a.name);
  }
  return 0;
}

struct ImportPyArgs {
  std::string file, out;
  bool json = false;
};

void add_import_py(CLI::App& app, ImportPyArgs& a) {
  auto* c = app.add_subcommand(
      "import-py",
      "Translate a Python pipeline file (diffusers + DeepCache / tomesd / T-GATE / scheduler swap) into a pipeline "
      "spec, reading it with Python's ast module without running it; prints the spec (TOML) and what each "
      "statement became");
  c->add_option("file", a.file, "the pipeline file, e.g. 1_gen.py")->required();
  c->add_option("--out", a.out, "write the spec (TOML) to this file instead of stdout");
  c->add_flag("--json", a.json, "print {\"spec\", \"statements\", \"ignored\"} as JSON");
}

int run_import_py(const ImportPyArgs& a) {
  const PyImport r = import_python(a.file);
  if (a.json) {
    std::cout << nlohmann::json{{"spec", r.spec.to_json()}, {"statements", r.statements}, {"ignored", r.ignored}}.dump(2)
              << "\n";
    return 0;
  }
  if (a.out.empty()) {
    std::cout << to_toml(r);
    return 0;
  }
  write_file_atomic(a.out, to_toml(r));
  std::cerr << "wrote " << a.out << "\n";
  return 0;
}

struct BenchArgs {
  std::string spec, prompt = "A man is in a kitchen making pizzas.", profile;
  int batch_size = 1, runs = 5, warmup = 1;
  bool json = false, quiet = false, no_cuda_graphs = false, no_channels_last = false, cudnn_benchmark = false;
};

void add_bench(CLI::App& app, BenchArgs& a) {
  auto* c = app.add_subcommand("bench", "Time whole generations of one pipeline spec (after warm-up, device-synced)");
  c->add_option("spec", a.spec, "pipeline spec (TOML) or Python pipeline file (.py)")->required();
  c->add_option("--batch-size", a.batch_size, "images per generation")->capture_default_str()->check(CLI::Range(1, 4096));
  c->add_option("--runs", a.runs, "timed generations")->capture_default_str()->check(CLI::Range(1, 100000));
  c->add_option("--warmup", a.warmup, "untimed generations first (the first is reported as first-generation latency)")
      ->capture_default_str()->check(CLI::Range(0, 1000));
  c->add_option("--prompt", a.prompt, "prompt used for every image")->capture_default_str();
  c->add_flag("--json", a.json, "print JSON to stdout, nothing else (progress still goes to stderr)");
  c->add_flag("--quiet", a.quiet, "no progress or log lines on stderr");
  c->add_flag("--no-cuda-graphs", a.no_cuda_graphs, "CUDA: run the UNet eagerly instead of replaying a captured graph");
  c->add_flag("--no-channels-last", a.no_channels_last, "CUDA: keep NCHW convolutions");
  c->add_flag("--cudnn-benchmark", a.cudnn_benchmark,
              "CUDA: time cuDNN's convolution algorithms per shape instead of taking its heuristic choice (slower first image)");
  c->add_option("--profile", a.profile, "profile one more generation: Chrome trace to FILE, kernel summary in the JSON");
}

void add_generate(CLI::App& app, GenerateArgs& a) {
  auto* c = app.add_subcommand("generate", "Generate images from prompts with a diffusers Stable Diffusion folder");
  c->add_option("--spec", a.spec, "pipeline spec (TOML) or Python pipeline file (.py), as for eval; the flags below override its fields");
  c->add_option("--model", a.model, "diffusers pipeline folder, a single-file checkpoint (FILE.safetensors, SD 1.x/2.x/SDXL original layout), a Hugging Face id ORG/NAME from the local hub cache, or demo (the bundled demo model); required without --spec");
  c->add_option("--prediction-type", a.prediction_type, "epsilon or v_prediction, over the model's (SD 2.x single files need it)")
      ->check(CLI::IsMember({"epsilon", "v_prediction"}));
  c->add_option("--config", a.config, "single-file checkpoints: a diffusers folder whose configs describe the model, for models off their family's defaults (the spec's config)");
  c->add_option("--lora", a.lora, "LoRA FILE[:SCALE] fused into the weights (repeatable; replaces the spec's [[lora]] list)");
  auto* p = c->add_option("--prompt", a.prompt, "a prompt (repeatable)");
  auto* f = c->add_option("--prompts", a.prompts,
                          "prompt source: FILE (one prompt per line, UTF-8), FILE.jsonl, coco:FILE, parti:FILE, geneval:FILE, demo");
  p->excludes(f);
  c->add_option("--num-samples", a.num_samples, "take the first N prompts of --prompts (0 = all)")->capture_default_str()
      ->check(kUnsigned);
  c->add_option("--scheduler", a.scheduler, "pndm|ddim|euler|euler_a|dpmpp_2m (default: the checkpoint's own)");
  c->add_option("--steps", a.steps, "denoising steps")->capture_default_str()->check(CLI::Range(1, 10000));
  c->add_option("--guidance", a.guidance, "classifier-free guidance scale (off when <= 1)")->capture_default_str()
      ->check(finite_number(0));
  c->add_option("--seed", a.seed, "random seed")->capture_default_str()->check(kUnsigned);
  c->add_option("--height", a.height, "image height (default: model sample size × VAE factor)")->check(CLI::Range(8, kMaxImageSide));
  c->add_option("--width", a.width, "image width (default: model sample size × VAE factor)")->check(CLI::Range(8, kMaxImageSide));
  c->add_option("--batch-size", a.batch_size, "prompts per batch")->capture_default_str()->check(CLI::Range(1, 4096));
  c->add_option("--noise", a.noise, "per-prompt (seed+i per prompt) or diffusers (one generator per run)")
      ->capture_default_str()->check(CLI::IsMember({"per-prompt", "diffusers"}));
  c->add_option("--dtype", a.dtype, "fp32|fp16|bf16|fp8 (fp8: the UNet's token GEMMs in float8 e4m3, the rest in fp16 on "
                "CUDA, fp32 on the CPU)")
      ->capture_default_str()
      ->check(CLI::IsMember({"fp32", "fp16", "bf16", "fp8"}));
  c->add_option("--device", a.device, "cpu|cuda|cuda:N")->capture_default_str();
  c->add_option("--accel", a.accel,
                "acceleration method METHOD[:key=value,...] (repeatable, applied in order; replaces the spec's "
                "[[accelerate]] list), e.g. deepcache:cache_interval=3,cache_branch_id=0");
  c->add_option("--out", a.out, "output folder: NNNNNN.png and run.json")->required();
  c->add_flag("--force", a.force, "replace an output folder an earlier diffbench run wrote (one with run.json or report.json)");
  c->add_flag("--quiet", a.quiet, "print nothing but errors");
  c->add_flag("--allow-nonfinite", a.allow_nonfinite, "continue when latents or images become NaN or inf");
  c->add_flag("--no-cuda-graphs", a.no_cuda_graphs, "CUDA: run the UNet eagerly instead of replaying a captured graph");
  c->add_flag("--no-channels-last", a.no_channels_last, "CUDA: keep NCHW convolutions");
}

void add_init_random(CLI::App& app, InitRandomArgs& a) {
  auto* c = app.add_subcommand("init-random", "Write a diffusers folder with random weights (for speed tests)");
  c->add_option("--arch", a.arch, "sd15 (SD 1.5 topology, full size) or tiny")
      ->capture_default_str()->check(CLI::IsMember({"sd15", "tiny"}));
  c->add_option("--out", a.out, "folder to create")->required();
  c->add_option("--tokenizer", a.tokenizer, "CLIP tokenizer folder to copy in (assets/clip-tokenizer will do)")->required();
  c->add_option("--seed", a.seed, "weights seed")->capture_default_str()->check(kUnsigned);
  c->add_option("--weights-dtype", a.weights_dtype, "fp32 or fp16 weights on disk")
      ->capture_default_str()->check(CLI::IsMember({"fp32", "fp16"}));
  c->add_option("--prediction-type", a.prediction_type, "epsilon or v_prediction")
      ->capture_default_str()->check(CLI::IsMember({"epsilon", "v_prediction"}));
}

struct TrainDemoArgs {
  demo::TrainOptions o;
  std::string out, device = "cpu", arch = "standard", weights_dtype = "fp16";
  bool no_eval = false, quiet = false;
};

void add_train_demo(CLI::App& app, TrainDemoArgs& a) {
  auto* c = app.add_subcommand("train-demo", "Train the bundled demo models (text-to-image pipeline and CLIP scorer) "
                                             "from procedurally drawn pictures");
  c->add_option("--out", a.out, "folder to create: sd/ (diffusers), clip/ (CLIPModel), prompts.txt, train.json")->required();
  c->add_option("--device", a.device, "cpu|cuda|cuda:N")->capture_default_str();
  c->add_option("--seed", a.o.seed, "seed of weights, batches and noise")->capture_default_str()->check(kUnsigned);
  c->add_option("--data-seed", a.o.data_seed, "seed of the training pictures")->capture_default_str()->check(kUnsigned);
  c->add_option("--train-size", a.o.train_size, "pictures in the training pool")->capture_default_str()->check(CLI::Range(int64_t(1), int64_t(10000000)));
  c->add_option("--arch", a.arch, "standard or tiny (for quick tests)")->capture_default_str()->check(CLI::IsMember({"standard", "tiny"}));
  for (auto [name, p] : {std::pair{"vae", &a.o.vae}, std::pair{"clip", &a.o.clip}, std::pair{"unet", &a.o.unet}}) {
    const std::string n = name;
    c->add_option("--" + n + "-steps", p->steps, n + " training steps")->capture_default_str()->check(CLI::NonNegativeNumber);
    c->add_option("--" + n + "-batch-size", p->batch_size, n + " batch size")->capture_default_str()->check(CLI::PositiveNumber);
    c->add_option("--" + n + "-lr", p->lr, n + " peak learning rate")->capture_default_str()->check(CLI::PositiveNumber);
  }
  c->add_option("--weights-dtype", a.weights_dtype, "fp16 or fp32 weights on disk")->capture_default_str()->check(CLI::IsMember({"fp16", "fp32"}));
  c->add_option("--eval-guidance", a.o.eval_guidance, "guidance of the final pipeline check")->capture_default_str()
      ->check(finite_number(0));
  c->add_option("--log-every", a.o.log_every, "steps between progress lines")->capture_default_str()->check(CLI::PositiveNumber);
  c->add_flag("--no-eval", a.no_eval, "skip the retrieval checks at the end");
  c->add_flag("--quiet", a.quiet, "print nothing but errors");
}

int run_train_demo(TrainDemoArgs a, const std::string& command) {
  const Logger log(a.quiet ? LogLevel::Error : LogLevel::Info, std::cerr);
  if (a.arch == "tiny") a.o.arch = demo::DemoArch::tiny();
  a.o.out = a.out;
  a.o.device = parse_device(a.device);
  a.o.weights_dtype = a.weights_dtype == "fp16" ? at::kHalf : at::kFloat;
  a.o.evaluate = !a.no_eval;
  a.o.command = command;
  const auto report = demo::train_demo(a.o, log);
  std::cout << "wrote " << a.out << " (" << seconds_text(report["seconds"].get<double>()) << " s); see " << a.out << "/train.json\n";
  return 0;
}

// generate's settings: the spec's fields (when given) under the flags the user set.
PipelineSpec generate_spec(const GenerateArgs& a, const CLI::App& cmd) {
  PipelineSpec spec;
  if (!a.spec.empty()) spec = load_pipeline_file(a.spec);
  auto given = [&](const char* flag) { return cmd.count(flag) > 0; };
  if (given("--model")) {
    spec.model = spec.model_ref = a.model;
    spec.hub.reset();
    resolve_spec_model(spec);  // an "ORG/NAME" id through the local hub cache
  }
  if (spec.model.empty()) throw UsageError("give --model DIR or --spec FILE.toml", "generate");
  if (given("--prediction-type")) spec.prediction_type = a.prediction_type;
  if (given("--config")) spec.model_config = a.config;
  if (given("--lora")) {
    spec.loras.clear();
    for (const auto& text : a.lora) spec.loras.push_back(parse_lora_arg(text));
  }
  if (given("--scheduler")) spec.scheduler = a.scheduler;
  if (given("--steps") || a.spec.empty()) spec.steps = a.steps;
  if (given("--guidance") || a.spec.empty()) spec.guidance = a.guidance;
  if (given("--height")) spec.height = a.height;
  if (given("--width")) spec.width = a.width;
  if (given("--dtype") || a.spec.empty()) spec.dtype = a.dtype;
  if (given("--device") || a.spec.empty()) spec.device = a.device;
  if (given("--accel")) {
    spec.accelerate.clear();
    for (const auto& text : a.accel) spec.accelerate.push_back(parse_accel_arg(text));
  }
  return spec;
}

int run_generate(const GenerateArgs& a, const CLI::App& cmd, const World& world, ProcessGroup* group) {
  const Logger log(a.quiet ? LogLevel::Error : LogLevel::Info, std::cerr, !a.quiet && ::isatty(2) && world.rank == 0);
  PipelineSpec spec = generate_spec(a, cmd);
  spec.device = rank_device(spec.device, world);  // "cuda": this rank's GPU
  RunProtocol protocol;
  protocol.seed = a.seed;
  protocol.batch_size = a.batch_size;
  protocol.noise = parse_noise_mode(a.noise);
  protocol.allow_nonfinite = a.allow_nonfinite;
  CudaTuning tuning;
  tuning.cuda_graphs = !a.no_cuda_graphs;
  tuning.channels_last = !a.no_channels_last;
  // Methods first: a bad method or parameter fails before any model is loaded.
  SpecRun run;
  try {
    run = prepare_run(spec, protocol, tuning, cmd.count("--accel") ? "--accel" : "");
  } catch (const InputError& e) {
    if (!cmd.count("--accel")) throw;
    throw UsageError(e.message(), e.where());  // a bad --accel is a bad option
  }
  std::vector<std::string> prompts = a.prompt;
  std::string prompt_source = "command line";
  if (!a.prompts.empty()) {
    auto set = load_prompts(a.prompts, a.num_samples);
    prompts = set.prompts;
    prompt_source = set.source;
  }
  if (prompts.empty()) throw UsageError("give --prompt TEXT or --prompts FILE", "generate");

  const double setup_s = process_age_s();
  using Clock = std::chrono::steady_clock;
  auto t0 = Clock::now();
  // A bad or occupied --out fails before any work; in a multi-process run rank 0 alone writes it.
  std::optional<StagingDir> staging;
  if (!group || group->root()) staging.emplace(a.out, a.force);
  auto pipe = Txt2ImgPipeline::load(run.model, log);
  const double load_s = std::chrono::duration<double>(Clock::now() - t0).count();
  t0 = Clock::now();
  nlohmann::json distributed;  // rank 0 of a multi-process run: the ranks' shares and throughput
  auto result = group ? generate_over_ranks(*pipe, prompts, run.generate, *group, log, &distributed)
                      : pipe->generate(prompts, run.generate, {}, log);
  const double generation_s = std::chrono::duration<double>(Clock::now() - t0).count();
  if (!staging) return 0;  // rank 0 writes the images
  const GenerateOptions& go = run.generate;
  nlohmann::json settings = {{"model", spec.model.string()}, {"scheduler", result.scheduler}, {"steps", go.steps},
                             {"guidance", go.guidance}, {"seed", go.seed},              {"height", result.height},
                             {"width", result.width},   {"batch_size", go.batch_size},  {"noise", a.noise},
                             {"dtype", spec.dtype},     {"device", run.model.device.str()}, {"prompt_source", prompt_source},
                             {"accelerate", run.methods.to_json()},
                             {"load_s", pipe->load_report()}, {"environment", environment_info(run.model.device)},
                             {"wall_clock_s", {{"process_setup", setup_s}, {"load", load_s}, {"generation", generation_s}}}};
  if (!a.spec.empty()) settings["spec"] = a.spec;
  if (group) settings["distributed"] = distributed;
  t0 = Clock::now();
  save_generation(*staging, result, prompts, settings);
  log.info("wrote " + std::to_string(prompts.size()) + " images to " + a.out + " (" +
           seconds_text(result.times.total / static_cast<double>(prompts.size())) + " s per image); wall clock: set-up " +
           seconds_text(setup_s) + " s, load " + seconds_text(load_s) + " s, generation " + seconds_text(generation_s) +
           " s, writing " + seconds_text(std::chrono::duration<double>(Clock::now() - t0).count()) + " s");
  return 0;
}

// EvalOptions from the command line (the candidate and baseline are the caller's).
EvalOptions eval_options(const EvalArgs& a, const CLI::App& cmd) {
  EvalOptions o;
  o.prompts = a.prompts;
  o.num_samples = a.num_samples;
  o.metrics = parse_metric_set(a.metrics);
  if (!o.metrics.clip)
    for (const char* flag : {"--clip", "--clip-score", "--max-quality-loss"})
      if (cmd.count(flag)) throw UsageError("the CLIP score is not computed: add clip to --metrics", flag);
  const ScorerChoice scorer = o.metrics.clip ? resolve_scorer(a.clip) : ScorerChoice{};
  if (o.metrics.clip) o.clip_source = scorer.to_json();
  // The protocol options left at their defaults, named in the report so two reports compare at a glance.
  for (const auto& [flag, value] : std::vector<std::pair<std::string, std::string>>{
           {"--prompts", a.prompts}, {"--num-samples", std::to_string(a.num_samples)},
           {"--batch-size", std::to_string(a.batch_size)}, {"--seed", std::to_string(a.seed)},
           {"--warmup", std::to_string(a.warmup)}, {"--noise", a.noise},
           {"--clip", scorer.is_default ? scorer.id : a.clip}, {"--clip-score", a.clip_score}})
    if (cmd.count(flag) == 0 && (o.metrics.clip || flag.rfind("--clip", 0) != 0))
      o.defaults_used.push_back(flag + "=" + value);
  o.batch_size = a.batch_size;
  o.seed = a.seed;
  o.warmup = a.warmup;
  o.noise = parse_noise_mode(a.noise);
  o.clip = scorer.folder;
  o.clip_score = parse_clip_score_mode(a.clip_score);
  o.max_quality_loss = a.max_quality_loss;
  o.min_speedup = a.min_speedup;
  o.max_latency = a.max_latency;
  o.fidelity.min_psnr = a.min_psnr;
  o.fidelity.min_ssim = a.min_ssim;
  o.fidelity.max_lpips = a.max_lpips;
  o.lpips = a.lpips;
  o.metrics.lpips = o.metrics.lpips || !a.lpips.empty();
  o.inception = a.inception;
  o.reference_images = a.reference_images;
  if (!a.inception.empty() && !o.metrics.distribution()) o.metrics.kid = o.metrics.fid = true;
  o.distribution.max_fid_increase = a.max_fid_increase;
  o.distribution.max_kid = a.max_kid;
  for (const auto& limit : a.max_metric_loss) add_metric_loss_limit(limit, o.max_metric_loss);
  if (!a.pickscore.empty()) o.pickscore = resolve_scorer(a.pickscore).folder;
  if (!a.hps.empty()) o.hps = resolve_scorer(a.hps).folder;
  o.metrics.pickscore = o.metrics.pickscore || !a.pickscore.empty();
  o.metrics.hps = o.metrics.hps || !a.hps.empty();
  o.allow_model_mismatch = a.allow_model_mismatch;
  o.allow_identical = a.allow_identical;
  o.allow_task_change = a.allow_task_change;
  o.allow_nonfinite = a.allow_nonfinite;
  o.repeats = a.repeats;
  o.auto_repeats = cmd.count("--repeats") == 0;
  o.seeds = a.seeds;
  for (int k = 0; k < a.num_seeds; ++k) o.seeds.push_back(a.seed + static_cast<uint64_t>(k));
  if (!a.schedule.empty()) o.schedule = parse_schedule(a.schedule);
  if (a.memory_budget_mib) o.memory_budget = static_cast<int64_t>(*a.memory_budget_mib * 1024.0 * 1024.0);
  o.out = a.out;
  o.force = a.force;
  o.resume = a.resume;
  o.embed_images = a.embed_images;
  return o;
}

int run_eval_command(const EvalArgs& a, const CLI::App& cmd, const World& world) {
  const Logger log(a.quiet ? LogLevel::Error : LogLevel::Info, std::cerr, !a.quiet && ::isatty(2) && world.rank == 0);
  return run_on_ranks(world, log, [&](ProcessGroup* group) {
    EvalOptions o = eval_options(a, cmd);
    o.candidate = load_pipeline_file(a.candidate);
    if (!a.baseline.empty()) o.baseline = load_pipeline_file(a.baseline);
    o.group = group;
    o.candidate.device = rank_device(o.candidate.device, world);  // "cuda": this rank's GPU
    if (o.baseline) o.baseline->device = rank_device(o.baseline->device, world);
    install_stop_handlers();
    o.stop = &g_stop_signal;
    // The baseline cache is one process's: a multi-process run generates its baseline.
    const EvalResult r =
        group ? run_eval(o, log) : run_eval_cached(o, baseline_cache_dir(a.baseline_cache, a.no_baseline_cache), log);
    if (world.rank != 0) return 0;  // rank 0 reports
    if (a.json)
      std::cout << r.report.dump(2) << "\n";
    else
      std::cout << render_summary(r.report) << "report: " << (r.out / "report.html").string() << "\n";
    return r.passed ? 0 : 1;
  });
}

int run_score(const ScoreArgs& a, const World& world, ProcessGroup* group) {
  ScoreOptions o;
  o.group = group;
  o.images = a.images;
  o.prompts = a.prompts;
  o.num_samples = a.num_samples;
  if (!a.clip.empty()) o.clip = resolve_scorer(a.clip).folder;
  o.clip_score = parse_clip_score_mode(a.clip_score);
  o.against = a.against;
  o.lpips = a.lpips;
  o.device = parse_device(rank_device(a.device, world));  // "cuda": this rank's GPU
  o.inception = a.inception;
  o.reference_images = a.reference_images;
  o.metrics = a.metrics.empty() ? default_score_metrics(!a.against.empty(), !a.clip.empty(), !a.lpips.empty(),
                                                        !a.inception.empty())
                                : parse_metric_set(a.metrics);
  if (!a.pickscore.empty()) o.pickscore = resolve_scorer(a.pickscore).folder;
  if (!a.hps.empty()) o.hps = resolve_scorer(a.hps).folder;
  o.metrics.pickscore = o.metrics.pickscore || !a.pickscore.empty();
  o.metrics.hps = o.metrics.hps || !a.hps.empty();
  if (a.metrics.empty() && a.clip.empty() && (o.metrics.pickscore || o.metrics.hps)) o.metrics.clip = false;
  const auto j = run_score(o);
  if (world.rank != 0) return 0;  // rank 0 prints the scores
  std::cout << (a.json ? j.dump(2) + "\n" : render_score(j));
  return 0;
}

int run_bench_command(const BenchArgs& a) {
  const Logger log(a.quiet ? LogLevel::Error : LogLevel::Info, std::cerr, !a.quiet && ::isatty(2));
  BenchOptions o;
  o.spec = load_pipeline_file(a.spec);
  o.batch_size = a.batch_size;
  o.runs = a.runs;
  o.warmup = a.warmup;
  o.prompt = a.prompt;
  o.cuda_graphs = !a.no_cuda_graphs;
  o.channels_last = !a.no_channels_last;
  o.cudnn_benchmark = a.cudnn_benchmark;
  o.profile = a.profile;
  const auto j = run_bench(o, log);
  std::cout << (a.json ? j.dump(2) + "\n" : render_bench(j));
  return 0;
}

int run_init_random(const InitRandomArgs& a) {
  RandomPipelineOptions o;
  o.arch = a.arch;
  o.seed = a.seed;
  o.tokenizer = a.tokenizer;
  o.weights_dtype = a.weights_dtype == "fp16" ? at::kHalf : at::kFloat;
  o.prediction_type = a.prediction_type;
  write_random_pipeline(a.out, o);
  std::cerr << "wrote a random-weight " << a.arch << " pipeline to " << a.out << "\n";
  return 0;
}

}  // namespace

namespace {

int run_command(int argc, char** argv, bool* distributed) {
  CLI::App app{"diffbench: measure what a training-free diffusion acceleration buys and what it costs", "diffbench"};
  app.set_version_flag("--version", std::string("diffbench ") + DIFFBENCH_VERSION);
  app.require_subcommand(1);
  GenerateArgs gen;
  InitRandomArgs init;
  EvalArgs eval;
  ScoreArgs score;
  TrainDemoArgs train_demo;
  add_generate(app, gen);
  add_init_random(app, init);
  add_eval(app, eval);
  add_score(app, score);
  BenchArgs bench;
  add_bench(app, bench);
  ImportPyArgs import_py;
  add_import_py(app, import_py);
  MethodsArgs methods;
  add_methods(app, methods);
  add_train_demo(app, train_demo);
  SuiteArgs suite, sweep;
  EvalArgs suite_eval, sweep_eval;
  add_eval_options(add_suite(app, suite), suite_eval);
  add_eval_options(add_sweep(app, sweep), sweep_eval);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    const int rc = app.exit(e);
    return rc == 0 ? 0 : 2;
  }
  try {
    const World world = detect_world();
    *distributed = world.distributed();
    const std::string command = app.get_subcommands().front()->get_name();
    if (world.distributed() && !std::set<std::string>{"eval", "generate", "score", "suite", "sweep"}.count(command))
      throw UsageError("runs as one process only: under torchrun, mpirun or srun only eval, generate, score, suite "
                       "and sweep are spread over processes (docs/distributed.md)",
                       "diffbench " + command);
    if (app.got_subcommand("generate")) {
      const Logger log(gen.quiet ? LogLevel::Error : LogLevel::Info, std::cerr);
      return run_on_ranks(world, log, [&](ProcessGroup* group) {
        return run_generate(gen, *app.get_subcommand("generate"), world, group);
      });
    }
    if (app.got_subcommand("init-random")) return run_init_random(init);
    if (app.got_subcommand("eval")) return run_eval_command(eval, *app.get_subcommand("eval"), world);
    if (app.got_subcommand("score"))
      return run_on_ranks(world, Logger(LogLevel::Info, std::cerr),
                          [&](ProcessGroup* group) { return run_score(score, world, group); });
    for (auto [name, args, eval_args] : {std::tuple{"suite", &suite, &suite_eval}, std::tuple{"sweep", &sweep, &sweep_eval}})
      if (app.got_subcommand(name)) {
        const EvalArgs& e = *eval_args;
        return run_suite_command(*args, eval_options(e, *app.get_subcommand(name)), e.baseline,
                                 baseline_cache_dir(e.baseline_cache, e.no_baseline_cache).string(), e.json, e.quiet,
                                 world);
      }
    if (app.got_subcommand("bench")) return run_bench_command(bench);
    if (app.got_subcommand("import-py")) return run_import_py(import_py);
    if (app.got_subcommand("methods")) return run_methods(methods);
    if (app.got_subcommand("train-demo")) {
      std::string command = "diffbench";
      for (int i = 1; i < argc; ++i) command += std::string(" ") + argv[i];
      return run_train_demo(train_demo, command);
    }
  } catch (const diffbench::Interrupted& e) {  // eval stopped by SIGINT/SIGTERM, its batches kept
    std::cerr << "diffbench: " << e.what() << "\n";
    return e.exit_code();
  } catch (const diffbench::Error& e) {
    std::cerr << "diffbench: " << e.what() << "\n";
    return e.exit_code();
  } catch (const c10::Error& e) {
    if (is_out_of_memory(e)) {  // the message names the size asked for
      std::cerr << "diffbench: out of memory: " << e.what_without_backtrace()
                << "\nhint: lower --batch-size or the image size\n";
      return 2;
    }
    std::cerr << "diffbench: internal error: " << e.what_without_backtrace() << "\n";
    return 3;
  } catch (const std::bad_alloc&) {
    std::cerr << "diffbench: out of host memory; lower --batch-size or the image size\n";
    return 2;
  } catch (const std::exception& e) {
    std::cerr << "diffbench: internal error: " << e.what() << "\n";
    return 3;
  }
  return 2;
}

}  // namespace

int main(int argc, char** argv) {
  bool distributed = false;
  const int rc = run_command(argc, argv, &distributed);
  // Every output is written and committed (or removed) by now. Tearing down the CUDA context,
  // LibTorch's and cuDNN's handles takes about half a second that no one waits for, so the process
  // ends here. A multi-process run's ranks leave through the process group's normal shutdown, and a
  // sanitizer build keeps the normal exit for its leak check.
  std::cout.flush();
  std::cerr.flush();
  std::fflush(nullptr);
#if !defined(__SANITIZE_ADDRESS__) && !defined(__SANITIZE_THREAD__)
  if (!distributed) std::_Exit(rc);
#endif
  return rc;
}
