#include "timed_runs.hpp"

#include <chrono>
#include <fstream>
#include <iomanip>
#include <sstream>
#include <map>
#include <optional>
#include <set>
#include <tuple>

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
#include "eval_journal.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

using Clock = std::chrono::steady_clock;
double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }
// Components one pipeline hands to the next (text encoder and VAE, when their files match).
using Shared = std::shared_ptr<const Txt2ImgPipeline::SharedComponents>;

// One side of the comparison: its pipeline, the generation of the pass under way, and what its
// timed batches measured (or an earlier process measured, for a resumed run's finished batches).
class Side {
 public:
  Side(int index, std::string label, SpecRun& spec_run, const std::vector<std::string>& prompts, const EvalOptions& o,
       size_t first_index)
      : index_(index), label_(std::move(label)), spec_run_(spec_run), mo_(spec_run.model), go_(spec_run.generate),
        prompts_(prompts), warmup_(o.warmup), seeds_(eval_seeds(o)), repeats_(o.repeats),
        regular_passes_(o.repeats * static_cast<int>(seeds_.size())),
        batches_((prompts.size() + static_cast<size_t>(o.batch_size) - 1) / static_cast<size_t>(o.batch_size)),
        device_timer_(spec_run.model.device), images_(seeds_.size()), clip_(seeds_.size()) {
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
      const auto before = pipe_->graph_set_up();
      const GenerationResult r = pipe_->generate(warm, warm_go, {}, Logger::silent());
      const auto after = pipe_->graph_set_up();
      std::ostringstream line;
      line << std::fixed << std::setprecision(2) << label_ << ": warm-up batch " << i + 1 << " took "
           << r.times.total << " s: text encoder " << r.times.text_encoder << ", denoising " << r.times.denoise;
      if (after.graphs > before.graphs || after.first_calls_s > before.first_calls_s)
        line << " (UNet first calls " << after.first_calls_s - before.first_calls_s << ", graph captures "
             << after.captures_s - before.captures_s << ")";
      line << ", VAE decode " << r.times.vae_decode;
      log.info(line.str());
    }
    run.warmup_wall_s += seconds_since(t0);
  }

  void unload() {
    generation_.reset();
    pipe_.reset();
  }

  // Times batch `t` (a pass's batches come in prompt order); `since` is the start of this
  // process's first timed batch, `offset` when that was on the run's clock. Returns its journal
  // entry; `*images` gets its images when the pass keeps them. Passes from regular_passes_ on are
  // automatic ones: the first seed's prompts again, for their times only.
  JournalBatch time_batch(const TimedBatch& t, Clock::time_point since, double offset, int process, const Logger& log,
                          at::Tensor* images) {
    const bool starting = !generation_;
    if (starting && t.pass == 0) spec_run_.methods.reset_stats();  // count the timed run only
    const nlohmann::json counters_before = t.pass == 0 ? spec_run_.methods.to_json() : nlohmann::json();
    if (starting) {
      go_.seed = t.pass < regular_passes_ ? seeds_[static_cast<size_t>(t.pass / repeats_)] : seeds_.front();
      generation_.emplace(pipe_->start(prompts_, go_));
      for (const JournalBatch& f : skipped_) generation_->skip_batch(f.record, f.noise_state);
      skipped_.clear();
      log.info(label_ + ": pass " + std::to_string(t.pass + 1) + " (seed " + std::to_string(go_.seed) + "), generating " +
               std::to_string(prompts_.size()) + " images");
    }
    reset_peak_memory(mo_.device);
    JournalBatch b;
    b.at = t;
    b.process = process;
    b.start_s = offset + std::chrono::duration<double>(Clock::now() - since).count();
    device_timer_.start();
    b.record = generation_->next_batch(log);
    b.device_seconds = device_timer_.stop();  // CUDA events; none on the CPU
    const auto [peak, kind] = peak_memory(mo_.device);
    b.peak_memory_bytes = peak;
    b.peak_memory_kind = kind;
    b.noise_state = generation_->noise_state();
    const at::Tensor batch_images = to_uint8(generation_->take_batch_images());
    if (keeps_images(t.pass)) *images = batch_images;
    if (generation_->done()) generation_.reset();
    if (t.pass == 0) b.methods = method_counters_delta(counters_before, spec_run_.methods.to_json());
    return b;
  }

  // Takes in the batch an earlier process finished (its prompts local to this side's list): the
  // next batch of the pass under way, or one before that pass's generation starts.
  void skip_batch(const JournalBatch& b) {
    if (generation_) {
      generation_->skip_batch(b.record, b.noise_state);
      if (generation_->done()) generation_.reset();
    } else if (b.at.batch + 1 == batches_) {
      skipped_.clear();  // the rest of the pass finished: no generation needed
    } else {
      skipped_.push_back(b);
    }
    add(b, at::Tensor());
  }

  // Records a batch, timed now (`b` as after_batch left it) or before; `images` are kept when
  // defined (TimedRunHooks::keep_images).
  void add(const JournalBatch& b, const at::Tensor& images) {
    run.batch_start_s.push_back(b.start_s);
    run.batch_seconds.push_back(b.record.times.total);
    if (b.device_seconds) run.batch_device_seconds.push_back(*b.device_seconds);
    run.batch_images.push_back(b.record.count);
    run.batch_process.push_back(b.process);
    run.peak_memory_bytes = std::max(run.peak_memory_bytes, b.peak_memory_bytes);
    run.peak_memory_kind = b.peak_memory_kind;
    if (b.at.pass == 0) {
      first_pass_.push_back(b.record);
      first_pass_methods_ = add_method_counters(first_pass_methods_, b.methods);  // each batch's own counters
      if (b.at.batch + 1 == batches_) finish_first_pass(first_pass_methods_);
    }
    if (keeps_images(b.at.pass)) {
      const size_t k = static_cast<size_t>(b.at.pass / repeats_);
      if (images.defined()) images_[k].push_back(images);
      clip_[k].insert(clip_[k].end(), b.clip.begin(), b.clip.end());
    }
  }

  // Every seed's kept images, uint8 [N,3,H,W] (empty when none were kept), and (when scored) CLIP scores.
  std::vector<at::Tensor> images() const {
    std::vector<at::Tensor> out;
    for (const auto& batches : images_)
      if (!batches.empty()) out.push_back(at::cat(batches, 0));
    return out;
  }
  std::vector<std::vector<double>> clip() const {
    for (const auto& c : clip_)
      if (c.size() != prompts_.size()) return {};
    return clip_;
  }

  int index() const { return index_; }
  // Whether pass `pass` keeps its images (the first --repeats pass of each seed).
  bool keeps_images(int pass) const { return pass < regular_passes_ && pass % repeats_ == 0; }

  PipelineRun run;

 private:
  void finish_first_pass(const nlohmann::json& methods) {
    GenerationResult pass;
    pass.batches = first_pass_;
    double sum = 0;
    for (const auto& b : first_pass_) {
      sum += b.times.total;
      pass.times += b.times;
      if (b.first_nonfinite_step >= 0 || b.nonfinite_images) run.nonfinite.push_back(b);
    }
    run.seconds_per_image = sum / static_cast<double>(prompts_.size());  // replaced over all passes later
    run.stages = pass.times;
    run.unet_calls_per_image = pass.unet_calls_per_image();
    run.skipped_module_fraction = pass.skipped_module_fraction();
    run.methods = methods;
  }

  int index_;
  std::string label_;
  SpecRun& spec_run_;
  const ModelOptions& mo_;
  GenerateOptions& go_;
  const std::vector<std::string>& prompts_;
  int warmup_;
  std::vector<uint64_t> seeds_;
  int repeats_;
  int regular_passes_;  // --repeats passes per seed
  size_t batches_;      // per pass
  DeviceTimer device_timer_;
  std::unique_ptr<Txt2ImgPipeline> pipe_;
  std::optional<Txt2ImgPipeline::Generation> generation_;
  std::vector<JournalBatch> skipped_;   // finished batches of the pass to come, not yet generated past
  nlohmann::json first_pass_methods_;   // method counters summed over the first pass's batches so far
  std::vector<BatchRecord> first_pass_;
  std::vector<std::vector<at::Tensor>> images_;  // per seed, per batch (TimedRunHooks::keep_images)
  std::vector<std::vector<double>> clip_;        // per seed
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
  return bytes;
}

ScheduleChoice eval_schedule(const SpecRun& baseline, const SpecRun& candidate, const EvalOptions& o) {
  const int64_t free = o.memory_budget ? *o.memory_budget : free_memory(candidate.model.device);
  return choose_schedule(o.schedule, estimate_weights_bytes(baseline.model, candidate.model), free);
}

TimedRuns run_timed(SpecRun& baseline, SpecRun& candidate, const std::vector<std::string>& prompts,
                    const EvalOptions& o, const ScheduleChoice& schedule, const Logger& log, const TimedRunHooks& hooks,
                    size_t first_index) {
  TimedRuns out;
  out.schedule = schedule;
  log.info("schedule: " + out.schedule.reason);
  const bool interleaved = out.schedule.schedule == Schedule::Interleaved;
  out.baseline_timed = interleaved || !o.baseline_result;
  if (!out.baseline_timed) log.info("baseline: reusing its earlier run (sequential schedule: nothing to time beside)");

  Side sides[2] = {Side(0, "baseline", baseline, prompts, o, first_index),
                   Side(1, "candidate", candidate, prompts, o, first_index)};
  Shared shared;  // the text encoder, UNet and VAE are loaded once when both pipelines have the same ones
  const size_t first_side = out.baseline_timed ? 0 : 1;
  const size_t batches = (prompts.size() + static_cast<size_t>(o.batch_size) - 1) / static_cast<size_t>(o.batch_size);
  const int passes = o.repeats * static_cast<int>(eval_seeds(o).size());
  const size_t per_side = batches * static_cast<size_t>(passes);
  std::vector<TimedBatch> order;
  for (const TimedBatch& t : timing_order(out.schedule.schedule, batches, passes))
    if (static_cast<size_t>(t.side) >= first_side) order.push_back(t);

  // Batches earlier processes finished, known by their global identity (batch index and first
  // prompt of the whole prompt list): those of this process's prompts are taken in where the order
  // reaches them instead of being generated (in any order: with per-prompt noise a batch does not
  // depend on the ones before it; one process's journal under diffusers noise is a prefix of the order).
  static const std::vector<JournalBatch> none;
  const std::vector<JournalBatch>& finished = hooks.finished ? *hooks.finished : none;
  const size_t bs = static_cast<size_t>(o.batch_size);
  const size_t first_batch = first_index / bs;  // shards are whole batches
  auto key = [](const JournalBatch& b) { return std::tuple(b.at.side, b.at.pass, b.at.batch); };
  std::map<std::tuple<int, int, size_t>, const JournalBatch*> taken;  // by local identity
  for (const JournalBatch& f : finished) {
    if (f.at.batch < first_batch || f.at.batch >= first_batch + batches) continue;  // another rank's
    JournalBatch local;
    local.at = f.at;
    local.at.batch -= first_batch;
    if (f.at.side < static_cast<int>(first_side) || f.at.pass < 0 || f.at.pass >= passes ||
        f.record.first != f.at.batch * bs || f.record.count != std::min(bs, prompts.size() - local.at.batch * bs))
      throw InputError("the journal's " + std::string(f.at.side == 0 ? "baseline" : "candidate") + " batch " +
                           std::to_string(f.at.batch) + " of pass " + std::to_string(f.at.pass) +
                           " is not one of the run's batches",
                       "journal");
    taken.emplace(key(local), &f);
  }
  double offset = 0;  // this process's clock starts where the earlier ones' batches ended
  for (const auto& [k, f] : taken) offset = std::max(offset, f->start_s + f->record.times.total);
  // Takes in order[i], finished before: its images read back (finished_images), its record as it was.
  auto take_in = [&](const JournalBatch& global) {
    Side& side = sides[global.at.side];
    JournalBatch b = global;
    if (side.keeps_images(b.at.pass) && hooks.finished_images) hooks.finished_images(b);
    b.at.batch -= first_batch;
    b.record.first -= first_index;
    side.skip_batch(b);
    out.order += b.at.side == 0 ? 'B' : 'C';
  };
  if (!taken.empty())
    log.info("resuming: " + std::to_string(taken.size()) + " of " + std::to_string(order.size()) +
             " timed batches were finished by an earlier process");

  if (interleaved && taken.size() < order.size())
    for (auto& s : sides) s.load_and_warm_up(&shared, log);
  std::optional<Clock::time_point> since;
  // Times order[from..]; after_batch (scoring, writing, journalling) runs for the regular passes
  // only, with the batch's global identity: an automatic pass keeps no images and is timed again by
  // a resumed process.
  auto time_batches = [&](const std::vector<TimedBatch>& order, size_t from, const std::string& label, size_t each) {
    Progress progress(log, label, {{"baseline", each}, {"candidate", each}});
    for (size_t i = from; i < order.size(); ++i) {
      const TimedBatch& t = order[i];
      if (auto f = taken.find(std::tuple(t.side, t.pass, t.batch)); f != taken.end() && t.pass < passes) {
        take_in(*f->second);
        continue;
      }
      Side& side = sides[t.side];
      if (!side.loaded()) {
        sides[1 - t.side].unload();  // sequential: one pipeline at a time
        side.load_and_warm_up(&shared, log);
      }
      if (hooks.before_batch) hooks.before_batch();
      if (!since) {
        if (hooks.before_timing) hooks.before_timing();
        since = Clock::now();
      }
      at::Tensor images;
      JournalBatch b = side.time_batch(t, *since, offset, hooks.process, log, &images);
      if (hooks.after_batch && t.pass < passes) {
        JournalBatch global = b;
        global.at.batch += first_batch;
        global.record.first += first_index;
        hooks.after_batch(global, images);
        b.clip = global.clip;
        b.images = global.images;
      }
      side.add(b, hooks.keep_images ? images : at::Tensor());
      progress.batch_done(static_cast<size_t>(t.side), side.run.batch_images.back(), side.run.batch_seconds.back());
      out.order += t.side == 0 ? 'B' : 'C';
    }
  };
  time_batches(order, 0, "timing", per_side);
  if (interleaved && o.auto_repeats && batches > 0) {
    int pass = passes;  // the next automatic pass; the ABBA order continues across passes
    out.automatic = run_automatic_passes(
        [&] {
          return speedup_stats(sides[0].run.batch_seconds, sides[1].run.batch_seconds, sides[0].run.batch_images,
                               o.seed, 2000);
        },
        [&](const std::string& reason) {
          log.info("timing: automatic pass " + std::to_string(pass - passes + 1) + " (--repeats not given): " + reason);
          if (!sides[0].loaded())  // a resumed run whose regular passes were all finished before
            for (auto& s : sides) s.load_and_warm_up(&shared, log);
          std::vector<TimedBatch> next;
          for (const TimedBatch& t : timing_order(Schedule::Interleaved, batches, pass + 1))
            if (t.pass == pass) next.push_back(t);
          time_batches(next, 0, "timing (automatic pass)", batches);
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
    s.run.per_seed_clip = s.clip();
    if (interleaved) s.run.peak_memory_kind += "+both-loaded";
  }
  out.baseline = out.baseline_timed ? std::move(sides[0].run) : o.baseline_result->run;
  out.baseline.spec = baseline.spec;  // a reused run may have been derived under another candidate's name
  out.candidate = std::move(sides[1].run);
  if (hooks.keep_images) {
    out.baseline_images = out.baseline_timed ? sides[0].images() : std::vector<at::Tensor>{};
    out.candidate_images = sides[1].images();
  }
  return out;
}

}  // namespace diffbench
