#include "diffbench/eval/evaluator.hpp"

#include <chrono>
#include <ctime>
#include <iomanip>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/prompts.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/metrics/stats.hpp"
#include "diffbench/pipeline/outputs.hpp"
#include "diffbench/report/report.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

using Methods = std::vector<std::unique_ptr<Method>>;

// The spec's [[accelerate]] methods, validated (InputError naming spec:line and key).
Methods create_methods(const PipelineSpec& spec) {
  return MethodRegistry::with_builtins().create_all(spec.accelerate, spec.file.string());
}

fs::path default_out(const PipelineSpec& candidate) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::ostringstream o;
  o << "runs/" << candidate.name << "-" << std::put_time(&tm, "%Y%m%d-%H%M%S");
  return o.str();
}

// Components one pipeline hands to the next (text encoder and VAE, when their files match).
using Shared = std::shared_ptr<const Txt2ImgPipeline::SharedComponents>;

// Loads one pipeline (reusing `*shared` where identical, then leaving this pipeline's components
// in it), warms it up, runs the timed generation; the pipeline is freed on return.
std::pair<PipelineRun, at::Tensor> run_pipeline(const PipelineSpec& spec, const Methods& methods,
                                                const std::vector<std::string>& prompts, const EvalOptions& o,
                                                const std::string& label, const Logger& log,
                                                Shared* shared) {
  ModelOptions mo;
  mo.dir = spec.model;
  mo.device = parse_device(spec.device);
  mo.dtype = parse_dtype(spec.dtype, mo.device);
  GenerateOptions go;
  go.scheduler = spec.scheduler;
  go.steps = spec.steps;
  go.guidance = spec.guidance;
  go.seed = o.seed;
  go.height = spec.height;
  go.width = spec.width;
  go.batch_size = o.batch_size;
  go.noise = o.noise;
  for (const auto& m : methods) go.hooks.push_back(m.get());

  log.info(label + ": loading " + spec.model.string());
  auto pipe = Txt2ImgPipeline::load(mo, log, *shared);
  *shared = pipe->shared_components();
  const std::vector<std::string> warm(prompts.begin(),
                                      prompts.begin() + std::min(prompts.size(), static_cast<size_t>(o.batch_size)));
  for (int i = 0; i < o.warmup; ++i) {
    log.info(label + ": warm-up batch " + std::to_string(i + 1) + "/" + std::to_string(o.warmup));
    pipe->generate(warm, go, {}, Logger::silent());
  }
  for (const auto& m : methods) m->reset_stats();  // count the timed run only
  reset_peak_memory(mo.device);
  log.info(label + ": generating " + std::to_string(prompts.size()) + " images");
  auto result = pipe->generate(prompts, go, {}, log);

  PipelineRun run;
  run.reused_components = pipe->load_report().value("reused", nlohmann::json::array());
  run.spec = spec;
  double sum = 0;
  for (const auto& b : result.batches) {
    run.batch_seconds.push_back(b.times.total);
    sum += b.times.total;
  }
  run.seconds_per_image = sum / static_cast<double>(prompts.size());
  run.stages = result.times;
  run.unet_calls_per_image = result.unet_calls_per_image();
  run.skipped_module_fraction = result.skipped_module_fraction();
  std::tie(run.peak_memory_bytes, run.peak_memory_kind) = peak_memory(mo.device);
  for (size_t i = 0; i < methods.size(); ++i) {
    nlohmann::json m = {{"method", methods[i]->name()}, {"params", methods[i]->params()}, {"stats", methods[i]->stats()}};
    if (!spec.accelerate[i].plugin.empty()) m["plugin"] = spec.accelerate[i].plugin.string();
    run.methods.push_back(m);
  }
  return {run, to_uint8(result.images)};
}

nlohmann::json run_json(const PipelineRun& r) {
  nlohmann::json stages = to_json(r.stages);
  return {{"spec", r.spec.to_json()},
          {"methods", r.methods},
          {"seconds_per_image", r.seconds_per_image},
          {"batch_seconds", r.batch_seconds},
          {"batch_seconds_summary",
           {{"min", *std::min_element(r.batch_seconds.begin(), r.batch_seconds.end())},
            {"median", median(r.batch_seconds)},
            {"max", *std::max_element(r.batch_seconds.begin(), r.batch_seconds.end())}}},
          {"stages", stages},
          {"unet_calls_per_image", r.unet_calls_per_image},
          {"skipped_module_fraction", r.skipped_module_fraction},
          {"peak_memory_bytes", r.peak_memory_bytes},
          {"peak_memory_kind", r.peak_memory_kind},
          {"reused_components", r.reused_components},
          {"clip_score", r.clip_score},
          {"per_sample_clip", r.per_sample_clip}};
}

void save_images(const fs::path& dir, const at::Tensor& u8) {
  fs::create_directories(dir);
  for (int64_t i = 0; i < u8.size(0); ++i) {
    char name[32];
    std::snprintf(name, sizeof name, "%06lld.png", static_cast<long long>(i));
    write_png(dir / name, u8[i]);
  }
}

}  // namespace

EvalResult run_eval(const EvalOptions& o, const Logger& log) {
  const PipelineSpec candidate = o.candidate;
  const PipelineSpec baseline = o.baseline ? *o.baseline : candidate.baseline();
  if (o.batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
  if (o.warmup < 0) throw UsageError("warm-up must be >= 0", "--warmup");
  if (o.clip.empty()) throw UsageError("a CLIP scorer folder is needed: --clip DIR", "--clip");
  if (!o.metrics.clip)
    throw UsageError("eval always computes the CLIP score (--max-quality-loss): keep clip in the list", "--metrics");
  if (o.metrics.lpips && o.lpips.empty()) throw UsageError("LPIPS needs its weights: --lpips FILE", "--metrics");
  // Methods are created (and plugins loaded) before anything else runs, so a bad one fails early.
  const Methods base_methods = create_methods(baseline);
  const Methods cand_methods = create_methods(candidate);

  // Everything that can fail on input is checked before any generation.
  nlohmann::json consistency = check_consistency(baseline, candidate, o.allow_model_mismatch);
  const PromptSet prompt_set = load_prompts(o.prompts, o.num_samples);
  const auto& prompts = prompt_set.prompts;
  const fs::path out = o.out.empty() ? default_out(candidate) : o.out;
  StagingDir staging(out, o.force);
  auto scorer = ClipScorer::load(o.clip);
  const std::unique_ptr<Lpips> lpips = o.metrics.lpips ? Lpips::load(o.lpips) : nullptr;

  Shared shared;  // the text encoder and VAE are loaded once when both pipelines have the same ones
  auto [base_run, base_images] = run_pipeline(baseline, base_methods, prompts, o, "baseline", log, &shared);
  auto [cand_run, cand_images] = run_pipeline(candidate, cand_methods, prompts, o, "candidate", log, &shared);
  shared.reset();

  log.info("scoring with CLIP (" + scorer->layout() + ")");
  base_run.per_sample_clip = scorer->score(base_images, prompts);
  cand_run.per_sample_clip = scorer->score(cand_images, prompts);
  base_run.clip_score = ClipScorer::aggregate(base_run.per_sample_clip, o.clip_score);
  cand_run.clip_score = ClipScorer::aggregate(cand_run.per_sample_clip, o.clip_score);

  FidelityScores fidelity;  // candidate vs baseline, per prompt
  if (o.metrics.fidelity()) {
    log.info("comparing the candidate's images with the baseline's (" + to_string(o.metrics) + ")");
    fidelity.add_batch(base_images, cand_images, o.metrics, lpips.get());
  }

  const double speedup = base_run.seconds_per_image / cand_run.seconds_per_image;
  const double loss = base_run.clip_score != 0
                          ? (base_run.clip_score - cand_run.clip_score) / base_run.clip_score * 100.0
                          : 0.0;
  // The paired differences use the per-sample values the aggregate averages (clamped at 0 in
  // per-sample-clamp mode), so their mean equals the difference of the two CLIP scores there.
  auto per_sample = [&](const std::vector<double>& v) {
    std::vector<double> out(v);
    if (o.clip_score == ClipScoreMode::PerSampleClamp)
      for (double& x : out) x = std::max(x, 0.0);
    return out;
  };
  const PairedStats paired =
      paired_bootstrap(per_sample(base_run.per_sample_clip), per_sample(cand_run.per_sample_clip), 10000, o.seed);

  EvalResult res;
  nlohmann::json thresholds = {{"max_quality_loss_pct", o.max_quality_loss}};
  if (loss > o.max_quality_loss)
    res.failures.push_back("quality loss " + std::to_string(loss) + " % exceeds --max-quality-loss " +
                           std::to_string(o.max_quality_loss) + " %");
  if (o.min_speedup) {
    thresholds["min_speedup"] = *o.min_speedup;
    if (speedup < *o.min_speedup)
      res.failures.push_back("speedup " + std::to_string(speedup) + "x is below --min-speedup " +
                             std::to_string(*o.min_speedup) + "x");
  }
  if (o.max_latency) {
    thresholds["max_latency_s"] = *o.max_latency;
    if (cand_run.seconds_per_image > *o.max_latency)
      res.failures.push_back("candidate latency " + std::to_string(cand_run.seconds_per_image) +
                             " s/image exceeds --max-latency " + std::to_string(*o.max_latency) + " s");
  }
  nlohmann::json metrics = fidelity_metrics_json(
      fidelity, "candidate image vs the baseline image of the same prompt and seed", o.fidelity, o.seed, &res.failures);
  if (o.fidelity.min_psnr) thresholds["min_psnr_db"] = *o.fidelity.min_psnr;
  if (o.fidelity.min_ssim) thresholds["min_ssim"] = *o.fidelity.min_ssim;
  if (o.fidelity.max_lpips) thresholds["max_lpips"] = *o.fidelity.max_lpips;
  metrics["clip"] = {{"compares", "each image with its prompt (100·cos of the CLIP embeddings)"},
                     {"direction", "higher-is-better"},
                     {"baseline", base_run.clip_score},
                     {"candidate", cand_run.clip_score},
                     {"loss_pct", loss},
                     {"paired", "see paired"}};
  std::string per_prompt_order;
  const nlohmann::json per_prompt =
      per_prompt_rows(prompts, base_run.per_sample_clip, cand_run.per_sample_clip, fidelity, &per_prompt_order);
  res.passed = res.failures.empty();

  nlohmann::json r;
  r["schema"] = "diffbench.eval/1";
  r["protocol"] = {{"prompts_source", prompt_set.source}, {"prompts", prompts},      {"num_samples", prompts.size()},
                   {"batch_size", o.batch_size},           {"seed", o.seed},          {"warmup", o.warmup},
                   {"noise", to_string(o.noise)},          {"clip", o.clip.string()}, {"clip_layout", scorer->layout()},
                   {"clip_score", to_string(o.clip_score)}, {"metrics", to_string(o.metrics)}};
  r["baseline"] = run_json(base_run);
  r["candidate"] = run_json(cand_run);
  r["speedup"] = speedup;
  r["quality_loss_pct"] = loss;
  r["paired"] = {{"diff", "baseline - candidate, per prompt"},
                 {"mean_diff", paired.mean_diff},
                 {"ci95", {paired.ci_low, paired.ci_high}},
                 {"resamples", 10000}};
  r["metrics"] = metrics;
  r["per_prompt"] = per_prompt;
  r["per_prompt_order"] = per_prompt_order;
  r["consistency"] = consistency;
  r["thresholds"] = thresholds;
  r["passed"] = res.passed;
  r["failures"] = res.failures;
  r["environment"] = environment_info(parse_device(candidate.device));

  save_images(staging.path() / "baseline", base_images);
  save_images(staging.path() / "candidate", cand_images);
  write_file_atomic(staging.path() / "report.json", r.dump(2) + "\n");
  write_file_atomic(staging.path() / "report.md", render_markdown(r));
  staging.commit();
  res.report = std::move(r);
  res.out = out;
  return res;
}

}  // namespace diffbench
