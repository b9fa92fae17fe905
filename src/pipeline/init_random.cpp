#include "diffbench/pipeline/init_random.hpp"

#include <cmath>

#include <torch/torch.h>

#include "diffbench/error.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "diffbench/models/blocks/layers.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/models/unet.hpp"
#include "diffbench/models/vae.hpp"

namespace diffbench {

namespace fs = std::filesystem;
using nlohmann::json;

namespace {

json unet_config(const std::string& arch) {
  const bool big = arch == "sd15";
  return {{"_class_name", "UNet2DConditionModel"},
          {"act_fn", "silu"},
          {"attention_head_dim", big ? 8 : 2},
          {"block_out_channels", big ? json{320, 640, 1280, 1280} : json{32, 64, 64, 64}},
          {"center_input_sample", false},
          {"cross_attention_dim", big ? 768 : 32},
          {"down_block_types", {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
          {"downsample_padding", 1},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"in_channels", 4},
          {"layers_per_block", 2},
          {"mid_block_scale_factor", 1},
          {"norm_eps", 1e-5},
          {"norm_num_groups", big ? 32 : 16},
          {"out_channels", 4},
          {"sample_size", big ? 64 : 16},
          {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}},
          {"use_linear_projection", false}};
}

json vae_config(const std::string& arch) {
  const bool big = arch == "sd15";
  return {{"_class_name", "AutoencoderKL"},
          {"act_fn", "silu"},
          {"block_out_channels", big ? json{128, 256, 512, 512} : json{16, 32, 32, 32}},
          {"down_block_types", json::array({"DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D", "DownEncoderBlock2D"})},
          {"in_channels", 3},
          {"latent_channels", 4},
          {"layers_per_block", big ? 2 : 1},
          {"norm_num_groups", big ? 32 : 8},
          {"out_channels", 3},
          {"sample_size", big ? 512 : 128},
          {"scaling_factor", 0.18215},
          {"up_block_types", json::array({"UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D", "UpDecoderBlock2D"})}};
}

json text_config(const std::string& arch) {
  const bool big = arch == "sd15";
  return {{"architectures", {"CLIPTextModel"}},
          {"bos_token_id", 49406},
          {"eos_token_id", 49407},
          {"pad_token_id", 49407},
          {"hidden_act", "quick_gelu"},
          {"hidden_size", big ? 768 : 32},
          {"intermediate_size", big ? 3072 : 37},
          {"layer_norm_eps", 1e-5},
          {"max_position_embeddings", 77},
          {"model_type", "clip_text_model"},
          {"num_attention_heads", big ? 12 : 4},
          {"num_hidden_layers", big ? 12 : 2},
          {"projection_dim", big ? 768 : 32},
          {"vocab_size", 49408}};
}

json scheduler_config(const std::string& prediction_type) {
  return {{"_class_name", "PNDMScheduler"},     {"beta_end", 0.012},         {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},               {"num_train_timesteps", 1000}, {"prediction_type", prediction_type},
          {"set_alpha_to_one", false},           {"skip_prk_steps", true},    {"steps_offset", 1},
          {"timestep_spacing", "leading"},       {"trained_betas", nullptr}};
}

// Deterministic, variance-preserving initialisation from one local generator: norm weights 1,
// biases 0, everything else N(0, 1/fan_in).
StateDict random_weights(torch::nn::Module& module, at::Generator& gen, at::ScalarType dtype) {
  StateDict out;
  torch::NoGradGuard no_grad;
  for (auto& item : module.named_parameters(true)) {
    const std::string& name = item.key();
    at::Tensor p = item.value();
    const bool is_bias = name.size() > 5 && name.compare(name.size() - 5, 5, ".bias") == 0;
    const bool is_norm = p.dim() == 1 && name.find("norm") != std::string::npos;
    at::Tensor v;
    if (is_bias) {
      v = at::zeros_like(p);
    } else if (is_norm) {
      v = at::ones_like(p);
    } else {
      const int64_t fan_in = p.dim() > 1 ? p.numel() / p.size(0) : p.numel();
      v = at::normal(0.0, 1.0 / std::sqrt(static_cast<double>(std::max<int64_t>(fan_in, 1))), p.sizes(), gen);
    }
    out[name] = v.to(dtype);
  }
  for (auto& item : module.named_buffers(true)) out[item.key()] = item.value().clone();
  return out;
}

void write_json(const fs::path& file, const json& j) { write_file_atomic(file, j.dump(2) + "\n"); }

template <typename ModuleHolder>
void save_module(const fs::path& dir, const std::string& weights_name, const json& config, ModuleHolder module,
                 at::Generator& gen, at::ScalarType dtype) {
  fs::create_directories(dir);
  write_json(dir / "config.json", config);
  save_safetensors(dir / weights_name, random_weights(*module, gen, dtype), {{"format", "pt"}});
}

}  // namespace

json sd_model_index() {
  return {{"_class_name", "StableDiffusionPipeline"},
          {"feature_extractor", {nullptr, nullptr}},
          {"image_encoder", {nullptr, nullptr}},
          {"requires_safety_checker", false},
          {"safety_checker", {nullptr, nullptr}},
          {"scheduler", {"diffusers", "PNDMScheduler"}},
          {"text_encoder", {"transformers", "CLIPTextModel"}},
          {"tokenizer", {"transformers", "CLIPTokenizer"}},
          {"unet", {"diffusers", "UNet2DConditionModel"}},
          {"vae", {"diffusers", "AutoencoderKL"}}};
}

void write_random_pipeline(const fs::path& out, const RandomPipelineOptions& o) {
  if (o.arch != "sd15" && o.arch != "tiny") throw UsageError("unknown architecture '" + o.arch + "' (sd15 or tiny)", "--arch");
  if (o.tokenizer.empty())
    throw UsageError("a CLIP tokenizer folder is needed (e.g. the bundled assets/clip-tokenizer): pass --tokenizer DIR",
                     "--tokenizer");
  const bool has_bpe = fs::exists(o.tokenizer / "vocab.json") && fs::exists(o.tokenizer / "merges.txt");
  const bool has_json = fs::exists(o.tokenizer / "tokenizer.json");
  if (!has_bpe && !has_json && !fs::exists(o.tokenizer / "bpe_simple_vocab_16e6.txt.gz"))
    throw InputError("tokenizer folder has neither vocab.json + merges.txt, tokenizer.json nor bpe_simple_vocab_16e6.txt.gz",
                     o.tokenizer.string());
  ClipTokenizer::from_dir(o.tokenizer);  // a broken vocab.json or merges.txt fails here, not in every later run

  StagingDir staging(out, /*replace=*/false);
  const fs::path dir = staging.path();
  at::Generator gen = at::make_generator<at::CPUGeneratorImpl>(o.seed);

  json index = sd_model_index();
  index["_diffbench_init_random"] = {{"arch", o.arch}, {"seed", o.seed}};
  write_json(dir / "model_index.json", index);
  fs::create_directories(dir / "scheduler");
  write_json(dir / "scheduler" / "scheduler_config.json", scheduler_config(o.prediction_type));

  fs::create_directories(dir / "tokenizer");
  for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"})
    if (fs::exists(o.tokenizer / f)) fs::copy_file(o.tokenizer / f, dir / "tokenizer" / f);
  // open_clip's merges list alone (assets/clip-tokenizer): written out in the layout diffusers reads.
  if (!has_bpe && !has_json) write_clip_vocab_files(o.tokenizer, dir / "tokenizer");
  if (!fs::exists(dir / "tokenizer" / "tokenizer_config.json"))
    write_json(dir / "tokenizer" / "tokenizer_config.json",
               {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"}, {"pad_token", "<|endoftext|>"},
                {"unk_token", "<|endoftext|>"}, {"model_max_length", 77}, {"tokenizer_class", "CLIPTokenizer"}});

  const json tc = text_config(o.arch), uc = unet_config(o.arch), vc = vae_config(o.arch);
  // Made without LibTorch's initialisation: random_weights draws every value itself.
  const ParameterTarget uninitialised(at::TensorOptions(at::kFloat));
  save_module(dir / "text_encoder", "model.safetensors", tc,
              ClipTextModel(ClipTextConfig::from_json(JsonConfig(tc, "text_encoder/config.json"))), gen, o.weights_dtype);
  save_module(dir / "unet", "diffusion_pytorch_model.safetensors", uc,
              UNet2DConditionModel(UNetConfig::from_json(JsonConfig(uc, "unet/config.json"))), gen, o.weights_dtype);
  save_module(dir / "vae", "diffusion_pytorch_model.safetensors", vc,
              AutoencoderKL(VaeConfig::from_json(JsonConfig(vc, "vae/config.json"))), gen, o.weights_dtype);
  staging.commit();
}

}  // namespace diffbench
