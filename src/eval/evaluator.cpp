#include "diffbench/eval/evaluator.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <ctime>
#include <future>
#include <iomanip>
#include <optional>
#include <sstream>

#include "diffbench/dist/process_group.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/prompts.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "diffbench/metrics/stats.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "diffbench/pipeline/outputs.hpp"
#include "diffbench/report/html_report.hpp"
#include "diffbench/report/report.hpp"
#include "device_timer.hpp"
#include "distributed_eval.hpp"
#include "batch_writer.hpp"
#include "eval_journal.hpp"
#include "streamed_quality.hpp"
#include "timed_runs.hpp"
#include "util/format.hpp"
#include "util/worker_thread.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

fs::path default_out(const PipelineSpec& candidate) {
  const auto now = std::chrono::system_clock::to_time_t(std::chrono::system_clock::now());
  std::tm tm{};
  ::localtime_r(&now, &tm);
  std::ostringstream o;
  o << "runs/" << candidate.name << "-" << std::put_time(&tm, "%Y%m%d-%H%M%S");
  return o.str();
}

nlohmann::json nonfinite_json(const std::vector<BatchRecord>& batches) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& b : batches)
    out.push_back({{"first_prompt", b.first},
                   {"images", b.count},
                   {"first_nonfinite_step", b.first_nonfinite_step},
                   {"nonfinite_images", b.nonfinite_images}});
  return out;
}

// Quality loss = (baseline - candidate) / baseline × 100 %, undefined (with the reason) when the
// baseline score is <= 0 or either score is not finite: a relative loss of nothing means nothing.
struct QualityLoss {
  std::optional<double> pct;
  std::string undefined_reason;
};

QualityLoss quality_loss(double baseline, double candidate) {
  auto num = [](double v) {
    char buf[32];
    std::snprintf(buf, sizeof buf, "%g", v);
    return std::string(buf);
  };
  if (!std::isfinite(baseline) || !std::isfinite(candidate))
    return {std::nullopt, "a CLIP score is not finite (baseline " + num(baseline) + ", candidate " + num(candidate) + ")"};
  if (baseline <= 0)
    return {std::nullopt, "the baseline CLIP score is " + num(baseline) +
                              " (every image clamped to 0?): a relative loss is undefined; check the scorer (--clip)"};
  return {(baseline - candidate) / baseline * 100.0, {}};
}

// CLIP scores over every (prompt, seed), and the paired per-prompt differences: each prompt's
// difference averaged over its seeds, so the bootstrap resamples prompts with their seeds together.
// The differences use the per-sample values the aggregate averages (clamped at 0 in
// per-sample-clamp mode), so their mean equals the difference of the two CLIP scores there.
struct PooledScores {
  double baseline = 0, candidate = 0;
  PairedStats paired;
};

PooledScores pool_scores(const std::vector<std::vector<double>>& base, const std::vector<std::vector<double>>& cand,
                         ClipScoreMode mode, uint64_t seed) {
  auto clamp = [&](double x) { return mode == ClipScoreMode::PerSampleClamp ? std::max(x, 0.0) : x; };
  const size_t prompts = base.front().size();
  std::vector<double> all_base, all_cand, prompt_base(prompts, 0.0), prompt_cand(prompts, 0.0);
  for (size_t s = 0; s < base.size(); ++s)
    for (size_t i = 0; i < prompts; ++i) {
      all_base.push_back(base[s][i]);
      all_cand.push_back(cand[s][i]);
      prompt_base[i] += clamp(base[s][i]) / double(base.size());
      prompt_cand[i] += clamp(cand[s][i]) / double(base.size());
    }
  PooledScores p;
  p.baseline = ClipScorer::aggregate(all_base, mode);
  p.candidate = ClipScorer::aggregate(all_cand, mode);
  p.paired = paired_bootstrap(prompt_base, prompt_cand, 10000, seed);
  return p;
}

// Each seed's scores, loss and paired interval (when the protocol ran with several seeds).
nlohmann::json per_seed_json(const std::vector<uint64_t>& seeds, const PipelineRun& b, const PipelineRun& c,
                             ClipScoreMode mode) {
  nlohmann::json out = nlohmann::json::array();
  for (size_t k = 0; k < seeds.size(); ++k) {
    const PooledScores s = pool_scores({b.per_seed_clip[k]}, {c.per_seed_clip[k]}, mode, seeds[k]);
    const QualityLoss loss = quality_loss(s.baseline, s.candidate);
    out.push_back({{"seed", seeds[k]},
                   {"baseline_clip_score", s.baseline},
                   {"candidate_clip_score", s.candidate},
                   {"quality_loss_pct", loss.pct ? nlohmann::json(*loss.pct) : nlohmann::json()},
                   {"paired", {{"mean_diff", s.paired.mean_diff}, {"ci95", {s.paired.ci_low, s.paired.ci_high}}}},
                   {"baseline_per_sample_clip", b.per_seed_clip[k]},
                   {"candidate_per_sample_clip", c.per_seed_clip[k]}});
  }
  return out;
}

// `timing_noise` (with every reason), `clock_disagreement` (CUDA) and `nonfinite` warnings, as
// {code, message} objects.
nlohmann::json run_warnings(const SpeedupStats& speed, const PipelineRun& base, const PipelineRun& cand) {
  nlohmann::json warnings = nlohmann::json::array();
  if (speed.noisy()) {
    std::string why;
    for (const auto& n : speed.noise) why += (why.empty() ? "" : "; ") + n;
    warnings.push_back({{"code", "timing_noise"},
                        {"message", "timing is noisy: " + why +
                                        ". Rerun with --repeats N (more timed passes) or on a quiet machine"}});
  }
  for (const auto& [side, run] : {std::pair{"baseline", &base}, std::pair{"candidate", &cand}})
    if (auto message = clock_disagreement(side, run->batch_seconds, run->batch_device_seconds))
      warnings.push_back({{"code", "clock_disagreement"}, {"message", *message}});
  for (const auto& [side, run] : {std::pair{"baseline", &base}, std::pair{"candidate", &cand}})
    if (!run->nonfinite.empty())
      warnings.push_back({{"code", "nonfinite"},
                          {"message", std::string(side) + ": " + std::to_string(run->nonfinite.size()) +
                                          " batch(es) had NaN or inf values (--allow-nonfinite)"}});
  return warnings;
}

// Seconds per image by the device clock (CUDA events), over the same batches as the host clock's;
// null without device times (the CPU).
nlohmann::json device_seconds_per_image(const PipelineRun& r) {
  if (r.batch_device_seconds.empty() || r.batch_device_seconds.size() != r.batch_images.size()) return nullptr;
  double seconds = 0, images = 0;
  for (size_t k = 0; k < r.batch_images.size(); ++k) {
    seconds += r.batch_device_seconds[k];
    images += static_cast<double>(r.batch_images[k]);
  }
  return seconds / images;
}

nlohmann::json run_json(const PipelineRun& r) {
  nlohmann::json stages = to_json(r.stages);
  return {{"spec", r.spec.to_json()},
          {"methods", r.methods},
          {"seconds_per_image", r.seconds_per_image},
          {"device_seconds_per_image", device_seconds_per_image(r)},
          {"batch_seconds", r.batch_seconds},
          {"batch_device_seconds", r.batch_device_seconds},
          {"batch_images", r.batch_images},
          {"batch_start_s", r.batch_start_s},
          {"batch_process", r.batch_process},
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
          {"load_s", r.load_s},
          {"load_wall_s", r.load_wall_s},
          {"warmup_wall_s", r.warmup_wall_s},
          {"clip_score", r.clip_score},
          {"per_sample_clip", r.per_sample_clip},
          {"nonfinite_batches", nonfinite_json(r.nonfinite)}};
}

// Whether the baseline timed now strays from the reused one enough to say so: on the CPU any
// difference (its arithmetic is deterministic); on a GPU, where a cache entry made under another
// driver or library version may have met other kernels that round differently, a PSNR under
// kReproducedPsnrDb.
constexpr double kReproducedPsnrDb = 40.0;
std::optional<std::string> reproduction_warning(const nlohmann::json& reuse, const at::Device& device) {
  if (reuse.value("images_reproduced", true)) return std::nullopt;
  const nlohmann::json& r = reuse.value("reproduction", nlohmann::json::object());
  if (r.value("shapes_differ", false)) return "the baseline timed now made images of other sizes than the reused baseline";
  const double db = r.value("psnr_db", 0.0);
  if (!device.is_cpu() && db >= kReproducedPsnrDb) return std::nullopt;
  return "the baseline timed now made other images than the reused baseline (worst PSNR " + fixed(db, 1) +
         " dB, largest pixel difference " + std::to_string(r.value("max_abs_diff", 0)) + "/255" +
         (device.is_cpu() ? "" : "; under " + fixed(kReproducedPsnrDb, 0) + " dB") + ")";
}

// Which baseline numbers a reused baseline supplied (eval/baseline_cache.hpp); when the baseline was
// timed again, whether its regenerated images equal the reused ones.
nlohmann::json baseline_reuse_json(const BaselineResult& reused, const TimedRuns& timed, const Reproduction& rep) {
  nlohmann::json j = reused.provenance;
  j["reused"] = {"images", "clip_scores"};
  if (timed.baseline_timed) {
    // Bit for bit, or how close (GPU kernels of another driver or library version round differently);
    // accumulated batch by batch as the baseline timed now finished (streamed_quality.hpp).
    j["measured_now"] = {"timings"};
    j["images_reproduced"] = rep.comparable && rep.same;
    j["reproduction"] = rep.comparable ? nlohmann::json{{"max_abs_diff", rep.max_abs_diff}, {"psnr_db", rep.worst_psnr_db()}}
                                       : nlohmann::json{{"shapes_differ", true}};
  } else {
    j["reused"].push_back("timings");
    j["measured_now"] = nlohmann::json::array();
  }
  return j;
}

std::string signal_name(int sig) {
  if (sig == SIGINT) return "SIGINT";
  if (sig == SIGTERM) return "SIGTERM";
  return "signal " + std::to_string(sig);
}

// Leaves the staging folder in place when the run ends by an exception it should survive: an
// interruption (to be resumed), or any failure of a run that continues an earlier one (whose
// finished batches are not this process's to lose).
class KeepPartialOnFailure {
 public:
  explicit KeepPartialOnFailure(StagingDir& staging) : staging_(staging), exceptions_(std::uncaught_exceptions()) {}
  ~KeepPartialOnFailure() {
    if (std::uncaught_exceptions() > exceptions_ && (keep_ || !staging_.adopted().empty())) staging_.keep_partial();
  }
  void keep() { keep_ = true; }

 private:
  StagingDir& staging_;
  int exceptions_;
  bool keep_ = false;
};

}  // namespace

std::vector<uint64_t> eval_seeds(const EvalOptions& o) {
  return o.seeds.empty() ? std::vector<uint64_t>{o.seed} : o.seeds;
}

RunProtocol eval_protocol(const EvalOptions& o) {
  RunProtocol p;
  p.seed = eval_seeds(o).front();
  p.batch_size = o.batch_size;
  p.noise = o.noise;
  p.allow_nonfinite = o.allow_nonfinite;
  return p;
}

void validate_eval_options(const EvalOptions& o) {
  auto finite_at_least = [](double v, double min, bool exclusive, const char* option) {
    if (!std::isfinite(v) || v < min || (exclusive && v == min))
      throw UsageError(std::string("must be a finite number ") + (exclusive ? "> " : ">= ") + std::to_string(min) +
                           " (got " + std::to_string(v) + ")",
                       option);
  };
  if (o.num_samples < 1) throw UsageError("must be at least 1", "--num-samples");
  if (o.batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
  if (o.warmup < 0) throw UsageError("warm-up must be >= 0", "--warmup");
  if (o.repeats < 1) throw UsageError("must be at least 1", "--repeats");
  finite_at_least(o.max_quality_loss, 0, false, "--max-quality-loss");
  if (o.min_speedup) finite_at_least(*o.min_speedup, 0, true, "--min-speedup");
  if (o.max_latency) finite_at_least(*o.max_latency, 0, true, "--max-latency");
  if (o.memory_budget && *o.memory_budget < 0) throw UsageError("must be >= 0", "--memory-budget");
  if (o.metrics.clip && o.clip.empty()) throw UsageError("a CLIP scorer folder is needed: --clip DIR", "--clip");
  if (o.metrics.lpips && o.lpips.empty()) throw UsageError("LPIPS needs its weights: --lpips FILE", "--metrics");
  if (o.metrics.distribution() && o.inception.empty())
    throw UsageError("KID and FID need the FID Inception weights: --inception FILE", "--metrics");
  if (o.metrics.distribution() && o.num_samples * std::max<size_t>(1, o.seeds.size()) < 2)
    throw UsageError("KID and FID compare image sets: at least 2 images per run are needed", "--num-samples");
  if (!o.reference_images.empty() && !o.metrics.distribution())
    throw UsageError("reference images are compared by KID and FID: add kid or fid to --metrics (and --inception FILE)",
                     "--reference-images");
  if (o.distribution.max_fid_increase && !o.metrics.fid)
    throw UsageError("FID is not computed: add fid to --metrics", "--max-fid-increase");
  if (o.distribution.max_kid && !o.metrics.kid) throw UsageError("KID is not computed: add kid to --metrics", "--max-kid");
  validate_metric_loss_limits(o.max_metric_loss, o.metrics, !o.reference_images.empty());
  validate_preference_options(o.metrics, o.pickscore, o.hps);
  for (size_t i = 0; i < o.seeds.size(); ++i)
    for (size_t j = 0; j < i; ++j)
      if (o.seeds[i] == o.seeds[j]) throw UsageError("seed " + std::to_string(o.seeds[i]) + " is listed twice", "--seeds");
}

EvalResult run_eval(const EvalOptions& o, const Logger& log) {
  // Where the command's wall clock goes (report.json "wall_clock_s", report.md).
  const auto started = std::chrono::steady_clock::now();
  auto lap = [last = started]() mutable {
    const auto now = std::chrono::steady_clock::now();
    const double s = std::chrono::duration<double>(now - last).count();
    last = now;
    return s;
  };
  nlohmann::json wall = {{"process_setup", process_age_s() - o.cache_key_s}};
  if (o.cache_key_s > 0) wall["baseline_cache_key"] = o.cache_key_s;
  validate_eval_options(o);
  ProcessGroup* const group = o.group;
  const bool root = !group || group->root();  // rank 0 scores and writes the report
  if (group) require_per_prompt_noise(o.noise);
  if (group && o.baseline_result)
    throw UsageError("a reused baseline is not supported in a multi-process run", "--baseline-cache");
  const PipelineSpec candidate = o.candidate;
  const PipelineSpec baseline = o.baseline ? *o.baseline : candidate.baseline();
  // Methods are created (and plugins loaded) before anything else runs, so a bad one fails early.
  const RunProtocol protocol = eval_protocol(o);
  SpecRun base_spec_run = prepare_run(baseline, protocol);
  SpecRun cand_spec_run = prepare_run(candidate, protocol);

  // Everything that can fail on input is checked before any generation.
  nlohmann::json consistency = check_consistency(baseline, candidate, o.allow_model_mismatch);
  consistency["comparison"] = check_comparable(baseline, candidate, consistency, o);
  const PromptSet prompt_set = load_prompts(o.prompts, o.num_samples);
  const auto& prompts = prompt_set.prompts;
  const Shard shard = group ? shard_prompts(prompts.size(), o.batch_size, group->world()) : Shard{0, prompts.size()};
  const fs::path out = o.out.empty() ? default_out(candidate) : o.out;
  // A bad or occupied --out fails here, before any generation (rank 0's alone in a multi-process
  // run); an interrupted run's folder is adopted with --resume, else removed.
  std::optional<StagingDir> staging;
  std::optional<KeepPartialOnFailure> keep_partial;
  if (root) {
    staging.emplace(out, o.force, StagingResume{EvalJournal::kFile, o.resume});
    keep_partial.emplace(*staging);
    for (const auto& stale : staging->removed_stale()) {
      const auto& resumable = staging->removed_resumable();
      const bool had_journal = std::find(resumable.begin(), resumable.end(), stale) != resumable.end();
      log.info("removed " + stale.string() + " (left by an ended run" +
               (had_journal ? "; it was interrupted with finished batches, which `eval ... --resume` would have "
                              "continued instead)"
                            : ")"));
    }
  }
  // The run journals its batches for --resume (eval_journal.hpp): one process, or every rank of a
  // multi-process run whose ranks all see rank 0's staging folder, each writing its own batches'
  // PNGs and journal lines there. The key material is the same whatever the world size.
  const nlohmann::json material = root ? eval_journal_material(baseline, candidate, o, prompts) : nlohmann::json();
  const int world_size = group ? group->world().size : 1;
  std::optional<EvalJournal> journal;
  std::optional<fs::path> shared_dir;  // the staging folder every rank of a multi-process run writes into
  if (group) shared_dir = shared_staging(*group, staging ? &staging->path() : nullptr, log);
  if (group && !shared_dir && staging && !staging->adopted().empty())
    throw UsageError("the ranks do not all see the interrupted run's folder " + staging->path().string() +
                         ", so they cannot continue it: resume on a file system every rank sees, or with one process",
                     "--resume");
  if (staging && !staging->adopted().empty()) {
    journal = EvalJournal::resume(staging->path(), material, world_size);
    log.info("resuming the interrupted run in " + staging->adopted().string() + " (" +
             std::to_string(journal->batches().size()) + " finished batches, process " +
             std::to_string(journal->processes()) + (group ? ", " + std::to_string(world_size) + " ranks" : "") + ")");
  } else if (o.resume && root) {
    log.info("--resume: no interrupted run of " + normalize_output_path(out).string() + " to continue; starting a new run");
  }
  if (shared_dir) {
    if (root && !journal)
      journal = EvalJournal::create(staging->path(), material, eval_schedule(base_spec_run, cand_spec_run, o), world_size);
    journal = share_journal(*group, *shared_dir, journal ? &*journal : nullptr);
  }
  wall["checks_and_inputs"] = lap();
  // On CUDA the scorer lives on a thread of its own: it loads there while the pipelines load and warm up
  // (on their device, in float16), warms up there (every prompt's text features and one batch of
  // images: LibTorch keeps cuDNN's attention plans per thread) and scores there, on a stream of its
  // own. It is waited for before the first timed batch, so it never overlaps one.
  const at::Device device = parse_device(candidate.device);
  double scorer_load_s = 0, scorer_warm_up_s = 0;
  std::optional<WorkerThread> scorer_thread;
  std::future<std::unique_ptr<ClipScorer>> scorer_loading;  // none without the clip metric
  if (o.metrics.clip && root) {
    auto load = [&] {
      use_own_stream(device);
      auto t0 = std::chrono::steady_clock::now();
      auto s = ClipScorer::load(o.clip, device);
      scorer_load_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      if (device.is_cuda()) {
        t0 = std::chrono::steady_clock::now();
        s->warm_up(prompts, static_cast<int>(std::min(prompts.size(), static_cast<size_t>(o.batch_size))));
        scorer_warm_up_s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
      }
      return s;
    };
    // On the CPU the scorer loads on a thread and scores on the caller's: a second thread's OpenMP team
    // would keep spinning into the next timed batch on the same cores.
    if (device.is_cuda()) {
      scorer_thread.emplace();
      scorer_loading = scorer_thread->submit(load);
    } else {
      scorer_loading = std::async(std::launch::async, load);
    }
  }
  std::unique_ptr<ClipScorer> scorer;
  double scorer_wait_s = 0;
  auto join_scorer = [&] {
    const auto t0 = std::chrono::steady_clock::now();
    if (!scorer && scorer_loading.valid()) scorer = scorer_loading.get();
    scorer_wait_s += std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  // Per-image CLIP scores of uint8 [n,3,H,W] images against their prompts, on the scorer's thread.
  auto clip_scores = [&](const at::Tensor& images, const std::vector<std::string>& texts) {
    const auto score = [&] { return scorer->score(images, texts); };
    return scorer_thread ? scorer_thread->run(score) : score();
  };
  const std::unique_ptr<Lpips> lpips = root && o.metrics.lpips ? Lpips::load(o.lpips) : nullptr;
  const std::unique_ptr<InceptionFeatures> inception =
      root && o.metrics.distribution() ? InceptionFeatures::load(o.inception) : nullptr;
  const auto reference_files =
      !root || o.reference_images.empty() ? std::vector<fs::path>{} : image_set_files(o.reference_images);
  const PreferenceScorers preference =
      root ? load_preference_scorers(o.metrics, o.pickscore, o.hps) : PreferenceScorers{};
  wall["device_query_and_lpips_load"] = lap();

  // A new multi-process run's ranks choose by their own memory; a resumed run keeps its schedule.
  const bool journal_schedule = journal && (root || journal->process() > 0);
  const ScheduleChoice schedule = journal_schedule ? journal->schedule() : eval_schedule(base_spec_run, cand_spec_run, o);
  if (!journal && !group) journal = EvalJournal::create(staging->path(), material, schedule);

  // One seed: baseline/NNNNNN.png; several: baseline/seed-S/NNNNNN.png.
  const std::vector<uint64_t> seeds = eval_seeds(o);
  auto image_dir = [&](const char* side, size_t k) {
    return seeds.size() == 1 ? std::string(side) : std::string(side) + "/seed-" + std::to_string(seeds[k]);
  };
  // The folder the batches' PNGs go to: the staging folder, which every rank of a journalled
  // multi-process run writes into.
  const fs::path batch_root = shared_dir ? *shared_dir : staging ? staging->path() : fs::path();
  auto batch_files = [&](const JournalBatch& b) {
    const fs::path dir = batch_root / image_dir(b.at.side == 0 ? "baseline" : "candidate",
                                                     static_cast<size_t>(b.at.pass / o.repeats));
    std::vector<fs::path> files;
    for (size_t i = 0; i < b.record.count; ++i) files.push_back(dir / png_sequence_name(b.record.first + i));
    return files;
  };
  // The image metrics, a batch at a time as the batches finish (rank 0 of a multi-process run: the
  // gathered images, a batch at a time); a batch's partner is read back from its PNGs.
  // One process's finished batches are written (PNGs, then journal line) by `writer`: on a GPU
  // while the next batch is generated, on the CPU before it starts.
  std::optional<BatchWriter> writer;
  if (journal) writer.emplace(*journal, device.is_cuda());
  std::optional<StreamedQuality> quality;
  if (root) {
    StreamedQualityInputs qin;
    qin.metrics = o.metrics;
    qin.prompts = prompts.size();
    qin.seeds = seeds.size();
    qin.batch_size = o.batch_size;
    qin.prompt_texts = &prompts;
    qin.lpips = lpips.get();
    qin.inception = inception.get();
    qin.preference = &preference;
    qin.device = device;
    qin.reused = o.baseline_result.get();
    qin.decode_ahead = device.is_cuda() && !group;
    quality.emplace(qin, [&](int side, size_t k, size_t first, size_t count) {
      if (writer) writer->drain();  // the partner's PNGs may still be on their way to disk
      const fs::path dir = staging->path() / image_dir(side == 0 ? "baseline" : "candidate", k);
      std::vector<fs::path> files;
      for (size_t i = first; i < first + count; ++i) files.push_back(dir / png_sequence_name(i));
      return at::stack(read_pngs(files));  // decoded on several threads
    });
  }
  auto stream = [&](const JournalBatch& b, const at::Tensor& images) {
    quality->add(b.at.side, static_cast<size_t>(b.at.pass / o.repeats), b.record.first, images);
  };
  // In one process each timed batch is scored and streamed right after it ran, then handed to the
  // writer (its PNGs and journal line); between batches a signal (o.stop) ends the run, its staging
  // folder kept for --resume. Journalled batches: the run's so far (one process), this rank's own (a
  // multi-process run), plus what the writer has written.
  const size_t journaled_before = journal && !group ? journal->batches().size() : 0;
  double batch_work_s = 0;  // between timed batches: CLIP scoring, image metrics, handing PNGs to the writer
  double batch_clip_s = 0, batch_metrics_s = 0;
  auto since_s = [](std::chrono::steady_clock::time_point t) {
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
  };
  // A multi-process run stops together: a signal to any rank is published to all, each ends after
  // its batch under way and waits for the others to do so before the run ends (ranks that already
  // wait for the results end with it).
  auto check_stop = [&] {
    int sig = o.stop ? static_cast<int>(*o.stop) : 0;
    if (group && sig) group->request_stop(sig);
    if (group && !sig) sig = group->stop_requested();
    if (sig == 0) return;
    if (writer) writer->drain();  // every batch finished here is kept
    if (group) {
      group->settle();
      group->wait_settled(std::chrono::minutes(5));
    }
    const std::string who = group ? " on " + group->world().describe() : "";
    if (!journal)
      throw Interrupted(sig, "interrupted by " + signal_name(sig) + who, normalize_output_path(out).string());
    if (keep_partial) keep_partial->keep();
    const size_t journaled = journaled_before + writer->written();
    throw Interrupted(sig, "interrupted by " + signal_name(sig) + who + " after " + (group ? "its " : "") +
                               std::to_string(journaled) + " finished timed batches, which are kept in " +
                               journal->file().parent_path().string() + "; run the same command with --resume to continue",
                      normalize_output_path(out).string());
  };
  auto score_batch = [&](JournalBatch& b, const at::Tensor& images) {
    const std::vector<std::string> texts(prompts.begin() + static_cast<std::ptrdiff_t>(b.record.first),
                                         prompts.begin() + static_cast<std::ptrdiff_t>(b.record.first + b.record.count));
    b.clip = clip_scores(images, texts);
  };
  // A finished batch, handed to the writer: its PNGs (under their global index) into the staging
  // folder every rank writes into, then its journal line (durable once the writer has drained).
  auto write_and_journal_batch = [&](JournalBatch& b, const at::Tensor& images) {
    if (images.defined()) b.images = true;
    writer->push(b, images.defined() ? batch_files(b) : std::vector<fs::path>{}, images);
  };
  TimedRunHooks hooks;
  hooks.before_timing = join_scorer;
  hooks.before_batch = check_stop;
  if (journal && !group) {
    hooks.after_batch = [&](JournalBatch& b, const at::Tensor& images) {
      const auto t0 = std::chrono::steady_clock::now();
      // One copy off the device, for the CLIP scorer's preprocessing and the PNGs.
      const at::Tensor host = images.defined() ? images.cpu() : images;
      const bool reused_side = b.at.side == 0 && o.baseline_result;
      if (images.defined() && scorer && !reused_side) score_batch(b, host);
      batch_clip_s += since_s(t0);
      const auto t1 = std::chrono::steady_clock::now();
      if (images.defined()) stream(b, images);
      batch_metrics_s += since_s(t1);
      write_and_journal_batch(b, host);
      batch_work_s += since_s(t0);
      check_stop();
    };
    hooks.finished_images = [&](JournalBatch& b) {
      if (!b.images) throw InputError("the journal's batch has no images", journal->file().string());
      const at::Tensor images = at::stack(read_pngs(batch_files(b)));  // decoded on several threads
      const bool reused_side = b.at.side == 0 && o.baseline_result;
      if (b.clip.empty() && o.metrics.clip && !reused_side) {  // a rank of a multi-process run made it: not scored
        join_scorer();
        score_batch(b, images);
      }
      stream(b, images);
    };
  } else if (journal) {  // a rank of a multi-process run: rank 0 reads every batch back after the last
    hooks.after_batch = [&](JournalBatch& b, const at::Tensor& images) {
      write_and_journal_batch(b, images);
      check_stop();
    };
  }
  if (journal) {
    hooks.finished = &journal->batches();
    hooks.process = journal->process();
  }
  hooks.keep_images = group && !journal;  // gathered to rank 0 (no journal, no after_batch)
  const std::vector<std::string> shard_prompts_list(prompts.begin() + static_cast<std::ptrdiff_t>(shard.first),
                                                      prompts.begin() + static_cast<std::ptrdiff_t>(shard.end));
  if (group)
    log.info(group->world().describe() + ": generating prompts " + std::to_string(shard.first) + "-" +
             std::to_string(shard.end - 1) + " of " + std::to_string(prompts.size()));
  // Automatic timing passes are decided from a process's own batches, so the ranks of a multi-process
  // run would time different numbers of passes: there only the passes asked for (--repeats) run.
  EvalOptions timed_options = o;
  if (group) timed_options.auto_repeats = false;
  TimedRuns timed =
      run_timed(base_spec_run, cand_spec_run, shard_prompts_list, timed_options, schedule, log, hooks, shard.first);
  join_scorer();  // in case no batch was timed
  if (writer) writer->drain();
  {
    const double loads = timed.baseline.load_wall_s + timed.candidate.load_wall_s;
    const double warmups = timed.baseline.warmup_wall_s + timed.candidate.warmup_wall_s;
    const double total = lap();
    wall["pipeline_loads"] = loads;
    wall["warm_up"] = warmups;
    wall["clip_scorer_load_on_thread"] = scorer_load_s;
    wall["clip_scorer_warm_up_on_thread"] = scorer_warm_up_s;
    wall["clip_scorer_wait"] = scorer_wait_s;
    wall["timed_generation"] = total - loads - warmups - scorer_wait_s - batch_work_s;
  }
  nlohmann::json distributed;  // the report's "distributed" section (rank 0 of a multi-process run)
  if (group) {
    group->settle();  // no more batches here: a stop need not wait for this rank
    timed = gather_timed_runs(*group, std::move(timed), shard, wall["timed_generation"].get<double>(),
                              cand_spec_run.model.device.str(), &distributed);
    wall["gather_from_ranks"] = lap();
    if (!root) {
      // The group stays watched until the command ends (a suite runs more evaluations over it).
      log.info(group->world().describe() + ": done; rank 0 scores and writes the report");
      return EvalResult{};
    }
  }
  if (group && journal) {
    // Every rank's batches (and earlier processes') are PNGs in the staging folder: rank 0 reads them
    // back a batch at a time, in prompt order with each batch's partner, and scores them in the
    // timed batches, as one process does.
    if (scorer) log.info("scoring with CLIP (" + scorer->layout() + ")");
    std::vector<std::vector<double>> clip[2];
    for (size_t k = 0; k < seeds.size(); ++k)
      for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(o.batch_size)) {
        JournalBatch b;
        b.at.pass = static_cast<int>(k) * o.repeats;
        b.record.first = first;
        b.record.count = std::min(static_cast<size_t>(o.batch_size), prompts.size() - first);
        for (int side = 0; side < 2; ++side) {
          b.at.side = side;
          const at::Tensor images = at::stack(read_pngs(batch_files(b)));  // decoded on several threads
          quality->add(side, k, first, images);
          if (!scorer) continue;
          score_batch(b, images);
          clip[side].resize(seeds.size());
          clip[side][k].insert(clip[side][k].end(), b.clip.begin(), b.clip.end());
        }
      }
    timed.baseline.per_seed_clip = clip[0];
    timed.candidate.per_seed_clip = clip[1];
  } else if (group) {  // rank 0 holds every rank's images: streamed a batch at a time as one process does
    quality->holding(2 * static_cast<int64_t>(seeds.size() * prompts.size()));
    for (size_t k = 0; k < seeds.size(); ++k)
      for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(o.batch_size)) {
        const auto n = static_cast<int64_t>(std::min(static_cast<size_t>(o.batch_size), prompts.size() - first));
        quality->add(0, k, first, timed.baseline_images[k].narrow(0, static_cast<int64_t>(first), n));
        quality->add(1, k, first, timed.candidate_images[k].narrow(0, static_cast<int64_t>(first), n));
      }
  }
  quality->finish();
  PipelineRun& base_run = timed.baseline;
  PipelineRun& cand_run = timed.candidate;

  nlohmann::json reuse;  // null unless a baseline run was reused
  if (o.baseline_result) {
    reuse = baseline_reuse_json(*o.baseline_result, timed, quality->reproduction());
    base_run.per_seed_clip = o.baseline_result->run.per_seed_clip;
  }
  PooledScores pooled;
  if (scorer) {  // one process scored each batch as it finished (or the process it continues); rank 0 scores now
    for (auto [run, images] : {std::pair{&base_run, &timed.baseline_images}, std::pair{&cand_run, &timed.candidate_images}})
      if (run->per_seed_clip.empty()) {
        log.info("scoring with CLIP (" + scorer->layout() + ")");
        for (size_t k = 0; k < seeds.size(); ++k) {  // in the timed batches, as one process scores them
          std::vector<double> scores;
          for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(o.batch_size)) {
            const size_t n = std::min(static_cast<size_t>(o.batch_size), prompts.size() - first);
            const std::vector<std::string> texts(prompts.begin() + static_cast<std::ptrdiff_t>(first),
                                                 prompts.begin() + static_cast<std::ptrdiff_t>(first + n));
            const auto batch = clip_scores((*images)[k].narrow(0, static_cast<int64_t>(first), static_cast<int64_t>(n)), texts);
            scores.insert(scores.end(), batch.begin(), batch.end());
          }
          run->per_seed_clip.push_back(std::move(scores));
        }
      }
    pooled = pool_scores(base_run.per_seed_clip, cand_run.per_seed_clip, o.clip_score, o.seed);
    base_run.per_sample_clip = base_run.per_seed_clip.front();
    cand_run.per_sample_clip = cand_run.per_seed_clip.front();
    base_run.clip_score = pooled.baseline;
    cand_run.clip_score = pooled.candidate;
  }
  wall["clip_scoring"] = lap() + batch_work_s;  // with each batch's image metrics and PNG hand-off
  wall["batch_clip_scoring"] = batch_clip_s;      // the parts of clip_scoring done between timed batches
  wall["batch_image_metrics"] = batch_metrics_s;
  wall["batch_png_handoff"] = batch_work_s - batch_clip_s - batch_metrics_s;
  const PairedStats& paired = pooled.paired;

  // Candidate vs baseline, per prompt (the first seed's images), compared batch by batch.
  const FidelityScores fidelity = quality->fidelity();

  wall["fidelity_metrics"] = lap();
  const SpeedupStats speed =
      speedup_stats(base_run.batch_seconds, cand_run.batch_seconds, base_run.batch_images, o.seed);
  const QualityLoss loss = scorer ? quality_loss(base_run.clip_score, cand_run.clip_score) : QualityLoss{};

  EvalResult res;
  auto fail = [&res](const char* code, const std::string& message) {
    res.failures.push_back(message);
    res.failure_codes.push_back(code);
  };
  nlohmann::json warnings = run_warnings(speed, base_run, cand_run);
  if (!reuse.is_null()) {
    warnings.push_back({{"code", "baseline_reused"},
                        {"message", "baseline images and CLIP scores reused from " + reuse.value("source", "") +
                                        (timed.baseline_timed ? "; baseline times measured now, beside the candidate"
                                                              : "; baseline times reused too (sequential schedule)")}});
    if (auto message = reproduction_warning(reuse, cand_spec_run.model.device))
      warnings.push_back({{"code", "baseline_not_reproduced"}, {"message", *message}});
  }
  nlohmann::json thresholds = nlohmann::json::object();  // without CLIP no quality loss: other metrics decide
  if (scorer) thresholds["max_quality_loss_pct"] = o.max_quality_loss;
  if (scorer && !loss.pct)
    fail("quality_loss", "quality loss is undefined: " + loss.undefined_reason + "; --max-quality-loss " +
                             fixed(o.max_quality_loss, 2) + " % cannot be checked");
  else if (scorer && *loss.pct > o.max_quality_loss)
    fail("quality_loss", "quality loss " + fixed(*loss.pct, 2) + " % exceeds --max-quality-loss " +
                             fixed(o.max_quality_loss, 2) + " %");
  if (o.min_speedup) {
    const SpeedupCheck check = check_min_speedup(speed, *o.min_speedup);
    thresholds["min_speedup"] = *o.min_speedup;
    thresholds["min_speedup_check"] = {
        {"rule", "fails only when the 95 % interval's upper end is below the threshold"},
        {"result", check.failed ? "failed" : check.uncertain ? "passed-uncertain" : "passed"},
        {"note", check.message}};
    if (check.failed) fail("too_slow", check.message);
    else if (check.uncertain) warnings.push_back({{"code", "min_speedup_uncertain"}, {"message", check.message}});
  }
  if (o.max_latency) {
    thresholds["max_latency_s"] = *o.max_latency;
    if (cand_run.seconds_per_image > *o.max_latency)
      fail("latency", "candidate latency " + fixed(cand_run.seconds_per_image, 4) + " s/image exceeds --max-latency " +
                          fixed(*o.max_latency, 4) + " s");
  }
  nlohmann::json metrics = fidelity_metrics_json(
      fidelity, "candidate image vs the baseline image of the same prompt and seed", o.fidelity, o.seed, &res.failures);
  res.failure_codes.resize(res.failures.size(), "fidelity");
  if (o.fidelity.min_psnr) thresholds["min_psnr_db"] = *o.fidelity.min_psnr;
  if (o.fidelity.min_ssim) thresholds["min_ssim"] = *o.fidelity.min_ssim;
  if (o.fidelity.max_lpips) thresholds["max_lpips"] = *o.fidelity.max_lpips;
  if (scorer)
    metrics["clip"] = {{"compares", "each image with its prompt (100·cos of the CLIP embeddings)"},
                       {"direction", "higher-is-better"},
                       {"baseline", base_run.clip_score},
                       {"candidate", cand_run.clip_score},
                       {"loss_pct", loss.pct ? nlohmann::json(*loss.pct) : nlohmann::json()},
                       {"paired", "see paired"}};
  if (inception) {
    metrics.update(eval_distribution_metrics(*inception, quality->features(0), quality->features(1), reference_files,
                                             o.reference_images, o.metrics, o.distribution, o.batch_size, o.seed,
                                             &res.failures, log));
    res.failure_codes.resize(res.failures.size(), "distribution");
    if (o.distribution.max_fid_increase) thresholds["max_fid_increase"] = *o.distribution.max_fid_increase;
    if (o.distribution.max_kid) thresholds["max_kid"] = *o.distribution.max_kid;
  }
  for (const PreferenceScorer* s : {preference.pickscore.get(), preference.hps.get()})
    if (s) metrics[to_string(s->model())] = preference_metrics_json(*s, quality->preference(0, s), quality->preference(1, s), o.seed);
  if (!o.max_metric_loss.empty())
    thresholds["max_metric_loss_pct"] = apply_metric_loss_limits(o.max_metric_loss, metrics, &res.failures);
  res.failure_codes.resize(res.failures.size(), "metric_loss");
  std::string per_prompt_order;
  const nlohmann::json per_prompt =
      per_prompt_rows(prompts, base_run.per_sample_clip, cand_run.per_sample_clip, fidelity, &per_prompt_order);
  res.passed = res.failures.empty();

  nlohmann::json r;
  r["schema"] = "diffbench.eval/2";
  r["protocol"] = {{"prompts_source", prompt_set.source}, {"prompts", prompts},      {"num_samples", prompts.size()},
                   {"batch_size", o.batch_size},           {"seed", o.seed},          {"warmup", o.warmup},
                   {"noise", to_string(o.noise)},          {"clip", o.clip.string()},
                   {"clip_layout", scorer ? scorer->layout() : std::string()},
                   {"clip_score", to_string(o.clip_score)}, {"metrics", to_string(o.metrics)}, {"repeats", o.repeats},
                   {"seeds", seeds}};
  if (!o.clip_source.is_null()) r["protocol"]["clip_source"] = o.clip_source;
  r["protocol"]["defaults_used"] = o.defaults_used;
  r["schedule"] = timed.schedule.to_json();
  r["schedule"]["order"] = timed.order;
  if (!reuse.is_null()) r["baseline_reuse"] = reuse;
  r["baseline"] = run_json(base_run);
  r["candidate"] = run_json(cand_run);
  if (!scorer) r["baseline"]["clip_score"] = r["candidate"]["clip_score"] = nullptr;  // not computed
  if (!o.reference_images.empty()) r["protocol"]["reference_images"] = o.reference_images.string();
  if (inception) r["protocol"]["inception"] = o.inception.string();
  r["speedup"] = speed.speedup;
  r["speedup_ci"] = {speed.ci_low, speed.ci_high};
  r["timing"] = speed.to_json();
  const int processes = journal ? journal->processes() : 1;
  r["timing"]["processes"] = processes;
  // Each process's world size (a resumed run may have continued with another).
  r["timing"]["world_sizes"] = journal ? nlohmann::json(journal->world_sizes()) : nlohmann::json::array({world_size});
  r["timing"]["automatic_passes"] = timed.automatic.to_json();
  if (processes > 1)
    warnings.push_back({{"code", "resumed"},
                        {"message", "timings come from " + std::to_string(processes) +
                                        " processes: the run was interrupted and continued with --resume "
                                        "(batch_process in report.json says which process timed each batch; "
                                        "timing.world_sizes how many ranks each had)"}});
  r["quality_loss_pct"] = loss.pct ? nlohmann::json(*loss.pct) : nlohmann::json();
  if (scorer && !loss.pct) r["quality_loss_undefined"] = loss.undefined_reason;
  if (scorer && seeds.size() > 1) r["per_seed"] = per_seed_json(seeds, base_run, cand_run, o.clip_score);
  if (scorer)
    r["paired"] = {{"diff", seeds.size() > 1 ? "baseline - candidate, per prompt, averaged over its seeds"
                                             : "baseline - candidate, per prompt"},
                   {"mean_diff", paired.mean_diff},
                   {"ci95", {paired.ci_low, paired.ci_high}},
                   {"resamples", 10000}};
  r["metrics"] = metrics;
  r["per_prompt"] = with_preference_columns(per_prompt, metrics);
  r["per_prompt_order"] = per_prompt_order;
  r["consistency"] = consistency;
  r["thresholds"] = thresholds;
  r["warnings"] = warnings;
  r["passed"] = res.passed;
  r["failures"] = res.failures;
  r["environment"] = environment_info(cand_spec_run.model.device);
  if (group) r["distributed"] = distributed;

  r["image_dirs"] = {{"baseline", image_dir("baseline", 0)}, {"candidate", image_dir("candidate", 0)}};
  // One process wrote the timed batches' PNGs as they finished; a reused baseline's images are the
  // reused ones, written a batch at a time; rank 0 of a multi-process run writes the gathered images.
  const auto images_started = std::chrono::steady_clock::now();
  for (size_t k = 0; k < seeds.size(); ++k) {
    if (!journal) {
      write_png_sequence(staging->path() / image_dir("baseline", k), timed.baseline_images[k]);
      write_png_sequence(staging->path() / image_dir("candidate", k), timed.candidate_images[k]);
    } else if (o.baseline_result) {
      o.baseline_result->write_pngs(k, prompts.size(), staging->path() / image_dir("baseline", k));
    }
  }
  wall["output_images"] = since_s(images_started);  // part of statistics_and_images
  const bool gathered = group && !journal;  // rank 0 got every rank's images through the group
  r["memory"] = {{"max_images_held", quality->max_images_held()},
                 {"bound", gathered ? nlohmann::json() : nlohmann::json(quality->bound())},
                 {"note", gathered ? "the ranks of this multi-process run do not share the staging folder, so rank 0 "
                                  "gathered every rank's images and held them all (the two-batch bound holds otherwise)"
                                : "decoded images held at once by the evaluation: each batch is scored, compared and "
                                  "written as it finishes, its partner for PSNR/SSIM/LPIPS kept from the batch before "
                                  "or read back from its PNGs (a reused baseline's next batch decoded ahead on a GPU); "
                                  "only per-prompt scores and Inception features are kept"}};
  wall["statistics_and_images"] = lap();
  r["wall_clock_s"] = wall;
  r["wall_clock_s"]["total"] = wall["process_setup"].get<double>() + o.cache_key_s +
                               std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count();
  const auto files_started = std::chrono::steady_clock::now();
  write_file_atomic(staging->path() / "report.json", r.dump(2) + "\n");
  write_file_atomic(staging->path() / "report.md", render_markdown(r));
  HtmlReportOptions html;
  html.embed_images = o.embed_images;
  if (quality) html.channel_abs_diff_sums = quality->channel_abs_diff_sums();  // no PNG decoded again
  write_html_report(staging->path(), r, html);
  if (journal) journal->remove_files();  // the finished report does not need them
  staging->commit();
  log.info("wrote " + (out / "report.html").string() + " (report files " + fixed(since_s(files_started), 2) +
           " s after the total above)");
  res.report = std::move(r);
  res.out = out;
  if (o.baseline_result) {
    res.baseline_result = o.baseline_result;
  } else {
    auto made = std::make_shared<BaselineResult>();
    made->run = std::move(base_run);
    for (size_t k = 0; k < seeds.size(); ++k) made->image_dirs.push_back(staging->target() / image_dir("baseline", k));
    made->provenance = {{"source", "run"}};
    res.baseline_result = std::move(made);
  }
  return res;
}

}  // namespace diffbench
