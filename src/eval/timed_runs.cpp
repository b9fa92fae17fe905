#include "timed_runs.hpp"

#include <chrono>
#include <fstream>
#include <optional>
#include <set>

#include "diffbench/error.hpp"
#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/io/diffusers_folder.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/io/file_identity.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/progress.hpp"
#include "device_timer.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// Components one pipeline hands to the next (text encoder and VAE, when their files match).
using Shared = std::shared_ptr<const Txt2ImgPipeline::SharedComponents>;

// One side of the comparison: its pipeline, the generation of the pass under way, and what its
// timed batches measured.
class Side {
 public:
  Side(std::string label, SpecRun& spec_run, const std::vector<std::string>& prompts, const EvalOptions& o,
       size_t first_index)
      : label_(std::move(label)), spec_run_(spec_run), mo_(spec_run.model), go_(spec_run.generate), prompts_(prompts),
        warmup_(o.warmup), seeds_(eval_seeds(o)), repeats_(o.repeats),
        regular_passes_(o.repeats * static_cast<int>(seeds_.size())), device_timer_(spec_run.model.device) {
    go_.seed = seeds_.front();  // the warm-up's
    go_.first_index = first_index;
    run.spec = spec_run.spec;
  }

  bool loaded() const { return pipe_ != nullptr; }

  // Loads the pipeline (reusing `*shared` where identical, then leaving its components there) and
  // runs the untimed warm-up batches.
  void load_and_warm_up(Shared* shared, const Logger& log) {
    log.info(label_ + ": loading " + mo_.dir.string());
    auto t0 = Clock::now();
    pipe_ = Txt2ImgPipeline::load(mo_, log, *shared);
    run.load_wall_s += seconds_since(t0);
    *shared = pipe_->shared_components();
    run.reused_components = pipe_->load_report().value("reused", nlohmann::json::array());
    run.load_s = pipe_->load_report();
    t0 = Clock::now();
    const std::vector<std::string> warm(prompts_.begin(),
                                        prompts_.begin() + std::min(prompts_.size(), static_cast<size_t>(go_.batch_size)));
    GenerateOptions warm_go = go_;
    warm_go.warm_up_only = true;  // captured graphs are not replayed: the warm-up's images are not used
    for (int i = 0; i < warmup_; ++i) {
      log.info(label_ + ": warm-up batch " + std::to_string(i + 1) + "/" + std::to_string(warmup_));
      pipe_->generate(warm, warm_go, {}, Logger::silent());
    }
    run.warmup_wall_s += seconds_since(t0);
  }

  void unload() {
    generation_.reset();
    pipe_.reset();
  }

  // Times the next batch of pass `pass` (a pass's batches come in prompt order); `since` is the
  // start of the first timed batch of either side. Passes from regular_passes_ on are automatic
  // ones: the first seed's prompts again, for their times only.
  void time_batch(int pass, Clock::time_point since, const Logger& log) {
    if (!generation_) {
      if (pass == 0) spec_run_.methods.reset_stats();  // count the timed run only
      go_.seed = pass < regular_passes_ ? seeds_[static_cast<size_t>(pass / repeats_)] : seeds_.front();
      generation_.emplace(pipe_->start(prompts_, go_));
      log.info(label_ + ": pass " + std::to_string(pass + 1) + " (seed " + std::to_string(go_.seed) + "), generating " +
               std::to_string(prompts_.size()) + " images");
    }
    reset_peak_memory(mo_.device);
    run.batch_start_s.push_back(std::chrono::duration<double>(Clock::now() - since).count());
    device_timer_.start();
    const BatchRecord& rec = generation_->next_batch(log);
    const std::optional<double> device_seconds = device_timer_.stop();  // CUDA events; none on the CPU
    run.batch_seconds.push_back(rec.times.total);
    if (device_seconds) run.batch_device_seconds.push_back(*device_seconds);
    run.batch_images.push_back(rec.count);
    const auto [peak, kind] = peak_memory(mo_.device);
    run.peak_memory_bytes = std::max(run.peak_memory_bytes, peak);
    run.peak_memory_kind = kind;
    if (generation_->done()) {
      GenerationResult result = generation_->finish();
      generation_.reset();
      if (pass == 0) first_pass(result);
      if (pass < regular_passes_ && pass % repeats_ == 0) images.push_back(to_uint8(result.images));
    }
  }

  PipelineRun run;
  std::vector<at::Tensor> images;  // uint8, per seed

 private:
  void first_pass(const GenerationResult& result) {
    double sum = 0;
    for (const auto& b : result.batches) {
      sum += b.times.total;
      if (b.first_nonfinite_step >= 0 || b.nonfinite_images) run.nonfinite.push_back(b);
    }
    run.seconds_per_image = sum / static_cast<double>(prompts_.size());  // replaced over all passes later
    run.stages = result.times;
    run.unet_calls_per_image = result.unet_calls_per_image();
    run.skipped_module_fraction = result.skipped_module_fraction();
    run.methods = spec_run_.methods.to_json();
  }

  std::string label_;
  SpecRun& spec_run_;
  const ModelOptions& mo_;
  GenerateOptions& go_;
  const std::vector<std::string>& prompts_;
  int warmup_;
  std::vector<uint64_t> seeds_;
  int repeats_;
  int regular_passes_;  // --repeats passes per seed
  DeviceTimer device_timer_;
  std::unique_ptr<Txt2ImgPipeline> pipe_;
  std::optional<Txt2ImgPipeline::Generation> generation_;
};

// The safetensors files behind a weights path (one file, or the shards a *.index.json names).
std::vector<fs::path> weight_files(const fs::path& weights) {
  if (weights.extension() != ".json") return {weights};
  std::ifstream in(weights);
  const auto index = nlohmann::json::parse(in, nullptr, false);
  if (index.is_discarded() || !index.contains("weight_map")) throw InputError("malformed shard index", weights.string());
  std::set<std::string> names;
  for (const auto& [key, file] : index["weight_map"].items()) names.insert(file.get<std::string>());
  std::vector<fs::path> out;
  for (const auto& n : names) out.push_back(weights.parent_path() / n);
  return out;
}

int64_t tensor_bytes(const TensorInfo& t, at::ScalarType dtype) {
  int64_t n = 1;
  for (auto d : t.shape) n *= d;
  return n * static_cast<int64_t>(at::elementSize(at::isFloatingType(t.dtype) ? dtype : t.dtype));
}

int64_t weights_bytes(const ComponentSource& c, at::ScalarType dtype) {
  int64_t bytes = 0;
  if (!c.parts.empty()) {  // a single file: this component's tensors only
    for (const auto& part : c.parts)
      for (const TensorInfo* t : part.tensors) bytes += tensor_bytes(*t, dtype);
    return bytes;
  }
  for (const auto& file : weight_files(c.weights)) {
    const auto st = SafetensorsFile::open(file);  // kept alive while its tensor list is read
    for (const auto& t : st->tensors()) {
      int64_t n = 1;
      for (auto d : t.shape) n *= d;
      bytes += n * static_cast<int64_t>(at::elementSize(at::isFloatingType(t.dtype) ? dtype : t.dtype));
    }
  }
  return bytes;
}

}  // namespace

int64_t estimate_weights_bytes(const ModelOptions& baseline, const ModelOptions& candidate) {
  const std::vector<std::string> parts = {"text_encoder", "unet", "vae"};
  auto open = [](const ModelOptions& m) {
    return ModelSource::open(m.dir, ModelSourceOptions{m.variant, m.prediction_type, m.config_dir});
  };
  const auto a = open(baseline);
  const auto b = open(candidate);
  const auto da = baseline.dtype, db = candidate.dtype;
  int64_t bytes = 0;
  for (const auto& part : parts) {
    const auto& ca = a.component(part);
    const auto& cb = b.component(part);
    bytes += weights_bytes(ca, da);
    // The pipeline shares text encoder and VAE when their files match (same dtype and device).
    const bool shared = part != "unet" && da == db && baseline.device == candidate.device &&
                        (part == "vae" || baseline.loras == candidate.loras) && same_content(ca.weights, cb.weights);
    if (!shared) bytes += weights_bytes(cb, db);
  }
  // SDXL's second text encoder is loaded by each pipeline.
  if (a.has_component("text_encoder_2")) bytes += weights_bytes(a.component("text_encoder_2"), da);
  if (b.has_component("text_encoder_2")) bytes += weights_bytes(b.component("text_encoder_2"), db);
  return bytes;
}

TimedRuns run_timed(SpecRun& baseline, SpecRun& candidate, const std::vector<std::string>& prompts,
                    const EvalOptions& o, const Logger& log, const std::function<void()>& before_timing,
                    size_t first_index) {
  TimedRuns out;
  const int64_t free = o.memory_budget ? *o.memory_budget : free_memory(candidate.model.device);
  out.schedule = choose_schedule(o.schedule, estimate_weights_bytes(baseline.model, candidate.model), free);
  log.info("schedule: " + out.schedule.reason);
  const bool interleaved = out.schedule.schedule == Schedule::Interleaved;
  out.baseline_timed = interleaved || !o.baseline_result;
  if (!out.baseline_timed) log.info("baseline: reusing its earlier run (sequential schedule: nothing to time beside)");

  Side sides[2] = {Side("baseline", baseline, prompts, o, first_index),
                   Side("candidate", candidate, prompts, o, first_index)};
  Shared shared;  // the text encoder and VAE are loaded once when both pipelines have the same ones
  if (interleaved)
    for (auto& s : sides) s.load_and_warm_up(&shared, log);
  const size_t first_side = out.baseline_timed ? 0 : 1;
  const size_t batches = (prompts.size() + static_cast<size_t>(o.batch_size) - 1) / static_cast<size_t>(o.batch_size);
  std::optional<Clock::time_point> since;
  const int passes = o.repeats * static_cast<int>(eval_seeds(o).size());
  const size_t per_side = batches * static_cast<size_t>(passes);
  // The timed batches of `order` whose pass is at least `from_pass`.
  auto time_batches = [&](const std::vector<TimedBatch>& order, int from_pass, const std::string& label, size_t each) {
    Progress progress(log, label, {{"baseline", each}, {"candidate", each}});
    for (const TimedBatch& t : order) {
      if (static_cast<size_t>(t.side) < first_side || t.pass < from_pass) continue;
      Side& side = sides[t.side];
      if (!side.loaded()) {
        sides[1 - t.side].unload();  // sequential: one pipeline at a time
        side.load_and_warm_up(&shared, log);
      }
      if (!since) {
        if (before_timing) before_timing();
        since = Clock::now();
      }
      side.time_batch(t.pass, *since, log);
      progress.batch_done(static_cast<size_t>(t.side), side.run.batch_images.back(), side.run.batch_seconds.back());
      out.order += t.side == 0 ? 'B' : 'C';
    }
  };
  time_batches(timing_order(out.schedule.schedule, batches, passes), 0, "timing", per_side);
  if (interleaved && o.auto_repeats && batches > 0) {
    int pass = passes;  // the next automatic pass; the ABBA order continues across passes
    out.automatic = run_automatic_passes(
        [&] {
          return speedup_stats(sides[0].run.batch_seconds, sides[1].run.batch_seconds, sides[0].run.batch_images,
                               o.seed, 2000);
        },
        [&](const std::string& reason) {
          log.info("timing: automatic pass " + std::to_string(pass - passes + 1) + " (--repeats not given): " + reason);
          time_batches(timing_order(Schedule::Interleaved, batches, pass + 1), pass, "timing (automatic pass)", batches);
          ++pass;
        });
  }
  for (auto& s : sides) s.unload();

  for (size_t i = first_side; i < 2; ++i) {
    Side& s = sides[i];
    double sum = 0, images = 0;
    for (size_t k = 0; k < s.run.batch_seconds.size(); ++k) {
      sum += s.run.batch_seconds[k];
      images += static_cast<double>(s.run.batch_images[k]);
    }
    s.run.seconds_per_image = sum / images;  // over every pass
    if (interleaved) s.run.peak_memory_kind += "+both-loaded";
  }
  out.baseline = out.baseline_timed ? std::move(sides[0].run) : o.baseline_result->run;
  out.baseline.spec = baseline.spec;  // a reused run may have been derived under another candidate's name
  out.candidate = std::move(sides[1].run);
  out.baseline_images = out.baseline_timed ? sides[0].images : o.baseline_result->images;
  out.candidate_images = sides[1].images;
  return out;
}

}  // namespace diffbench
