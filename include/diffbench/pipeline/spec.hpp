// Layering: the spec lives beside the pipeline and converts itself into the pipeline's options; it
// names methods (AccelEntry) but never makes them: the MethodRegistry sits above, in accel/, and
// accel/spec_run.hpp (the run layer generate, bench and eval share) makes a spec's methods.
//
// Pipeline specs: the TOML file a user writes instead of a Python script.
//
//   [pipeline]
//   model = "path/to/stable-diffusion-v1-5"   # relative paths are relative to the spec file
//   scheduler = "pndm"    steps = 50    guidance = 7.5    height = 512    width = 512
//   dtype = "fp16"        device = "cuda"
//   scheduler_options = { timestep_spacing = "trailing" }   # optional: as Scheduler.from_config(config, **options)
//   guidance_rescale = 0.7   # optional: diffusers' guidance_rescale (0 = off, the default)
//   # model may also be a Hugging Face id, "ORG/NAME", found in the local hub cache (io/hub_cache.hpp),
//   # with optional revision = "main", variant = "fp16", cache_dir = "...", or "demo" (the bundled demo model)
//   # model may be a single-file checkpoint, "model.safetensors" (pipeline/single_file.hpp), with optional
//   # prediction_type = "v_prediction" (SD 2.x 768 models) and config = "diffusers-folder" (its configs)
//   [[lora]]              # zero or more LoRAs fused into the weights at load (pipeline/lora.hpp)
//   file = "style.safetensors"   scale = 0.8
//   [[accelerate]]        # zero or more, applied in order
//   method = "deepcache"  cache_interval = 3  cache_branch_id = 0   # plugin = "path/lib.so" for plugins
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/io/hub_cache.hpp"
#include "diffbench/pipeline/noise.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench {

// One [[accelerate]] table of a pipeline spec (or one --accel METHOD:key=value,... argument).
struct AccelEntry {
  std::string method;
  std::filesystem::path plugin;                       // empty for built-in methods
  nlohmann::json params = nlohmann::json::object();   // every other key, typed as in the file
  std::map<std::string, int> lines;                   // key -> line in the spec, for error messages
  int line = 0;                                       // line of the [[accelerate]] table
};

// How a command runs a spec, beyond the spec itself: the protocol's seed, batch size and noise.
struct RunProtocol {
  uint64_t seed = 42;
  int batch_size = 1;
  NoiseMode noise = NoiseMode::PerPrompt;
  bool allow_nonfinite = false;  // NaN/inf latents or images do not stop the run
};

// CUDA execution settings a command may turn off (ModelOptions says what each does); no effect on the CPU.
struct CudaTuning {
  bool cuda_graphs = true;
  bool channels_last = true;
  bool cudnn_benchmark = false;
};

struct PipelineSpec {
  std::filesystem::path file;  // where it came from (empty when derived)
  std::string name;            // file stem, or "<candidate>-baseline" when derived
  std::filesystem::path model;  // the diffusers folder (after resolve_spec_model: the hub snapshot or the demo)
  std::string model_ref;         // `model` as written: a path, an "ORG/NAME" id or "demo"
  std::string revision;          // hub revision ("" = main)
  std::string variant;           // weights variant to prefer, e.g. "fp16"
  std::filesystem::path cache_dir;  // hub cache ("" = from the environment)
  std::optional<HubModel> hub;   // set when model_ref was resolved through the hub cache
  std::string scheduler;       // "" = the checkpoint's own
  nlohmann::json scheduler_options = nlohmann::json::object();  // config keys over the checkpoint's
  int steps = 50;
  double guidance = 7.5;
  double guidance_rescale = 0.0;  // diffusers' guidance_rescale (0: off)
  int height = 0;              // 0 = from the model
  int width = 0;
  std::string dtype = "fp32";
  std::string device = "cpu";
  std::string prediction_type;          // "" = the model's; epsilon / v_prediction
  std::filesystem::path model_config;   // `config`: single files' configs from this diffusers folder
  std::vector<LoraSpec> loras;          // [[lora]] tables: part of the model, so baseline() keeps them
  std::vector<AccelEntry> accelerate;
  // Where a spec translated from a Python pipeline file came from (eval/pyimport.hpp):
  // {"python": FILE, "pipeline_class": ..., "statements": [...], "ignored": [...]}; null otherwise.
  nlohmann::json origin;

  // The unaccelerated pipeline: every [[accelerate]] entry dropped, and dtype fp8 replaced by the dtype
  // it computes in otherwise (precision_dtype()): fp8 changes the images, so it is measured like a method.
  PipelineSpec baseline() const;
  // dtype, except for fp8: fp16 on CUDA, fp32 on the CPU (the dtype of the weights and the activations).
  std::string precision_dtype() const;
  nlohmann::json to_json() const;

  // What Txt2ImgPipeline::load takes for this spec (folder, variant, device, dtype; fp8: ModelOptions::fp8
  // with precision_dtype(), a UsageError on a GPU without fp8 GEMMs).
  ModelOptions model_options(const CudaTuning& tuning = {}) const;
  // What Txt2ImgPipeline::generate takes for this spec under `protocol`, without hooks (the spec's
  // methods are attached by accel/spec_run.hpp).
  GenerateOptions generate_options(const RunProtocol& protocol) const;
};

// Parses and validates a spec. Unknown keys, wrong types and bad values are InputErrors whose
// where() is "FILE:LINE" and whose message names the key. load_spec also resolves the model
// (resolve_spec_model); parse_spec leaves it as written.
PipelineSpec load_spec(const std::filesystem::path& file);
PipelineSpec parse_spec(const std::string& text, const std::filesystem::path& file);

// Resolves `model` where specs and the command line are read, so nothing later sees an alias:
// "demo" (when no such file exists) becomes the bundled demo model (io/assets.hpp); a `model` that
// is not an existing folder and looks like "ORG/NAME" is looked up in the local hub cache (`model`
// becomes the snapshot folder and `hub` records it). Not cached: InputError listing the folders
// looked in and the download command.
void resolve_spec_model(PipelineSpec& spec);

// One --lora FILE[:SCALE] argument (scale 1 when absent); UsageError on a bad scale.
LoraSpec parse_lora_arg(const std::string& text, const std::string& option = "--lora");

// Differences between two specs that the report lists (steps, scheduler, guidance, size, ...).
std::vector<std::string> spec_differences(const PipelineSpec& a, const PipelineSpec& b);

}  // namespace diffbench
