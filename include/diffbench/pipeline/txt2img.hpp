// Stable Diffusion text-to-image, step for step as diffusers' StableDiffusionPipeline (SD 1.x/2.x) or
// StableDiffusionXLPipeline (model_index.json naming it: two text encoders, added conditioning).
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/log.hpp"
#include "diffbench/pipeline/lora.hpp"
#include "diffbench/pipeline/noise.hpp"
#include "diffbench/pipeline/step_hooks.hpp"

namespace diffbench {

// The largest image side generate accepts (a multiple of 8): beyond any model's training size, and
// a bound on the memory a typo in --height / --width can ask for.
constexpr int kMaxImageSide = 16384;

struct ModelOptions {
  std::filesystem::path dir;           // diffusers folder, or a single-file checkpoint (pipeline/single_file.hpp)
  std::string prediction_type;         // "epsilon" / "v_prediction" over the model's ("" = the model's own)
  std::filesystem::path config_dir;    // single files: the diffusers folder whose configs are used ("" = inferred)
  std::vector<LoraSpec> loras;         // fused into the text encoder and UNet at load (pipeline/lora.hpp)
  at::ScalarType dtype = at::kFloat;   // weights and activations
  bool fp8 = false;                    // dtype "fp8": the UNet's token GEMMs in float8 e4m3 (UNet::use_fp8)
  at::Device device = at::kCPU;
  std::string variant;                 // weights variant to prefer, e.g. "fp16"
  bool cuda_graphs = true;             // CUDA: replay the UNet call from a captured CUDA graph
  bool channels_last = true;           // CUDA: NHWC memory format for the UNet's convolutions
  bool cudnn_benchmark = false;        // CUDA: time cuDNN's convolution algorithms per shape (process-wide
                                       // LibTorch setting) instead of taking its heuristic choice: on the
                                       // H100 no faster for SD1.5 and 6.6 s more for the first image
  // The text encoder and the VAE each on a thread of their own, their first calls at the same time as
  // the UNet's (nullopt: on CUDA, where LibTorch's per-thread cuDNN plans make it pay; the tests turn it
  // on for the CPU; DIFFBENCH_COMPONENT_THREADS=0 turns it off). The images are the same either way.
  std::optional<bool> component_threads;
};

struct GenerateOptions {
  std::string scheduler;   // "" = the checkpoint's own scheduler
  // Keys set over the checkpoint's scheduler config before the scheduler is made, as the keyword
  // arguments of diffusers' XScheduler.from_config(pipe.scheduler.config, **kwargs) (an object; null
  // or {}: none).
  nlohmann::json scheduler_options = nlohmann::json::object();
  int steps = 50;
  double guidance = 7.5;   // classifier-free guidance runs when > 1
  // diffusers' guidance_rescale: with guidance, the guided prediction is rescaled towards the text
  // prediction's standard deviation by this fraction (0: off, diffusers' default).
  double guidance_rescale = 0.0;
  uint64_t seed = 42;
  int height = 0;          // 0 = unet sample_size × VAE scale factor
  int width = 0;
  int batch_size = 1;
  NoiseMode noise = NoiseMode::PerPrompt;
  // The global index of prompts[0] when these prompts are one share of a larger set (a rank's shard
  // in a multi-process run): per-prompt noise of prompt i is seeded seed + first_index + i, so each
  // image equals the one-process run's.
  size_t first_index = 0;
  // Non-finite latents (after any step) or decoded images stop the run with a NumericError naming
  // the batch, step and `hook_names`; when allowed, they are only counted in BatchRecord.
  bool allow_nonfinite = false;
  // An untimed warm-up whose images are not used: UNet calls replayed from an already captured CUDA
  // graph are skipped (that graph's last output stands in), so a warm-up costs each (shape, graph
  // variant)'s first and capturing call, not the whole run's arithmetic. Every variant the full
  // run reaches is still reached (the hooks and the scheduler run every step). Non-finite values are
  // not checked. Without graphs (CPU) the run is a plain generation.
  bool warm_up_only = false;
  std::vector<std::string> hook_names;  // names of `hooks`, in order, for that message
  // Acceleration methods (not owned), applied in order through one CompositeHooks; empty: the
  // UNet runs without hooks.
  std::vector<PipelineHooks*> hooks;
};

// Seconds spent in each stage; each bracketed by a device synchronisation.
struct StageTimes {
  double text_encoder = 0;
  double denoise = 0;
  double vae_decode = 0;
  double total = 0;
  StageTimes& operator+=(const StageTimes& o);
};

struct BatchRecord {
  size_t first = 0;   // index of the batch's first prompt
  size_t count = 0;
  StageTimes times;
  int64_t unet_calls = 0;  // UNet forward calls for this batch (one call covers both CFG halves)
  int64_t module_calls = 0;  // before_module hooks asked (0 without hooks)
  int64_t module_skips = 0;  // of which returned an output (module skipped)
  int64_t guided_calls = 0;  // UNet calls that ran both guidance halves
  int64_t first_nonfinite_step = -1;  // first step whose latents were not all finite (-1: none)
  bool nonfinite_images = false;      // decoded images held NaN or inf
};

struct GenerationResult {
  at::Tensor images;  // [N,3,H,W] float32 on the CPU, in [0,1]
  std::vector<BatchRecord> batches;
  StageTimes times;   // sums over batches
  int height = 0;
  int width = 0;
  std::string scheduler;       // resolved scheduler name
  nlohmann::json scheduler_config;

  // Over all batches: UNet calls per image, and skipped / asked before_module hooks (0 when none).
  double unet_calls_per_image() const;
  double skipped_module_fraction() const;
};

// Called after every scheduler step with the batch's latents (for tests and progress). The tensor is
// the pipeline's own: writing into it in place (copy_) sets the next step's input, which the parity
// tests use to teacher-force a run onto a reference's per-step latents.
using StepCallback = std::function<void(size_t batch, size_t step, size_t total_steps, const at::Tensor& latents)>;

class Txt2ImgPipeline {
 public:
  // Loads every component once; weights stay on the device for all later generate() calls.
  static std::unique_ptr<Txt2ImgPipeline> load(const ModelOptions& options, const Logger& log = Logger::silent());

  // The text encoder and VAE of a loaded pipeline, to be reused by a later load whose files hold
  // the same weights and config (same dtype and device): the evaluator loads them once for the
  // baseline and the candidate. Holding this keeps only those two components alive.
  struct SharedComponents;
  std::shared_ptr<const SharedComponents> shared_components() const;
  static std::unique_ptr<Txt2ImgPipeline> load(const ModelOptions& options, const Logger& log,
                                               const std::shared_ptr<const SharedComponents>& reuse);
  ~Txt2ImgPipeline();

  GenerationResult generate(const std::vector<std::string>& prompts, const GenerateOptions& options,
                            const StepCallback& on_step = {}, const Logger& log = Logger::silent());

  // The one-time work of the UNet's CUDA graphs so far: seconds in first (eager) calls and in
  // captures, and graphs captured (all zero without graphs).
  struct GraphSetUp {
    double first_calls_s = 0;
    double captures_s = 0;
    int graphs = 0;
  };
  GraphSetUp graph_set_up() const;

  // The same generation one batch per call, for a caller that interleaves the batches of two
  // pipelines (the evaluator): start(), next_batch() until done(), finish(). generate() is exactly
  // that. The pipeline must outlive the Generation.
  class Generation {
   public:
    ~Generation();
    Generation(Generation&&) noexcept;
    Generation& operator=(Generation&&) noexcept;
    bool done() const;
    const BatchRecord& next_batch(const Logger& log = Logger::silent());  // generates the next batch
    GenerationResult finish();  // every batch's images and records; call once, after done()
    // The last generated batch's images ([n,3,H,W] float32 on the CPU, in [0,1]), handed over:
    // finish() then leaves them out (a caller that takes every batch's gets no images there), so
    // a long run need not hold them all.
    at::Tensor take_batch_images();
    // Skips the next batch as if it had run with record `rec` (from an earlier process that ran it):
    // later batches see the same batch index, and in diffusers noise mode `noise_state` (noise_state()
    // after that batch) as their generator. What a resumed evaluation does for its finished batches.
    void skip_batch(const BatchRecord& rec, const std::vector<uint8_t>& noise_state);
    std::vector<uint8_t> noise_state() const;  // NoiseSource::state() now

   private:
    friend class Txt2ImgPipeline;
    struct State;
    explicit Generation(std::unique_ptr<State> state);
    std::unique_ptr<State> state_;
  };
  Generation start(const std::vector<std::string>& prompts, const GenerateOptions& options,
                   const StepCallback& on_step = {});

  const ModelOptions& options() const;
  int default_height() const;
  int default_width() const;
  int vae_scale_factor() const;
  // Seconds each component took to load (for run.json); "reused" lists components taken from
  // SharedComponents.
  const nlohmann::json& load_report() const;

  // Exposed for tests and the evaluator.
  // [B,77,D]; SDXL: both encoders' penultimate hidden states concatenated ([B,77,D1+D2]).
  at::Tensor encode_prompts(const std::vector<std::string>& prompts);

 private:
  struct Impl;
  explicit Txt2ImgPipeline(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffbench
