#include "diffbench/demo/models.hpp"

#include <torch/torch.h>

#include "diffbench/io/staging_dir.hpp"
#include "diffbench/pipeline/init_random.hpp"

namespace diffbench::demo {

namespace fs = std::filesystem;
using nlohmann::json;

DemoArch DemoArch::tiny() {
  DemoArch a;
  a.text_hidden = 32, a.text_layers = 2, a.text_heads = 2, a.text_intermediate = 64;
  a.vision_hidden = 32, a.vision_layers = 2, a.vision_heads = 2, a.vision_intermediate = 64, a.patch_size = 16;
  a.projection_dim = 32;
  a.vae_channels = {8, 16, 16, 16};
  a.vae_norm_groups = 4;
  a.unet_channels = {16, 32, 32, 32};
  a.unet_layers_per_block = 1;
  a.unet_heads = 2;
  a.unet_norm_groups = 8;
  return a;
}

namespace {

json text_tower(const DemoArch& a, const BpeVocab& v) {
  return {{"attention_dropout", 0.0},
          {"bos_token_id", v.bos_id},
          {"eos_token_id", v.eos_id},
          {"hidden_act", "quick_gelu"},
          {"hidden_size", a.text_hidden},
          {"initializer_factor", 1.0},
          {"initializer_range", 0.02},
          {"intermediate_size", a.text_intermediate},
          {"layer_norm_eps", 1e-5},
          {"max_position_embeddings", 77},
          {"model_type", "clip_text_model"},
          {"num_attention_heads", a.text_heads},
          {"num_hidden_layers", a.text_layers},
          {"pad_token_id", v.eos_id},
          {"projection_dim", a.projection_dim},
          {"vocab_size", static_cast<int64_t>(v.tokens.size())}};
}

void write_json(const fs::path& file, const json& j) { write_file_atomic(file, j.dump(2) + "\n"); }

}  // namespace

json clip_config(const DemoArch& a, const BpeVocab& v) {
  return {{"architectures", {"CLIPModel"}},
          {"initializer_factor", 1.0},
          {"logit_scale_init_value", 2.6592},
          {"model_type", "clip"},
          {"projection_dim", a.projection_dim},
          {"text_config", text_tower(a, v)},
          {"vision_config",
           {{"attention_dropout", 0.0},
            {"hidden_act", "quick_gelu"},
            {"hidden_size", a.vision_hidden},
            {"image_size", 64},
            {"initializer_factor", 1.0},
            {"initializer_range", 0.02},
            {"intermediate_size", a.vision_intermediate},
            {"layer_norm_eps", 1e-5},
            {"model_type", "clip_vision_model"},
            {"num_attention_heads", a.vision_heads},
            {"num_channels", 3},
            {"num_hidden_layers", a.vision_layers},
            {"patch_size", a.patch_size},
            {"projection_dim", a.projection_dim}}}};
}

json clip_processor_config() {
  return {{"image_processor",
           {{"crop_size", {{"height", 64}, {"width", 64}}},
            {"do_center_crop", true},
            {"do_convert_rgb", true},
            {"do_normalize", true},
            {"do_rescale", true},
            {"do_resize", true},
            {"image_mean", {0.48145466, 0.4578275, 0.40821073}},
            {"image_processor_type", "CLIPImageProcessor"},
            {"image_std", {0.26862954, 0.26130258, 0.27577711}},
            {"resample", 3},
            {"rescale_factor", 1.0 / 255.0},
            {"size", {{"shortest_edge", 64}}}}},
          {"processor_class", "CLIPProcessor"}};
}

json text_encoder_config(const DemoArch& a, const BpeVocab& v) {
  json j = text_tower(a, v);
  j["architectures"] = {"CLIPTextModel"};
  return j;
}

json vae_config(const DemoArch& a, double scaling_factor) {
  const size_t n = a.vae_channels.size();
  return {{"_class_name", "AutoencoderKL"},
          {"act_fn", "silu"},
          {"block_out_channels", a.vae_channels},
          {"down_block_types", std::vector<std::string>(n, "DownEncoderBlock2D")},
          {"force_upcast", true},
          {"in_channels", 3},
          {"latent_channels", 4},
          {"layers_per_block", a.vae_layers_per_block},
          {"norm_num_groups", a.vae_norm_groups},
          {"out_channels", 3},
          {"sample_size", 64},
          {"scaling_factor", scaling_factor},
          {"up_block_types", std::vector<std::string>(n, "UpDecoderBlock2D")}};
}

json unet_config(const DemoArch& a) {
  return {{"_class_name", "UNet2DConditionModel"},
          {"act_fn", "silu"},
          {"attention_head_dim", a.unet_heads},
          {"block_out_channels", a.unet_channels},
          {"center_input_sample", false},
          {"cross_attention_dim", a.text_hidden},
          {"down_block_types", {"CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D", "DownBlock2D"}},
          {"downsample_padding", 1},
          {"flip_sin_to_cos", true},
          {"freq_shift", 0},
          {"in_channels", 4},
          {"layers_per_block", a.unet_layers_per_block},
          {"mid_block_scale_factor", 1},
          {"norm_eps", 1e-5},
          {"norm_num_groups", a.unet_norm_groups},
          {"out_channels", 4},
          {"sample_size", 64 / (1 << (a.vae_channels.size() - 1))},
          {"up_block_types", {"UpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "CrossAttnUpBlock2D"}},
          {"use_linear_projection", false}};
}

json scheduler_config() {
  return {{"_class_name", "PNDMScheduler"},  {"beta_end", 0.012},           {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},            {"clip_sample", false},        {"num_train_timesteps", 1000},
          {"prediction_type", "epsilon"},     {"set_alpha_to_one", false},   {"skip_prk_steps", true},
          {"steps_offset", 1},                {"timestep_spacing", "leading"}, {"trained_betas", nullptr}};
}

StateDict module_state(torch::nn::Module& module, at::ScalarType dtype, const std::string& prefix) {
  StateDict out;
  torch::NoGradGuard no_grad;
  auto add = [&](const std::string& name, const at::Tensor& t) {
    at::Tensor c = t.detach().to(at::kCPU);
    out[prefix + name] = c.is_floating_point() ? c.to(dtype).contiguous() : c.contiguous();
  };
  for (const auto& p : module.named_parameters(true)) add(p.key(), p.value());
  for (const auto& b : module.named_buffers(true)) add(b.key(), b.value());
  return out;
}

void write_clip_folder(const fs::path& dir, ClipModel& clip, const json& config, const BpeVocab& vocab,
                       at::ScalarType dtype) {
  fs::create_directories(dir);
  write_json(dir / "config.json", config);
  write_json(dir / "processor_config.json", clip_processor_config());
  write_tokenizer_files(vocab, dir);
  save_safetensors(dir / "model.safetensors", module_state(*clip, dtype), {{"format", "pt"}});
}

void write_sd_folder(const fs::path& dir, ClipModel& clip, AutoencoderKL& vae, UNet2DConditionModel& unet,
                     const DemoArch& arch, const BpeVocab& vocab, double scaling_factor, at::ScalarType dtype) {
  fs::create_directories(dir);
  write_json(dir / "model_index.json", sd_model_index());
  fs::create_directories(dir / "scheduler");
  write_json(dir / "scheduler" / "scheduler_config.json", scheduler_config());
  write_tokenizer_files(vocab, dir / "tokenizer");
  fs::create_directories(dir / "text_encoder");
  write_json(dir / "text_encoder" / "config.json", text_encoder_config(arch, vocab));
  // transformers >= 5 writes a stand-alone CLIPTextModel's keys without the `text_model.` prefix.
  save_safetensors(dir / "text_encoder" / "model.safetensors", module_state(*clip->text_tower(), dtype),
                   {{"format", "pt"}});
  fs::create_directories(dir / "vae");
  write_json(dir / "vae" / "config.json", vae_config(arch, scaling_factor));
  save_safetensors(dir / "vae" / "diffusion_pytorch_model.safetensors", module_state(*vae, dtype), {{"format", "pt"}});
  fs::create_directories(dir / "unet");
  write_json(dir / "unet" / "config.json", unet_config(arch));
  save_safetensors(dir / "unet" / "diffusion_pytorch_model.safetensors", module_state(*unet, dtype),
                   {{"format", "pt"}});
}

}  // namespace diffbench::demo
