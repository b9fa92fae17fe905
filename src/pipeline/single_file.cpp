// Opening an original-layout checkpoint: which family, the layout its tensors show, each component's
// configuration, and its tensors under diffusers' names (single_file_keys.cpp has the table).
#include "diffbench/pipeline/single_file.hpp"

#include <algorithm>
#include <set>

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/json_config.hpp"

namespace diffbench {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace {

constexpr const char* kUNet = "model.diffusion_model.";
constexpr const char* kVae = "first_stage_model.";
constexpr const char* kSd1Text = "cond_stage_model.transformer.";
constexpr const char* kSd2Text = "cond_stage_model.model.";
constexpr const char* kSdxlText = "conditioner.embedders.0.transformer.";
constexpr const char* kSdxlText2 = "conditioner.embedders.1.model.";

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

// Reads the checkpoint's tensors by name, with errors that say which tensor the layout needed.
struct Tensors {
  const SafetensorsFile& f;
  bool has(const std::string& name) const { return f.contains(name); }
  const std::vector<int64_t>& shape(const std::string& name) const {
    if (!f.contains(name))
      throw ModelError("not a complete " + std::string("original-layout checkpoint: tensor '") + name + "' is missing",
                       f.path().string());
    return f.info(name).shape;
  }
  int64_t dim(const std::string& name, size_t i) const {
    const auto& s = shape(name);
    if (i >= s.size()) throw ModelError("tensor '" + name + "' has too few dimensions", f.path().string());
    return s[i];
  }
  // 1 + the largest N of keys "<prefix>N.<anything>" (0 when none).
  int count(const std::string& prefix) const {
    int n = 0;
    for (const auto& t : f.tensors()) {
      if (!starts_with(t.name, prefix)) continue;
      const size_t end = t.name.find('.', prefix.size());
      const std::string digits = t.name.substr(prefix.size(), end - prefix.size());
      if (digits.empty() || digits.size() > 4 || digits.find_first_not_of("0123456789") != std::string::npos) continue;
      n = std::max(n, std::stoi(digits) + 1);
    }
    return n;
  }
};

UNetLayout read_unet_layout(const Tensors& t) {
  const std::string p = kUNet;
  const int inputs = t.count(p + "input_blocks.");
  int downsamplers = 0;
  for (int i = 0; i < inputs; ++i) downsamplers += t.has(p + "input_blocks." + std::to_string(i) + ".0.op.weight");
  UNetLayout u;
  u.blocks = downsamplers + 1;
  if (inputs < 2 || inputs % u.blocks != 0)
    throw ModelError("the UNet's input_blocks (" + std::to_string(inputs) + ") do not form " + std::to_string(u.blocks) +
                         " equal down blocks",
                     t.f.path().string());
  u.layers_per_block = inputs / u.blocks - 1;
  for (int b = 0; b < u.blocks; ++b)
    u.attention.push_back(t.has(p + "input_blocks." + std::to_string(b * (u.layers_per_block + 1) + 1) + ".1.norm.weight"));
  return u;
}

VaeLayout read_vae_layout(const Tensors& t) {
  VaeLayout v;
  v.blocks = t.count(std::string(kVae) + "encoder.down.");
  v.layers_per_block = t.count(std::string(kVae) + "encoder.down.0.block.");
  if (v.blocks == 0 || v.layers_per_block == 0)
    throw ModelError("no VAE encoder blocks (first_stage_model.encoder.down.*)", t.f.path().string());
  return v;
}

// diffusers' config.json for the UNet, from the tensors; `family` settles what they cannot show.
json infer_unet(const Tensors& t, const UNetLayout& u, CheckpointFamily family, bool v_prediction) {
  const std::string p = kUNet;
  json down = json::array(), up = json::array(), channels = json::array(), heads = json::array();
  std::string first_attention;
  for (int b = 0; b < u.blocks; ++b) {
    const std::string block = p + "input_blocks." + std::to_string(b * (u.layers_per_block + 1) + 1) + ".";
    const int64_t c = t.dim(block + "0.out_layers.3.weight", 0);
    channels.push_back(c);
    heads.push_back(std::max<int64_t>(1, c / 64));  // SD 2.x: 64 channels per head
    down.push_back(u.attention[b] ? "CrossAttnDownBlock2D" : "DownBlock2D");
    up.push_back(u.attention[u.blocks - 1 - b] ? "CrossAttnUpBlock2D" : "UpBlock2D");
    if (u.attention[b] && first_attention.empty()) first_attention = block + "1.";
  }
  if (first_attention.empty()) throw ModelError("the UNet has no cross-attention blocks", t.f.path().string());
  // What every family reads the same way from the tensors.
  json c = {{"_class_name", "UNet2DConditionModel"},
            {"in_channels", t.dim(p + "input_blocks.0.0.weight", 1)},
            {"out_channels", t.dim(p + "out.2.weight", 0)},
            {"down_block_types", down},
            {"up_block_types", up},
            {"block_out_channels", channels},
            {"layers_per_block", u.layers_per_block},
            {"cross_attention_dim", t.dim(first_attention + "transformer_blocks.0.attn2.to_k.weight", 1)},
            {"use_linear_projection", t.shape(first_attention + "proj_in.weight").size() == 2}};
  if (family == CheckpointFamily::SDXL) {
    // sgm's SDXL UNet: 64 channels per head, transformer depth per block, linear projections, the
    // text_time added conditioning (pooled text embedding + 6 time ids at 256 each).
    json depth = json::array();
    for (int b = 0; b < u.blocks; ++b) {
      const std::string block = p + "input_blocks." + std::to_string(b * (u.layers_per_block + 1) + 1) + ".1.";
      depth.push_back(u.attention[b] ? t.count(block + "transformer_blocks.") : 1);
    }
    c["sample_size"] = 128;
    c["transformer_layers_per_block"] = depth;
    c["attention_head_dim"] = heads;
    c["addition_embed_type"] = "text_time";
    c["addition_time_embed_dim"] = 256;
    c["projection_class_embeddings_input_dim"] = t.dim(p + "label_emb.0.0.weight", 1);
    return c;
  }
  c["sample_size"] = family == CheckpointFamily::SD2 && v_prediction ? 96 : 64;
  c["transformer_layers_per_block"] = t.count(first_attention + "transformer_blocks.");
  // ldm's num_heads = 8 (SD 1.x) and num_head_channels = 64 (SD 2.x); diffusers calls both attention_head_dim.
  c["attention_head_dim"] = family == CheckpointFamily::SD1 ? json(8) : heads;
  return c;
}

json infer_vae(const Tensors& t, const VaeLayout& v, CheckpointFamily family, bool v_prediction) {
  const std::string p = kVae;
  json channels = json::array();
  for (int i = 0; i < v.blocks; ++i) channels.push_back(t.dim(p + "encoder.down." + std::to_string(i) + ".block.0.conv1.weight", 0));
  return {{"_class_name", "AutoencoderKL"},
          {"in_channels", t.dim(p + "encoder.conv_in.weight", 1)},
          {"out_channels", t.dim(p + "decoder.conv_out.weight", 0)},
          {"latent_channels", t.dim(p + "decoder.conv_in.weight", 1)},
          {"down_block_types", json::array_t(v.blocks, "DownEncoderBlock2D")},
          {"up_block_types", json::array_t(v.blocks, "UpDecoderBlock2D")},
          {"block_out_channels", channels},
          {"layers_per_block", v.layers_per_block},
          {"sample_size", family == CheckpointFamily::SDXL ? 1024 : family == CheckpointFamily::SD2 && v_prediction ? 768 : 512},
          {"scaling_factor", family == CheckpointFamily::SDXL ? 0.13025 : 0.18215},
          {"force_upcast", family == CheckpointFamily::SDXL}};
}

// transformers' CLIPTextConfig: OpenAI's ViT-L/14 text tower (SD 1.x) or open_clip's ViT-H/14 text
// tower without its last layer (SD 2.x); 64 channels per head in both.
json infer_text(const Tensors& t, CheckpointFamily family, int stored_layers) {
  const bool sd1 = family == CheckpointFamily::SD1 || family == CheckpointFamily::SDXL;
  std::string p = family == CheckpointFamily::SDXL ? kSdxlText : sd1 ? kSd1Text : kSd2Text;
  if (sd1 && t.has(p + "text_model.embeddings.token_embedding.weight")) p += "text_model.";
  const std::string token = sd1 ? p + "embeddings.token_embedding.weight" : p + "token_embedding.weight";
  const std::string position = sd1 ? p + "embeddings.position_embedding.weight" : p + "positional_embedding";
  const std::string fc1 = sd1 ? p + "encoder.layers.0.mlp.fc1.weight" : p + "transformer.resblocks.0.mlp.c_fc.weight";
  const int64_t hidden = t.dim(token, 1);
  return {{"architectures", {"CLIPTextModel"}},
          {"vocab_size", t.dim(token, 0)},
          {"hidden_size", hidden},
          {"intermediate_size", t.dim(fc1, 0)},
          {"num_hidden_layers", sd1 ? stored_layers : stored_layers - 1},
          {"num_attention_heads", std::max<int64_t>(1, hidden / 64)},
          {"max_position_embeddings", t.dim(position, 0)},
          {"hidden_act", sd1 ? "quick_gelu" : "gelu"},
          {"layer_norm_eps", 1e-5},
          {"bos_token_id", 49406},
          {"eos_token_id", 49407},
          {"pad_token_id", sd1 ? 49407 : 0}};
}

// SDXL's second text encoder: open_clip's ViT-bigG/14 text tower as transformers'
// CLIPTextModelWithProjection, every layer kept (64 channels per head, exact GELU).
json infer_text_2(const Tensors& t, int stored_layers) {
  const std::string p = kSdxlText2;
  const int64_t hidden = t.dim(p + "token_embedding.weight", 1);
  const int64_t projection = t.has(p + "text_projection") ? t.dim(p + "text_projection", 1)
                                                          : t.dim(p + "text_projection.weight", 0);
  return {{"architectures", {"CLIPTextModelWithProjection"}},
          {"vocab_size", t.dim(p + "token_embedding.weight", 0)},
          {"hidden_size", hidden},
          {"intermediate_size", t.dim(p + "transformer.resblocks.0.mlp.c_fc.weight", 0)},
          {"num_hidden_layers", stored_layers},
          {"num_attention_heads", std::max<int64_t>(1, hidden / 64)},
          {"max_position_embeddings", t.dim(p + "positional_embedding", 0)},
          {"projection_dim", projection},
          {"hidden_act", "gelu"},
          {"layer_norm_eps", 1e-5},
          {"bos_token_id", 49406},
          {"eos_token_id", 49407},
          {"pad_token_id", 0}};
}

// stabilityai/stable-diffusion-xl-base-1.0's scheduler_config.json.
json sdxl_scheduler(const std::string& prediction_type) {
  return {{"_class_name", "EulerDiscreteScheduler"},
          {"beta_start", 0.00085},
          {"beta_end", 0.012},
          {"beta_schedule", "scaled_linear"},
          {"num_train_timesteps", 1000},
          {"steps_offset", 1},
          {"timestep_spacing", "leading"},
          {"interpolation_type", "linear"},
          {"use_karras_sigmas", false},
          {"clip_sample", false},
          {"sample_max_value", 1.0},
          {"set_alpha_to_one", false},
          {"skip_prk_steps", true},
          {"prediction_type", prediction_type.empty() ? "epsilon" : prediction_type},
          {"trained_betas", nullptr}};
}

// The scheduler diffusers' hub configs give each family: PNDM for SD 1.x and the 512 SD 2.x base
// models, DDIM for the 768 v-prediction ones.
json default_scheduler(const std::string& prediction_type) {
  json s = {{"beta_start", 0.00085},        {"beta_end", 0.012},       {"beta_schedule", "scaled_linear"},
            {"num_train_timesteps", 1000},  {"set_alpha_to_one", false}, {"skip_prk_steps", true},
            {"steps_offset", 1},            {"prediction_type", prediction_type.empty() ? "epsilon" : prediction_type},
            {"timestep_spacing", "leading"}, {"trained_betas", nullptr}};
  s["_class_name"] = prediction_type == "v_prediction" ? "DDIMScheduler" : "PNDMScheduler";
  if (prediction_type == "v_prediction") s["clip_sample"] = false;
  return s;
}

json read_config(const fs::path& file) { return JsonConfig::load(file).raw(); }

const char* pickle_conversion(const fs::path& file) {
  (void)file;
  return "python -c \"import torch, safetensors.torch as st; sd = torch.load('IN.ckpt', map_location='cpu', "
         "weights_only=True); sd = sd.get('state_dict', sd); st.save_file({k: v.clone().contiguous() for k, v in "
         "sd.items() if isinstance(v, torch.Tensor)}, 'OUT.safetensors')\"";
}

}  // namespace

bool is_single_file(const fs::path& path) {
  if (fs::is_directory(path)) return false;
  const std::string ext = path.extension().string();
  return ext == ".safetensors" || ext == ".ckpt" || ext == ".pt" || ext == ".pth" || ext == ".bin";
}

std::vector<CheckpointPart> SingleFileCheckpoint::parts(const std::string& component) const {
  CheckpointPart part{handle, {}};
  auto it = tensors.find(component);
  if (it == tensors.end()) throw ModelError("the checkpoint has no " + component, file.string());
  for (const auto& t : it->second) part.tensors.push_back(&t);
  return {part};
}

SingleFileCheckpoint open_single_file(const fs::path& file, const SingleFileOptions& options) {
  const std::string ext = file.extension().string();
  if (ext != ".safetensors")
    throw InputError("single-file checkpoints are read as .safetensors only (pickle files can run code); convert "
                     "it once with: " + std::string(pickle_conversion(file)),
                     file.string());
  if (!options.prediction_type.empty() && options.prediction_type != "epsilon" && options.prediction_type != "v_prediction")
    throw UsageError("prediction type must be epsilon or v_prediction (got '" + options.prediction_type + "')",
                     "prediction_type");
  SingleFileCheckpoint ck;
  ck.file = file;
  ck.handle = SafetensorsFile::open(file);
  const Tensors t{*ck.handle};

  bool sd1 = false, sd2 = false, sdxl = false, unet = false;
  for (const auto& info : ck.handle->tensors()) {
    sd1 = sd1 || starts_with(info.name, kSd1Text);
    sd2 = sd2 || starts_with(info.name, kSd2Text);
    sdxl = sdxl || starts_with(info.name, "conditioner.embedders.");
    unet = unet || starts_with(info.name, kUNet);
  }
  if (!unet || (sdxl ? sd1 || sd2 : sd1 == sd2))
    throw ModelError("not an original-layout SD 1.x / 2.x / SDXL checkpoint: expected model.diffusion_model.*, "
                     "first_stage_model.* and one of cond_stage_model.transformer.* (SD 1.x), "
                     "cond_stage_model.model.* (SD 2.x) or conditioner.embedders.{0,1}.* (SDXL); a diffusers "
                     "folder is given as the folder itself",
                     file.string());
  ck.family = sdxl ? CheckpointFamily::SDXL : sd1 ? CheckpointFamily::SD1 : CheckpointFamily::SD2;
  if (sdxl && !(t.has(std::string(kSdxlText2) + "token_embedding.weight") &&
                (t.has(std::string(kSdxlText) + "text_model.embeddings.token_embedding.weight") ||
                 t.has(std::string(kSdxlText) + "embeddings.token_embedding.weight"))))
    throw ModelError("an SDXL checkpoint needs both text encoders: conditioner.embedders.0.transformer.* (CLIP ViT-L) "
                     "and conditioner.embedders.1.model.* (OpenCLIP ViT-bigG); refiner checkpoints are not supported",
                     file.string());
  const bool have_config = !options.config_dir.empty();
  if (ck.family == CheckpointFamily::SD2 && options.prediction_type.empty() && !have_config)
    throw UsageError("an SD 2.x checkpoint: whether it predicts noise or v cannot be read from its weights. Set "
                     "prediction_type = \"v_prediction\" in [pipeline] (or --prediction-type v_prediction) for the "
                     "768x768 models (2.0-v, 2.1), \"epsilon\" for the 512x512 base models",
                     file.string());

  const UNetLayout unet_layout = read_unet_layout(t);
  const VaeLayout vae_layout = read_vae_layout(t);
  const bool sdxl_family = ck.family == CheckpointFamily::SDXL;
  const std::string clip_prefix = sdxl_family ? kSdxlText : kSd1Text;
  const int clip_layers = std::max(t.count(clip_prefix + "text_model.encoder.layers."), t.count(clip_prefix + "encoder.layers."));
  // The open_clip tower's stored layers (SD 2.x's text encoder, SDXL's second).
  const int open_clip_layers = t.count(std::string(sdxl_family ? kSdxlText2 : kSd2Text) + "transformer.resblocks.");
  const int text_layers = ck.family == CheckpointFamily::SD1 ? clip_layers : open_clip_layers;
  if (text_layers < (ck.family == CheckpointFamily::SD2 ? 2 : 1) || (sdxl_family && clip_layers < 1))
    throw ModelError("the text encoder has too few layers (" + std::to_string(text_layers) + ")", file.string());

  const bool v_prediction = options.prediction_type == "v_prediction";
  if (have_config) {
    const fs::path& d = options.config_dir;
    if (!fs::is_directory(d)) throw InputError("config: not a diffusers folder", d.string());
    ck.unet_config = read_config(d / "unet" / "config.json");
    ck.vae_config = read_config(d / "vae" / "config.json");
    ck.text_config = read_config(d / "text_encoder" / "config.json");
    if (sdxl_family) ck.text_config_2 = read_config(d / "text_encoder_2" / "config.json");
    ck.scheduler_config = read_config(d / "scheduler" / "scheduler_config.json");
    if (fs::is_directory(d / "tokenizer")) ck.tokenizer_dir = d / "tokenizer";
    if (sdxl_family && fs::is_directory(d / "tokenizer_2")) ck.tokenizer_2_dir = d / "tokenizer_2";
    ck.config_source = d.string();
  } else {
    ck.unet_config = infer_unet(t, unet_layout, ck.family, v_prediction);
    ck.vae_config = infer_vae(t, vae_layout, ck.family, v_prediction);
    ck.text_config = infer_text(t, ck.family, sdxl_family ? clip_layers : text_layers);
    if (sdxl_family) ck.text_config_2 = infer_text_2(t, open_clip_layers);
    ck.scheduler_config = sdxl_family ? sdxl_scheduler(options.prediction_type) : default_scheduler(options.prediction_type);
    ck.config_source = "inferred";
  }
  if (!options.prediction_type.empty()) ck.scheduler_config["prediction_type"] = options.prediction_type;
  if (ck.tokenizer_dir.empty()) {
    ck.tokenizer_dir = assets_dir() / "clip-tokenizer";
    if (ck.family == CheckpointFamily::SD2) ck.pad_token = "!";  // Stability's SD 2.x tokenizer pads with id 0
  }
  if (sdxl_family && ck.tokenizer_2_dir.empty()) {
    ck.tokenizer_2_dir = assets_dir() / "clip-tokenizer";
    ck.pad_token_2 = "!";  // SDXL's tokenizer_2 pads with id 0, as open_clip's
  }

  // Each tensor under its component's diffusers name; transforms are byte ranges and shapes.
  const auto table = checkpoint_keys(ck.family, unet_layout, vae_layout, text_layers);
  for (const auto& c : table) ck.tensors[c.component];
  for (const auto& info : ck.handle->tensors()) {
    const ComponentKeys* comp = nullptr;
    for (const auto& c : table)
      if (starts_with(info.name, c.prefix)) comp = &c;
    if (!comp) {
      ck.ignored.push_back(info.name);
      continue;
    }
    const std::string key = info.name.substr(comp->prefix.size());
    if (comp->component == "text_encoder_2" && key == "text_projection") {
      // open_clip's [width, projection] matrix: read as [projection, width] bytes, transposed on load.
      if (info.shape.size() != 2) throw ModelError("text_projection is not a matrix", file.string());
      TensorInfo renamed = info;
      renamed.name = "text_projection.weight";
      renamed.shape = {info.shape[1], info.shape[0]};
      ck.tensors[comp->component].push_back(renamed);
      ck.text_projection_transposed = true;
      continue;
    }
    const bool skip = std::any_of(comp->ignored.begin(), comp->ignored.end(), [&](const std::string& p) {
      return key == p || (p.back() == '.' && starts_with(key, p));
    });
    if (skip) {
      ck.ignored.push_back(info.name);
      continue;
    }
    KeyRule::Transform transform;
    const auto names = to_diffusers(comp->rules, key, &transform);
    auto& out = ck.tensors[comp->component];
    if (transform == KeyRule::Transform::SplitQkv) {
      if (info.shape.empty() || info.shape[0] % 3 != 0)
        throw ModelError("in_proj tensor '" + info.name + "' does not split into q, k and v", file.string());
      const uint64_t third = (info.end - info.begin) / 3;
      for (size_t i = 0; i < 3; ++i) {
        TensorInfo part = info;
        part.name = names[i];
        part.shape[0] /= 3;
        part.begin = info.begin + i * third;
        part.end = part.begin + third;
        out.push_back(part);
      }
      continue;
    }
    TensorInfo renamed = info;
    renamed.name = names[0];
    if (transform == KeyRule::Transform::Squeeze1x1 && info.shape.size() == 4 && info.shape[2] == 1 && info.shape[3] == 1)
      renamed.shape.resize(2);
    out.push_back(renamed);
  }
  return ck;
}

}  // namespace diffbench
