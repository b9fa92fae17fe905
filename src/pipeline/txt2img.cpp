#include "diffbench/pipeline/txt2img.hpp"

#include <chrono>
#include <cmath>
#include <cstdlib>
#include <future>
#include <type_traits>

#include <ATen/Parallel.h>
#include <c10/core/DeviceGuard.h>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "diffbench/error.hpp"
#include "diffbench/io/file_identity.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/progress.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/models/vae.hpp"
#include "diffbench/pipeline/composite_hooks.hpp"
#include "diffbench/pipeline/lora.hpp"
#include "diffbench/pipeline/model_source.hpp"
#include "diffbench/pipeline/noise.hpp"
#include "diffbench/schedulers/scheduler.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "graphed_call.hpp"
#include "load_component.hpp"
#include "sdxl_text.hpp"
#include "unet_runner.hpp"
#include "util/ab_switch.hpp"
#include "util/worker_thread.hpp"

namespace diffbench {

namespace fs = std::filesystem;

StageTimes& StageTimes::operator+=(const StageTimes& o) {
  text_encoder += o.text_encoder;
  denoise += o.denoise;
  vae_decode += o.vae_decode;
  total += o.total;
  return *this;
}

double GenerationResult::unet_calls_per_image() const {
  int64_t calls = 0, images = 0;
  for (const auto& b : batches) {
    calls += b.unet_calls * static_cast<int64_t>(b.count);
    images += static_cast<int64_t>(b.count);
  }
  return images ? static_cast<double>(calls) / static_cast<double>(images) : 0.0;
}

double GenerationResult::skipped_module_fraction() const {
  int64_t calls = 0, skips = 0;
  for (const auto& b : batches) {
    calls += b.module_calls;
    skips += b.module_skips;
  }
  return calls ? static_cast<double>(skips) / static_cast<double>(calls) : 0.0;
}

namespace {

using Clock = std::chrono::steady_clock;

void sync(const at::Device& device) { device_synchronize(device); }

double seconds_since(Clock::time_point t0) { return std::chrono::duration<double>(Clock::now() - t0).count(); }

// What makes a loaded component what it is: its weights file, its config and the LoRAs fused in.
struct ComponentIdentity {
  fs::path weights;
  nlohmann::json config;
  std::vector<LoraSpec> loras;
  // Same weights (by content, so copies match), same config, same LoRAs.
  bool same(const ComponentIdentity& o) const {
    return config == o.config && loras == o.loras && same_content(weights, o.weights);
  }
};

// diffusers' rescale_noise_cfg (Lin et al., "Common Diffusion Noise Schedules and Sample Steps are
// Flawed", section 3.4): the guided prediction rescaled to the text prediction's standard deviation,
// mixed with the unrescaled one by `rescale`.
at::Tensor rescale_noise_cfg(const at::Tensor& cfg, const at::Tensor& text, double rescale) {
  const std::vector<int64_t> dims = {1, 2, 3};
  const at::Tensor std_text = text.std(dims, /*unbiased=*/true, /*keepdim=*/true);  // [B,1,1,1]
  const at::Tensor std_cfg = cfg.std(dims, /*unbiased=*/true, /*keepdim=*/true);
  return rescale * (cfg * (std_text / std_cfg)) + (1 - rescale) * cfg;
}

// f wrapped to run on a component's own thread: in inference mode, on `device`, with the intra-op
// thread count the calling thread has (OpenMP's is per thread).
template <class F>
auto in_component_thread(const at::Device& device, F&& f) {
  return [&device, &f, threads = at::get_num_threads()]() -> std::invoke_result_t<F> {
    if (at::get_num_threads() != threads) at::set_num_threads(threads);
    c10::InferenceMode guard;
    c10::DeviceGuard device_guard(device);
    return f();
  };
}

// Runs f on `worker` (a component's own thread, on CUDA) and waits for it; here when there is none.
template <class F>
std::invoke_result_t<F> on_thread(WorkerThread* worker, const at::Device& device, F&& f) {
  if (!worker) return f();
  return worker->run(in_component_thread(device, f));
}

}  // namespace

struct Txt2ImgPipeline::Impl {
  ModelOptions options;
  std::shared_ptr<const ClipTokenizer> tokenizer;
  fs::path tokenizer_dir;  // where it was read from, and its pad token: a later load of the same reuses it
  std::string pad_token;
  ClipTextModel text_encoder{nullptr};
  std::unique_ptr<SdxlText> sdxl;  // StableDiffusionXLPipeline: the second text encoder; null otherwise
  UNet2DConditionModel unet{nullptr};
  std::unique_ptr<UNetRunner> unet_runner;
  // The text encoder's calls from CUDA graphs (DIFFBENCH_TEXT_GRAPHS=0 keeps them eager).
  std::unique_ptr<GraphedCall> text_graphs;
  CompositeHooks::VariantCounts variant_counts;  // per graph variant of hooked UNet calls
  AutoencoderKL vae{nullptr};
  VaeConfig vae_config;
  at::ScalarType vae_dtype = at::kFloat;  // options.dtype, or float32 when SDXL's force_upcast applies
  nlohmann::json scheduler_config;
  std::string scheduler_source;
  nlohmann::json load_report = nlohmann::json::object();
  ComponentIdentity text_identity, unet_identity, vae_identity;
  std::string text_config_source;
  // On CUDA the text encoder and the VAE each run on a thread of their own (shared with the pipeline
  // that reuses them), the UNet on the caller's: LibTorch keeps cuDNN's plans per thread, so the three
  // components' one-time first calls can run at once (Generation::State::first_calls).
  std::shared_ptr<WorkerThread> text_worker, vae_worker;
  bool generated = false;  // a batch has run (the first one warms the components up together)

  Impl(ModelOptions o, std::shared_ptr<const ClipTokenizer> t) : options(std::move(o)), tokenizer(std::move(t)) {}
  // The text encoder's last hidden states [B,77,D] of `prompts`, on the calling thread. A graph is
  // captured only with `may_capture` (not while the other components run their first calls).
  at::Tensor encode_prompts(const std::vector<std::string>& prompts, bool may_capture = true);
};

Txt2ImgPipeline::Txt2ImgPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Txt2ImgPipeline::~Txt2ImgPipeline() = default;

struct Txt2ImgPipeline::SharedComponents {
  at::ScalarType dtype;
  at::Device device;
  bool fp8;            // the UNet's (use_fp8)
  bool channels_last;  // the UNet's convolution weights' layout (UNetRunner sets it)
  ComponentIdentity text_identity, unet_identity, vae_identity;
  ClipTextModel text_encoder{nullptr};
  UNet2DConditionModel unet{nullptr};
  AutoencoderKL vae{nullptr};
  VaeConfig vae_config;
  std::shared_ptr<WorkerThread> text_worker, vae_worker;
  std::shared_ptr<const ClipTokenizer> tokenizer;
  fs::path tokenizer_dir;
  std::string pad_token;
};

std::unique_ptr<Txt2ImgPipeline> Txt2ImgPipeline::load(const ModelOptions& options, const Logger& log) {
  return load(options, log, nullptr);
}

std::unique_ptr<Txt2ImgPipeline> Txt2ImgPipeline::load(const ModelOptions& options, const Logger& log,
                                                       const std::shared_ptr<const SharedComponents>& reuse) {
  const ModelSource source =
      ModelSource::open(options.dir, ModelSourceOptions{options.variant, options.prediction_type, options.config_dir}, log);
  const bool sdxl = source.sdxl();
  if (!source.single_file() && !source.pipeline_class().empty() && source.pipeline_class() != "StableDiffusionPipeline" &&
      !sdxl)
    log.warn("model_index.json names " + source.pipeline_class() + "; running it as a StableDiffusionPipeline");
  c10::InferenceMode guard;
  auto t0 = Clock::now();
  // CUDA's context, cuBLAS and cuDNN start on a thread while the files are read.
  std::future<void> device_ready = warm_up_device_async(options.device);
  // The tokenizer is read on a thread while the weights load; one read from the same folder by the
  // pipeline given in `reuse` is taken as it is (eval's candidate).
  const fs::path tokenizer_dir = fs::weakly_canonical(source.tokenizer_dir());
  const bool same_tokenizer =
      reuse && reuse->tokenizer && reuse->tokenizer_dir == tokenizer_dir && reuse->pad_token == source.pad_token();
  double tokenizer_s = 0;
  std::future<std::shared_ptr<const ClipTokenizer>> tokenizer_reading;
  if (!same_tokenizer) {
    TokenizerOptions tokenizer_options;
    if (!source.pad_token().empty()) tokenizer_options.pad_token = source.pad_token();
    tokenizer_reading = std::async(std::launch::async, [dir = source.tokenizer_dir(), tokenizer_options, &tokenizer_s] {
      const auto start = Clock::now();
      auto t = std::make_shared<const ClipTokenizer>(ClipTokenizer::from_dir(dir, tokenizer_options));
      tokenizer_s = seconds_since(start);
      return t;
    });
  }
  auto impl = std::make_unique<Impl>(options, same_tokenizer ? reuse->tokenizer : nullptr);
  impl->tokenizer_dir = tokenizer_dir;
  impl->pad_token = source.pad_token();
  impl->load_report["tokenizer_reused"] = same_tokenizer;
  impl->load_report["source"] = source.describe();

  // A LoRA changes the text encoder and the UNet; the VAE is shared whatever the LoRAs.
  t0 = Clock::now();
  const ComponentSource& text = source.component("text_encoder");
  impl->text_identity = {text.weights, text.config, options.loras};
  impl->text_config_source = text.config_source;
  const bool same_place = reuse && reuse->dtype == options.dtype && reuse->device == options.device;
  impl->load_report["reused"] = nlohmann::json::array();
  if (same_place && reuse->text_identity.same(impl->text_identity)) {
    impl->text_encoder = reuse->text_encoder;
    impl->text_worker = reuse->text_worker;
    impl->load_report["reused"].push_back("text_encoder");
  } else {
    LoadOptions text_lo;
    text_lo.strip_prefix = "text_model.";
    text_lo.ignore_unexpected = {"embeddings.position_ids"};
    impl->text_encoder = load_component<ClipTextModel>(
        ClipTextConfig::from_json(JsonConfig(text.config, text.config_source)), text, options, text_lo);
  }
  if (sdxl) impl->sdxl = SdxlText::load(source, options);
  impl->load_report["text_encoder_s"] = seconds_since(t0);

  // The UNet too: methods act through hooks given with each call and never change the model, so a
  // baseline and its candidate on the same weights run one module (each with its own CUDA graphs).
  t0 = Clock::now();
  const ComponentSource& unet = source.component("unet");
  const UNetConfig unet_config = UNetConfig::from_json(JsonConfig(unet.config, unet.config_source));
  impl->unet_identity = {unet.weights, unet.config, options.loras};
  const bool reused_unet =
      same_place && reuse->channels_last == options.channels_last && reuse->fp8 == options.fp8 &&
      reuse->unet_identity.same(impl->unet_identity);
  if (reused_unet) {
    impl->unet = reuse->unet;
    impl->load_report["reused"].push_back("unet");
  } else {
    impl->unet = load_component<UNet2DConditionModel>(unet_config, unet, options);
  }
  impl->load_report["unet_s"] = seconds_since(t0);

  if (!options.loras.empty()) {
    t0 = Clock::now();
    // A reused UNet or text encoder already holds the same LoRAs (its identity includes them).
    std::vector<LoraComponent> targets = {
        {"unet", reused_unet ? nullptr : impl->unet.ptr().get(), unet_original_rules(unet_config)}};
    const bool reused_text = !impl->load_report["reused"].empty() && impl->load_report["reused"][0] == "text_encoder";
    targets.push_back({"text_encoder", reused_text ? nullptr : impl->text_encoder.ptr().get(), {}});
    if (impl->sdxl) targets.push_back({"text_encoder_2", impl->sdxl->text_encoder_2.ptr().get(), {}});
    impl->load_report["lora"] = fuse_loras(options.loras, targets);
    impl->load_report["lora_s"] = seconds_since(t0);
  }
  if (options.fp8 && !reused_unet) {  // from the final weights, LoRAs fused
    t0 = Clock::now();
    impl->unet->use_fp8();
    impl->load_report["fp8_s"] = seconds_since(t0);
  }
  if (options.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(options.cudnn_benchmark);
  impl->unet_runner = std::make_unique<UNetRunner>(impl->unet, options.device,
                                                   UNetRunnerOptions{options.cuda_graphs, options.channels_last});
  impl->text_graphs =
      std::make_unique<GraphedCall>(options.device, options.cuda_graphs && ab_switch_on("DIFFBENCH_TEXT_GRAPHS"));

  t0 = Clock::now();
  const ComponentSource& vae = source.component("vae");
  impl->vae_identity = {vae.weights, vae.config, {}};
  if (same_place && reuse->vae_identity.same(impl->vae_identity)) {
    impl->vae_config = reuse->vae_config;
    impl->vae = reuse->vae;
    impl->vae_worker = reuse->vae_worker;
    impl->load_report["reused"].push_back("vae");
  } else {
    impl->vae_config = VaeConfig::from_json(JsonConfig(vae.config, vae.config_source));
    // StableDiffusionXLPipeline decodes in float32 when the VAE asks for it (force_upcast) and the
    // model runs in float16 (the SDXL VAE overflows in float16); StableDiffusionPipeline never does.
    const bool upcast = sdxl && impl->vae_config.force_upcast && options.dtype == at::kHalf;
    impl->vae = load_component<AutoencoderKL>(impl->vae_config, vae, options, {},
                                              upcast ? std::optional<at::ScalarType>(at::kFloat) : std::nullopt);
  }
  impl->vae_dtype = impl->vae->parameters().empty() ? options.dtype : impl->vae->parameters().front().scalar_type();
  impl->load_report["vae_s"] = seconds_since(t0);

  if (options.component_threads.value_or(options.device.is_cuda() && ab_switch_on("DIFFBENCH_COMPONENT_THREADS"))) {
    if (!impl->text_worker) impl->text_worker = std::make_shared<WorkerThread>();
    if (!impl->vae_worker) impl->vae_worker = std::make_shared<WorkerThread>();
  }
  impl->scheduler_config = source.scheduler_config();
  impl->scheduler_source = source.scheduler_source();
  // Fail early on a scheduler config the class cannot use.
  make_scheduler("", impl->scheduler_config, impl->scheduler_source);
  t0 = Clock::now();
  if (tokenizer_reading.valid()) impl->tokenizer = tokenizer_reading.get();
  impl->load_report["tokenizer_s"] = tokenizer_s;  // on its thread
  impl->load_report["tokenizer_wait_s"] = seconds_since(t0);
  t0 = Clock::now();
  device_ready.get();
  sync(options.device);
  impl->load_report["device_warm_up_wait_s"] = seconds_since(t0);
  return std::unique_ptr<Txt2ImgPipeline>(new Txt2ImgPipeline(std::move(impl)));
}

const ModelOptions& Txt2ImgPipeline::options() const { return impl_->options; }
int Txt2ImgPipeline::vae_scale_factor() const { return impl_->vae_config.scale_factor(); }
int Txt2ImgPipeline::default_height() const { return impl_->unet->config().sample_size * vae_scale_factor(); }
int Txt2ImgPipeline::default_width() const { return default_height(); }
const nlohmann::json& Txt2ImgPipeline::load_report() const { return impl_->load_report; }

Txt2ImgPipeline::GraphSetUp Txt2ImgPipeline::graph_set_up() const {
  const UNetRunner::OneTime& t = impl_->unet_runner->one_time();
  return {t.first_calls_s, t.captures_s, t.graphs};
}

std::shared_ptr<const Txt2ImgPipeline::SharedComponents> Txt2ImgPipeline::shared_components() const {
  auto s = std::make_shared<SharedComponents>(SharedComponents{
      impl_->options.dtype, impl_->options.device, impl_->options.fp8, impl_->options.channels_last,
      impl_->text_identity,
      impl_->unet_identity, impl_->vae_identity, impl_->text_encoder, impl_->unet, impl_->vae, impl_->vae_config,
      impl_->text_worker, impl_->vae_worker, impl_->tokenizer, impl_->tokenizer_dir, impl_->pad_token});
  return s;
}

at::Tensor Txt2ImgPipeline::encode_prompts(const std::vector<std::string>& prompts) {
  c10::InferenceMode guard;
  return on_thread(impl_->text_worker.get(), impl_->options.device, [&] { return impl_->encode_prompts(prompts); });
}

at::Tensor Txt2ImgPipeline::Impl::encode_prompts(const std::vector<std::string>& prompts, bool may_capture) {
  if (sdxl)
    return sdxl->encode(*tokenizer, text_encoder, text_config_source, prompts, options.device).embeds;  // [B,77,D1+D2]
  auto host_ids = tokenizer->encode_batch(prompts);  // [B,77]
  check_token_ids(host_ids, text_encoder->config().vocab_size, text_config_source);
  return text_graphs->run(
      host_ids, [this](const at::Tensor& ids) { return text_encoder->forward(ids).last_hidden_state; }, may_capture);
}

namespace {

// from_config(config, **overrides): the overrides win, and a key they set is no longer one that
// takes the class default.
nlohmann::json with_overrides(const nlohmann::json& base, const nlohmann::json& overrides) {
  if (overrides.is_null() || overrides.empty()) return base;
  if (!overrides.is_object()) throw UsageError("scheduler options must be a table of key = value", "scheduler_options");
  nlohmann::json out = base;
  for (const auto& [key, value] : overrides.items()) out[key] = value;
  if (auto it = out.find("_use_default_values"); it != out.end() && it->is_array()) {
    nlohmann::json kept = nlohmann::json::array();
    for (const auto& k : *it)
      if (!k.is_string() || !overrides.contains(k.get<std::string>())) kept.push_back(k);
    *it = kept;
  }
  return out;
}

}  // namespace

// What one generation carries from batch to batch.
struct Txt2ImgPipeline::Generation::State {
  Txt2ImgPipeline& pipe;
  Impl& m;
  std::vector<std::string> prompts;
  GenerateOptions opt;
  StepCallback on_step;
  std::unique_ptr<Scheduler> scheduler;
  NoiseSource noise;
  std::unique_ptr<CompositeHooks> hooks;
  int64_t lh = 0, lw = 0;
  size_t next = 0;                 // first prompt of the next batch
  std::vector<at::Tensor> images;
  at::Tensor negative;             // empty-prompt embeddings, computed once per batch size
  at::Tensor negative_pooled;      // SDXL: the empty prompt's pooled embedding, with `negative`
  GenerationResult result;

  State(Txt2ImgPipeline& owner, std::vector<std::string> p, GenerateOptions o, StepCallback cb)
      : pipe(owner), m(*owner.impl_), prompts(std::move(p)), opt(std::move(o)), on_step(std::move(cb)), noise(opt.noise, opt.seed) {}
  void batch(const std::vector<std::string>& batch, BatchRecord& rec, const Logger& log);
  void check_finite(const BatchRecord& rec) const;

  // The stages of a batch, in order.
  struct PromptEmbeddings {
    at::Tensor cond;     // [B,77,D]
    at::Tensor context;  // [2B,77,D], the empty prompt's half first, with guidance; else cond
    at::Tensor negative;  // [B,77,D], the negative half of context (with guidance)
    // SDXL's pooled embeddings and time ids, as cond / context / negative
    UNetAddedCond added_cond, added_context, added_negative;
  };
  // Which embeddings the UNet gets: both halves while guided, else the hooks' single branch.
  enum class Branch { Both, Prompt, Negative };
  // On the text encoder's thread (encode_text_here on the calling one).
  PromptEmbeddings encode_text(const std::vector<std::string>& batch, StageTimes& times);
  PromptEmbeddings encode_text_here(const std::vector<std::string>& batch, StageTimes& times, bool may_capture = true);
  // A pipeline's first batch on CUDA: encode_text while the other components' first calls run at once
  // (see the definition).
  PromptEmbeddings first_calls(const std::vector<std::string>& batch, StageTimes& times);
  at::Tensor denoise(const PromptEmbeddings& text, BatchRecord& rec, at::Tensor& finite_steps, const Logger& log);
  void begin_hooks(size_t batch_index, size_t count);
  at::Tensor denoise_step(size_t i, const at::Tensor& latents, const PromptEmbeddings& text, Branch& branch,
                          at::Tensor& finite_steps, BatchRecord& rec);
  // On the VAE's thread (decode_here on the calling one).
  at::Tensor decode(const at::Tensor& latents, StageTimes& times, at::Tensor& finite_image);
  at::Tensor decode_here(const at::Tensor& latents, StageTimes& times, at::Tensor& finite_image);
  void record_nonfinite(const at::Tensor& finite_steps, const at::Tensor& finite_image, BatchRecord& rec) const;
};

Txt2ImgPipeline::Generation::Generation(std::unique_ptr<State> state) : state_(std::move(state)) {}
Txt2ImgPipeline::Generation::~Generation() = default;
Txt2ImgPipeline::Generation::Generation(Generation&&) noexcept = default;
Txt2ImgPipeline::Generation& Txt2ImgPipeline::Generation::operator=(Generation&&) noexcept = default;

bool Txt2ImgPipeline::Generation::done() const { return state_->next >= state_->prompts.size(); }

Txt2ImgPipeline::Generation Txt2ImgPipeline::start(const std::vector<std::string>& prompts,
                                                   const GenerateOptions& opt, const StepCallback& on_step) {
  if (prompts.empty()) throw UsageError("no prompts to generate", "prompts");
  if (opt.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  if (opt.batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
  if (!std::isfinite(opt.guidance) || opt.guidance < 0)
    throw UsageError("guidance must be a finite number >= 0 (got " + std::to_string(opt.guidance) + ")", "--guidance");
  if (!(opt.guidance_rescale >= 0 && opt.guidance_rescale <= 1))
    throw UsageError("guidance_rescale must lie in [0, 1] (got " + std::to_string(opt.guidance_rescale) + ")",
                     "guidance_rescale");
  const int scale = vae_scale_factor();
  if (opt.height < 0 || opt.width < 0 || opt.height > kMaxImageSide || opt.width > kMaxImageSide)
    throw UsageError("height and width must lie in [" + std::to_string(scale) + ", " + std::to_string(kMaxImageSide) +
                         "] (got " + std::to_string(opt.height) + "x" + std::to_string(opt.width) + ")",
                     "--height/--width");
  const int height = opt.height > 0 ? opt.height : default_height();
  const int width = opt.width > 0 ? opt.width : default_width();
  if (height < scale || width < scale)
    throw UsageError("the UNet config gives no sample_size: pass --height and --width", "--height/--width");
  if (height % scale != 0 || width % scale != 0)
    throw UsageError("height and width must be multiples of " + std::to_string(scale) + " (got " +
                         std::to_string(height) + "x" + std::to_string(width) + ")",
                     "--height/--width");

  auto s = std::make_unique<Generation::State>(*this, prompts, opt, on_step);
  s->scheduler = make_scheduler(opt.scheduler, with_overrides(impl_->scheduler_config, opt.scheduler_options),
                                impl_->scheduler_source);
  s->lh = height / scale;
  s->lw = width / scale;
  s->result.height = height;
  s->result.width = width;
  s->result.scheduler = s->scheduler->name();
  s->result.scheduler_config = s->scheduler->config();
  if (!opt.hooks.empty()) s->hooks = std::make_unique<CompositeHooks>(opt.hooks, &impl_->variant_counts);
  return Generation(std::move(s));
}

GenerationResult Txt2ImgPipeline::generate(const std::vector<std::string>& prompts, const GenerateOptions& opt,
                                           const StepCallback& on_step, const Logger& log) {
  auto g = start(prompts, opt, on_step);
  const size_t batches = (prompts.size() + static_cast<size_t>(std::max(opt.batch_size, 1)) - 1) /
                         static_cast<size_t>(std::max(opt.batch_size, 1));
  Progress progress(log, "generate", {{"", batches}});
  while (!g.done()) {
    const BatchRecord& rec = g.next_batch(log);
    progress.batch_done(0, rec.count, rec.times.total);
  }
  return g.finish();
}

const BatchRecord& Txt2ImgPipeline::Generation::next_batch(const Logger& log) {
  State& s = *state_;
  if (done()) throw RuntimeFailure("Generation::next_batch called after the last batch");
  c10::InferenceMode guard;
  const size_t first = s.next;
  const size_t count = std::min(s.prompts.size() - first, static_cast<size_t>(s.opt.batch_size));
  const std::vector<std::string> batch(s.prompts.begin() + first, s.prompts.begin() + first + count);
  BatchRecord rec;
  rec.first = first;
  rec.count = count;
  s.batch(batch, rec, log);
  s.next = first + count;
  s.result.times += rec.times;
  s.result.batches.push_back(rec);
  s.check_finite(rec);
  return s.result.batches.back();
}

GenerationResult Txt2ImgPipeline::Generation::finish() {
  State& s = *state_;
  if (!done()) throw RuntimeFailure("Generation::finish called before the last batch");
  if (!s.images.empty()) s.result.images = at::cat(s.images, 0);
  s.images.clear();
  return std::move(s.result);
}

at::Tensor Txt2ImgPipeline::Generation::take_batch_images() {
  State& s = *state_;
  if (s.images.empty()) throw RuntimeFailure("Generation::take_batch_images: no batch images to take");
  at::Tensor out = std::move(s.images.back());
  s.images.pop_back();
  return out;
}

void Txt2ImgPipeline::Generation::skip_batch(const BatchRecord& rec, const std::vector<uint8_t>& noise_state) {
  State& s = *state_;
  if (done()) throw RuntimeFailure("Generation::skip_batch called after the last batch");
  const size_t count = std::min(s.prompts.size() - s.next, static_cast<size_t>(s.opt.batch_size));
  if (rec.first != s.next || rec.count != count)
    throw InputError("a finished batch covers prompts " + std::to_string(rec.first) + "+" + std::to_string(rec.count) +
                         ", the next batch " + std::to_string(s.next) + "+" + std::to_string(count),
                     "journal");
  s.noise.set_state(noise_state);
  s.next += count;
  s.result.times += rec.times;
  s.result.batches.push_back(rec);
}

std::vector<uint8_t> Txt2ImgPipeline::Generation::noise_state() const { return state_->noise.state(); }

void Txt2ImgPipeline::Generation::State::check_finite(const BatchRecord& rec) const {
  if (opt.allow_nonfinite || opt.warm_up_only || (rec.first_nonfinite_step < 0 && !rec.nonfinite_images)) return;
  std::string methods;
  for (const auto& n : opt.hook_names) methods += (methods.empty() ? "" : ", ") + n;
  const auto& timesteps = scheduler->model_timesteps();
  std::string what = "the VAE decoded NaN or inf pixels";
  if (rec.first_nonfinite_step >= 0) {
    const auto i = static_cast<size_t>(rec.first_nonfinite_step);
    char t[32];
    std::snprintf(t, sizeof t, "%g", i < timesteps.size() ? timesteps[i] : 0.0);
    what = "latents became NaN or inf at denoising step " + std::to_string(i + 1) + " of " +
           std::to_string(timesteps.size()) + " (timestep " + t + ")";
  }
  what += " (batch " + std::to_string(result.batches.size()) + ", prompts " + std::to_string(opt.first_index + rec.first) +
          "-" + std::to_string(opt.first_index + rec.first + rec.count - 1) + ")";
  what += methods.empty() ? "; no acceleration method was active" : "; active methods: " + methods;
  throw NumericError(what + ". Try --dtype fp32 or other method parameters; --allow-nonfinite continues anyway",
                     m.options.dir.string());
}

// One batch: encode prompts -> denoise -> decode, each stage timed up to a device synchronisation.
void Txt2ImgPipeline::Generation::State::batch(const std::vector<std::string>& batch, BatchRecord& rec,
                                               const Logger& log) {
  sync(m.options.device);
  const auto t_batch = Clock::now();
  const bool first = !m.generated && m.text_worker && m.vae_worker && !m.sdxl;
  m.generated = true;
  const PromptEmbeddings text = first ? first_calls(batch, rec.times) : encode_text(batch, rec.times);
  at::Tensor finite_steps, finite_image;  // device flags, read after the clock
  const at::Tensor latents = denoise(text, rec, finite_steps, log);
  at::Tensor image = decode(latents, rec.times, finite_image);
  rec.times.total = seconds_since(t_batch);
  record_nonfinite(finite_steps, finite_image, rec);
  images.push_back(std::move(image));
}

// The first batch of a pipeline on CUDA (eval's warm-up batch): the text encoder encodes the batch on
// its thread while the VAE decodes a blank latent on its thread and the UNet runs once on blank inputs
// of the batch's shape on this one, so that the three components' one-time work (kernel selection,
// cuDNN's plans, loading kernels) happens at the same time rather than one after another. The blank
// calls' outputs are dropped: the batch's images are those it makes without them.
Txt2ImgPipeline::Generation::State::PromptEmbeddings Txt2ImgPipeline::Generation::State::first_calls(
    const std::vector<std::string>& batch, StageTimes& times) {
  const auto& dev = m.options.device;
  const auto count = static_cast<int64_t>(batch.size());
  const at::TensorOptions blank = at::TensorOptions().dtype(m.options.dtype).device(dev);
  const int64_t latent_c = m.unet->config().in_channels;
  const auto encode = [&] { return encode_text_here(batch, times, /*may_capture=*/false); };
  const auto blank_decode = [&] {  // one image: little memory beside the UNet's blank call
    StageTimes unused;
    at::Tensor finite;
    decode_here(at::zeros({1, latent_c, lh, lw}, blank), unused, finite);
  };
  std::future<PromptEmbeddings> text = m.text_worker->submit(in_component_thread(dev, encode));
  std::future<void> vae = m.vae_worker->submit(in_component_thread(dev, blank_decode));
  try {
    const int64_t rows = opt.guidance > 1.0 ? 2 * count : count;
    m.unet_runner->first_call(at::zeros({rows, latent_c, lh, lw}, blank),
                              at::scalar_tensor(999.0, at::TensorOptions().dtype(at::kFloat).device(dev)),
                              at::zeros({rows, m.tokenizer->max_length(), m.text_encoder->config().hidden_size}, blank));
  } catch (...) {
    text.wait();  // they use this frame's variables
    vae.wait();
    throw;
  }
  vae.get();
  return text.get();
}

// 1. Text encoding: the prompts and, for guidance, the empty negative prompt.
Txt2ImgPipeline::Generation::State::PromptEmbeddings Txt2ImgPipeline::Generation::State::encode_text(
    const std::vector<std::string>& batch, StageTimes& times) {
  return on_thread(m.text_worker.get(), m.options.device, [&] { return encode_text_here(batch, times); });
}

Txt2ImgPipeline::Generation::State::PromptEmbeddings Txt2ImgPipeline::Generation::State::encode_text_here(
    const std::vector<std::string>& batch, StageTimes& times, bool may_capture) {
  const auto t0 = Clock::now();
  PromptEmbeddings text;
  const auto count = static_cast<int64_t>(batch.size());
  if (m.sdxl) {
    const TextConditioning cond =
        m.sdxl->encode(*m.tokenizer, m.text_encoder, m.text_config_source, batch, m.options.device);
    text.cond = cond.embeds;  // [B,77,D1+D2]
    const at::Tensor time_ids = sdxl_time_ids(result.height, result.width, count, cond.pooled.options());  // [B,6]
    text.added_cond = UNetAddedCond{cond.pooled, time_ids};
    if (opt.guidance > 1.0) {
      if (!negative.defined() || negative.size(0) != count) {
        const TextConditioning neg =
            m.sdxl->negative(*m.tokenizer, m.text_encoder, m.text_config_source, cond, m.options.device);
        negative = neg.embeds;
        negative_pooled = neg.pooled;
      }
      text.added_context = UNetAddedCond{at::cat({negative_pooled, cond.pooled}, 0), at::cat({time_ids, time_ids}, 0)};
      text.added_negative = UNetAddedCond{negative_pooled, time_ids};
    }
  } else {
    text.cond = m.encode_prompts(batch, may_capture);  // [B,77,D]
    if (opt.guidance > 1.0 && (!negative.defined() || negative.size(0) != count))
      negative = m.encode_prompts(std::vector<std::string>(batch.size(), ""), may_capture);
  }
  text.context = text.cond;
  if (opt.guidance > 1.0) {
    text.negative = negative;
    text.context = at::cat({negative, text.cond}, 0);  // [2B,77,D]: unconditional half first
  }
  sync(m.options.device);
  times.text_encoder = seconds_since(t0);
  return text;
}

// 2. Denoising: initial noise, then one scheduler step per timestep. `finite_steps` gets one flag
// per step, set on the device (no per-step sync).
at::Tensor Txt2ImgPipeline::Generation::State::denoise(const PromptEmbeddings& text, BatchRecord& rec,
                                                       at::Tensor& finite_steps, const Logger& log) {
  const auto& dev = m.options.device;
  const auto t0 = Clock::now();
  const size_t batch_index = result.batches.size();
  scheduler->set_timesteps(opt.steps);
  noise.begin_batch(opt.first_index + rec.first, rec.count);
  const int64_t latent_c = m.unet->config().in_channels;
  at::Tensor latents = noise.draw({static_cast<int64_t>(rec.count), latent_c, lh, lw}, m.options.dtype, dev);  // [B,4,h,w]
  latents = latents * scheduler->init_noise_sigma();
  const auto& timesteps = scheduler->model_timesteps();  // exact values the UNet sees
  finite_steps = at::empty({static_cast<int64_t>(timesteps.size())}, at::TensorOptions().dtype(at::kBool).device(dev));
  if (hooks) begin_hooks(batch_index, rec.count);
  Branch branch = opt.guidance > 1.0 ? Branch::Both : Branch::Prompt;  // until a method drops a half
  for (size_t i = 0; i < timesteps.size(); ++i) {
    latents = denoise_step(i, latents, text, branch, finite_steps, rec);
    if (on_step) on_step(batch_index, i, timesteps.size(), latents);
    log.progress("batch " + std::to_string(batch_index + 1), static_cast<long>(i + 1),
                 static_cast<long>(timesteps.size()));
  }
  if (hooks) {
    hooks->end_generation();
    rec.module_calls = hooks->module_calls();
    rec.module_skips = hooks->module_skips();
  }
  sync(dev);
  rec.times.denoise = seconds_since(t0);
  return latents;
}

void Txt2ImgPipeline::Generation::State::begin_hooks(size_t batch_index, size_t count) {
  GenerationInfo info;
  info.seed = opt.seed;
  info.batch_index = batch_index;
  info.images = static_cast<int64_t>(count);
  info.timesteps = scheduler->model_timesteps();
  info.steps = opt.steps;
  info.latent_h = lh;
  info.latent_w = lw;
  info.guidance = opt.guidance > 1.0;
  info.device = m.options.device;
  hooks->reset_counts();
  hooks->begin_generation(info);
}

// One step: the hooks' say, the UNet (both guidance halves while `guided`), guidance, the scheduler.
at::Tensor Txt2ImgPipeline::Generation::State::denoise_step(size_t i, const at::Tensor& latents,
                                                            const PromptEmbeddings& text, Branch& branch,
                                                            at::Tensor& finite_steps, BatchRecord& rec) {
  const auto& timesteps = scheduler->model_timesteps();
  StepInfo step{i, timesteps.size(), timesteps[i]};
  if (hooks) {
    step.restart = hooks->restart_caches(step);
    hooks->before_step(step);
    if (branch == Branch::Both && hooks->drop_unconditional(step))
      branch = hooks->single_branch() == StepHooks::SingleBranch::Negative ? Branch::Negative : Branch::Prompt;
  }
  const bool guided = branch == Branch::Both;
  at::Tensor model_in = guided ? at::cat({latents, latents}, 0) : latents;  // [2B or B,4,h,w]
  model_in = scheduler->scale_model_input(model_in, i);
  const auto t = at::scalar_tensor(timesteps[i], at::TensorOptions().dtype(at::kFloat).device(m.options.device));
  if (hooks) {
    UNetCallInfo call;
    call.step = i;
    call.total_steps = timesteps.size();
    call.timestep = timesteps[i];
    call.batch = model_in.size(0);
    call.latent_h = lh;
    call.latent_w = lw;
    hooks->begin_call(call);
  }
  // Hooked calls are replayed from graphs only where the hooks give a variant key.
  const at::Tensor& context = guided ? text.context : branch == Branch::Negative ? text.negative : text.cond;
  const UNetAddedCond& added =
      guided ? text.added_context : branch == Branch::Negative ? text.added_negative : text.added_cond;
  at::Tensor eps = m.unet_runner->run(model_in, t, context, hooks.get(), added, opt.warm_up_only);
  ++rec.unet_calls;
  if (guided) {
    ++rec.guided_calls;
    auto halves = eps.chunk(2, 0);
    eps = halves[0] + opt.guidance * (halves[1] - halves[0]);
    if (opt.guidance_rescale > 0) eps = rescale_noise_cfg(eps, halves[1], opt.guidance_rescale);
  }
  const NoiseFn step_noise = [&](const at::Tensor& like) {
    return noise.draw(like.sizes().vec(), like.scalar_type(), like.device());
  };
  at::Tensor next = scheduler->step(eps, i, latents, step_noise);
  finite_steps.select(0, static_cast<int64_t>(i)).copy_(next.isfinite().all());
  if (hooks) hooks->after_step(step, next);
  return next;
}

// 3. VAE decode and post-processing to [0,1], on the host as float32. `finite_image` is a device
// flag: were the decoded pixels all finite.
at::Tensor Txt2ImgPipeline::Generation::State::decode(const at::Tensor& latents, StageTimes& times,
                                                      at::Tensor& finite_image) {
  return on_thread(m.vae_worker.get(), m.options.device, [&] { return decode_here(latents, times, finite_image); });
}

at::Tensor Txt2ImgPipeline::Generation::State::decode_here(const at::Tensor& latents, StageTimes& times,
                                                           at::Tensor& finite_image) {
  const auto t0 = Clock::now();
  at::Tensor z = latents / m.vae_config.scaling_factor;
  if (m.vae_config.shift_factor) z = z + *m.vae_config.shift_factor;
  const bool upcast = m.vae_dtype != z.scalar_type();  // SDXL's force_upcast
  at::Tensor image = m.vae->decode(upcast ? z.to(m.vae_dtype) : z);  // [B,3,H,W] in about [-1,1]
  finite_image = image.isfinite().all();
  image = (image / 2 + 0.5).clamp(0, 1).to(at::kFloat).cpu();
  sync(m.options.device);
  times.vae_decode = seconds_since(t0);
  return image;
}

// The first non-finite step and whether the image was non-finite, brought to the host.
void Txt2ImgPipeline::Generation::State::record_nonfinite(const at::Tensor& finite_steps,
                                                          const at::Tensor& finite_image, BatchRecord& rec) const {
  const at::Tensor host = finite_steps.cpu();
  const bool* f = host.data_ptr<bool>();
  for (int64_t i = 0; i < host.numel(); ++i)
    if (!f[i]) {
      rec.first_nonfinite_step = i;
      break;
    }
  rec.nonfinite_images = !finite_image.item<bool>();
}

}  // namespace diffbench
