#include "diffbench/pipeline/txt2img.hpp"

#include <chrono>

#include <torch/cuda.h>
#include <torch/torch.h>

#include "diffbench/error.hpp"
#include "diffbench/io/diffusers_folder.hpp"
#include "diffbench/io/file_identity.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/state_dict.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/models/vae.hpp"
#include "diffbench/pipeline/composite_hooks.hpp"
#include "diffbench/pipeline/noise.hpp"
#include "diffbench/schedulers/scheduler.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "unet_runner.hpp"

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

template <typename Module>
void load_component(Module& module, const fs::path& weights, const ModelOptions& opt, const LoadOptions& lo = {}) {
  auto sd = load_safetensors(weights);
  load_into(*module, sd, weights.string(), lo);
  module->to(opt.device, opt.dtype);
  module->eval();
}


}  // namespace

struct Txt2ImgPipeline::Impl {
  ModelOptions options;
  ClipTokenizer tokenizer;
  ClipTextModel text_encoder{nullptr};
  UNet2DConditionModel unet{nullptr};
  std::unique_ptr<UNetRunner> unet_runner;
  CompositeHooks::VariantCounts variant_counts;  // per graph variant of hooked UNet calls
  AutoencoderKL vae{nullptr};
  VaeConfig vae_config;
  nlohmann::json scheduler_config;
  std::string scheduler_source;
  nlohmann::json load_report = nlohmann::json::object();
  fs::path text_weights, text_config, vae_weights, vae_config_file;

  Impl(ModelOptions o, ClipTokenizer t) : options(std::move(o)), tokenizer(std::move(t)) {}
};

Txt2ImgPipeline::Txt2ImgPipeline(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Txt2ImgPipeline::~Txt2ImgPipeline() = default;

struct Txt2ImgPipeline::SharedComponents {
  at::ScalarType dtype;
  at::Device device;
  fs::path text_weights, text_config, vae_weights, vae_config_file;
  ClipTextModel text_encoder{nullptr};
  AutoencoderKL vae{nullptr};
  VaeConfig vae_config;
};

namespace {
// Same weights and the same config (parsed, so formatting does not matter).
bool same_component(const fs::path& weights_a, const fs::path& config_a, const fs::path& weights_b,
                    const fs::path& config_b) {
  return read_json_file(config_a) == read_json_file(config_b) && same_content(weights_a, weights_b);
}
}  // namespace

std::unique_ptr<Txt2ImgPipeline> Txt2ImgPipeline::load(const ModelOptions& options, const Logger& log) {
  return load(options, log, nullptr);
}

std::unique_ptr<Txt2ImgPipeline> Txt2ImgPipeline::load(const ModelOptions& options, const Logger& log,
                                                       const std::shared_ptr<const SharedComponents>& reuse) {
  const auto folder =
      DiffusersFolder::open(options.dir, {"text_encoder", "tokenizer", "unet", "vae", "scheduler"}, log);
  if (!folder.pipeline_class().empty() && folder.pipeline_class() != "StableDiffusionPipeline")
    log.warn("model_index.json names " + folder.pipeline_class() + "; running it as a StableDiffusionPipeline");
  c10::InferenceMode guard;
  auto t0 = Clock::now();
  auto impl = std::make_unique<Impl>(options, ClipTokenizer::from_dir(folder.component("tokenizer").dir));
  impl->load_report["tokenizer_s"] = seconds_since(t0);

  t0 = Clock::now();
  impl->text_weights = folder.weights_file("text_encoder", options.variant);
  impl->text_config = folder.config_file("text_encoder");
  const bool same_place = reuse && reuse->dtype == options.dtype && reuse->device == options.device;
  impl->load_report["reused"] = nlohmann::json::array();
  if (same_place && same_component(reuse->text_weights, reuse->text_config, impl->text_weights, impl->text_config)) {
    impl->text_encoder = reuse->text_encoder;
    impl->load_report["reused"].push_back("text_encoder");
  } else {
    impl->text_encoder = ClipTextModel(ClipTextConfig::from_json(JsonConfig::load(impl->text_config)));
    LoadOptions text_lo;
    text_lo.strip_prefix = "text_model.";
    text_lo.ignore_unexpected = {"embeddings.position_ids"};
    load_component(impl->text_encoder, impl->text_weights, options, text_lo);
  }
  impl->load_report["text_encoder_s"] = seconds_since(t0);

  t0 = Clock::now();
  impl->unet = UNet2DConditionModel(UNetConfig::from_json(JsonConfig::load(folder.config_file("unet"))));
  load_component(impl->unet, folder.weights_file("unet", options.variant), options);
  if (options.device.is_cuda()) at::globalContext().setBenchmarkCuDNN(options.cudnn_benchmark);
  impl->unet_runner = std::make_unique<UNetRunner>(impl->unet, options.device,
                                                   UNetRunnerOptions{options.cuda_graphs, options.channels_last});
  impl->load_report["unet_s"] = seconds_since(t0);

  t0 = Clock::now();
  impl->vae_weights = folder.weights_file("vae", options.variant);
  impl->vae_config_file = folder.config_file("vae");
  if (same_place && same_component(reuse->vae_weights, reuse->vae_config_file, impl->vae_weights, impl->vae_config_file)) {
    impl->vae_config = reuse->vae_config;
    impl->vae = reuse->vae;
    impl->load_report["reused"].push_back("vae");
  } else {
    impl->vae_config = VaeConfig::from_json(JsonConfig::load(impl->vae_config_file));
    impl->vae = AutoencoderKL(impl->vae_config);
    load_component(impl->vae, impl->vae_weights, options);
  }
  impl->load_report["vae_s"] = seconds_since(t0);

  const auto sched_file = folder.config_file("scheduler");
  impl->scheduler_config = read_json_file(sched_file);
  impl->scheduler_source = sched_file.string();
  // Fail early on a scheduler config the class cannot use.
  make_scheduler("", impl->scheduler_config, impl->scheduler_source);
  sync(options.device);
  return std::unique_ptr<Txt2ImgPipeline>(new Txt2ImgPipeline(std::move(impl)));
}

const ModelOptions& Txt2ImgPipeline::options() const { return impl_->options; }
int Txt2ImgPipeline::vae_scale_factor() const { return impl_->vae_config.scale_factor(); }
int Txt2ImgPipeline::default_height() const { return impl_->unet->config().sample_size * vae_scale_factor(); }
int Txt2ImgPipeline::default_width() const { return default_height(); }
const nlohmann::json& Txt2ImgPipeline::load_report() const { return impl_->load_report; }

std::shared_ptr<const Txt2ImgPipeline::SharedComponents> Txt2ImgPipeline::shared_components() const {
  auto s = std::make_shared<SharedComponents>(SharedComponents{impl_->options.dtype, impl_->options.device,
                                                               impl_->text_weights, impl_->text_config,
                                                               impl_->vae_weights, impl_->vae_config_file,
                                                               impl_->text_encoder, impl_->vae, impl_->vae_config});
  return s;
}

at::Tensor Txt2ImgPipeline::encode_prompts(const std::vector<std::string>& prompts) {
  c10::InferenceMode guard;
  auto host_ids = impl_->tokenizer.encode_batch(prompts);  // [B,77]
  check_token_ids(host_ids, impl_->text_encoder->config().vocab_size, impl_->text_config.string());
  auto ids = host_ids.to(impl_->options.device);
  return impl_->text_encoder->forward(ids).last_hidden_state;                    // [B,77,D]
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

GenerationResult Txt2ImgPipeline::generate(const std::vector<std::string>& prompts, const GenerateOptions& opt,
                                           const StepCallback& on_step, const Logger& log) {
  if (prompts.empty()) throw UsageError("no prompts to generate", "prompts");
  if (opt.steps < 1) throw UsageError("steps must be at least 1", "--steps");
  if (opt.batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
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

  c10::InferenceMode guard;
  Impl& m = *impl_;
  const auto& dev = m.options.device;
  const auto dtype = m.options.dtype;
  auto scheduler = make_scheduler(opt.scheduler, with_overrides(m.scheduler_config, opt.scheduler_options),
                                  m.scheduler_source);
  const bool cfg = opt.guidance > 1.0;
  const int64_t latent_c = m.unet->config().in_channels;
  const int64_t lh = height / scale, lw = width / scale;

  GenerationResult result;
  result.height = height;
  result.width = width;
  result.scheduler = scheduler->name();
  result.scheduler_config = scheduler->config();
  NoiseSource noise(opt.noise, opt.seed);
  std::unique_ptr<CompositeHooks> hooks;
  if (!opt.hooks.empty()) hooks = std::make_unique<CompositeHooks>(opt.hooks, &m.variant_counts);
  std::vector<at::Tensor> images;
  at::Tensor negative;  // empty-prompt embeddings, computed once per batch size

  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(opt.batch_size)) {
    const size_t count = std::min(prompts.size() - first, static_cast<size_t>(opt.batch_size));
    const std::vector<std::string> batch(prompts.begin() + first, prompts.begin() + first + count);
    BatchRecord rec;
    rec.first = first;
    rec.count = count;
    sync(dev);
    const auto t_batch = Clock::now();

    // 1. Text encoding: the prompts and, for guidance, the empty negative prompt.
    auto t0 = Clock::now();
    at::Tensor cond = encode_prompts(batch);  // [B,77,D]
    at::Tensor context = cond;
    if (cfg) {
      if (!negative.defined() || negative.size(0) != static_cast<int64_t>(count))
        negative = encode_prompts(std::vector<std::string>(count, ""));
      context = at::cat({negative, cond}, 0);  // [2B,77,D]: unconditional half first
    }
    sync(dev);
    rec.times.text_encoder = seconds_since(t0);

    // 2. Denoising loop.
    t0 = Clock::now();
    scheduler->set_timesteps(opt.steps);
    noise.begin_batch(first, count);
    at::Tensor latents = noise.draw({static_cast<int64_t>(count), latent_c, lh, lw}, dtype, dev);  // [B,4,h,w]
    latents = latents * scheduler->init_noise_sigma();
    const NoiseFn step_noise = [&](const at::Tensor& like) {
      return noise.draw(like.sizes().vec(), like.scalar_type(), like.device());
    };
    const auto& timesteps = scheduler->model_timesteps();  // exact values the UNet sees
    if (hooks) {
      GenerationInfo info;
      info.seed = opt.seed;
      info.batch_index = result.batches.size();
      info.images = static_cast<int64_t>(count);
      info.timesteps = timesteps;
      info.steps = opt.steps;
      info.latent_h = lh;
      info.latent_w = lw;
      info.guidance = cfg;
      info.device = dev;
      hooks->reset_counts();
      hooks->begin_generation(info);
    }
    bool guided = cfg;  // until a method drops the unconditional half
    for (size_t i = 0; i < timesteps.size(); ++i) {
      StepInfo step{i, timesteps.size(), timesteps[i]};
      if (hooks) {
        step.restart = hooks->restart_caches(step);
        hooks->before_step(step);
        if (guided && hooks->drop_unconditional(step)) guided = false;
      }
      at::Tensor model_in = guided ? at::cat({latents, latents}, 0) : latents;  // [2B or B,4,h,w]
      model_in = scheduler->scale_model_input(model_in, i);
      const auto t = at::scalar_tensor(timesteps[i], at::TensorOptions().dtype(at::kFloat).device(dev));
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
      at::Tensor eps = m.unet_runner->run(model_in, t, guided ? context : cond, hooks.get());
      ++rec.unet_calls;
      if (guided) {
        ++rec.guided_calls;
        auto halves = eps.chunk(2, 0);
        eps = halves[0] + opt.guidance * (halves[1] - halves[0]);
      }
      latents = scheduler->step(eps, i, latents, step_noise);
      if (hooks) hooks->after_step(step, latents);
      if (on_step) on_step(result.batches.size(), i, timesteps.size(), latents);
      log.progress("batch " + std::to_string(result.batches.size() + 1), static_cast<long>(i + 1),
                   static_cast<long>(timesteps.size()));
    }
    if (hooks) {
      hooks->end_generation();
      rec.module_calls = hooks->module_calls();
      rec.module_skips = hooks->module_skips();
    }
    sync(dev);
    rec.times.denoise = seconds_since(t0);

    // 3. VAE decode and post-processing to [0,1].
    t0 = Clock::now();
    at::Tensor z = latents / m.vae_config.scaling_factor;
    if (m.vae_config.shift_factor) z = z + *m.vae_config.shift_factor;
    at::Tensor image = m.vae->decode(z);                 // [B,3,H,W] in about [-1,1]
    image = (image / 2 + 0.5).clamp(0, 1).to(at::kFloat).cpu();
    sync(dev);
    rec.times.vae_decode = seconds_since(t0);
    rec.times.total = seconds_since(t_batch);

    images.push_back(image);
    result.times += rec.times;
    result.batches.push_back(rec);
  }
  result.images = at::cat(images, 0);
  return result;
}

}  // namespace diffbench
