// open_clip's CLIP (ViT image tower + causal text transformer) in open_clip's own key names:
// `visual.conv1.weight`, `visual.transformer.resblocks.N.attn.in_proj_weight`, `visual.proj`,
// `transformer.resblocks.N.mlp.c_fc.weight`, `token_embedding.weight`, `positional_embedding`,
// `ln_final.*`, `text_projection`, `logit_scale`.
//
// Supported: the standard ResidualAttentionBlock (nn.MultiheadAttention, optional layer scale
// `ls_1/ls_2.gamma`), GELU or QuickGELU, `no_ln_pre`, `final_ln_after_pool`, vision pooling
// tok/avg, text pooling argmax/eos/first/last, `proj_bias`, `no_causal_mask`, `init_logit_bias`.
// Configs that need other code (custom_text / HF or timm towers, attentional pooling, CoCa's
// embed_cls, custom attention blocks, ModifiedResNet) are refused with an InputError.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include <torch/nn/module.h>
#include <torch/nn/modules/container/modulelist.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>
#include <torch/nn/pimpl.h>

#include "diffbench/io/json_config.hpp"
#include "diffbench/models/blocks/linear.hpp"
#include "diffbench/models/clip_common.hpp"

namespace diffbench {

// open_clip's CLIPVisionCfg (the ViT fields); defaults are open_clip's.
struct OpenClipVisionConfig {
  int64_t image_size = 224;
  int64_t patch_size = 16;
  int64_t width = 768;
  int64_t layers = 12;
  int64_t head_width = 64;
  double mlp_ratio = 4.0;
  std::optional<double> ls_init_value;
  bool no_ln_pre = false;
  bool final_ln_after_pool = false;
  std::string pool_type = "tok";  // tok | avg
  double layer_norm_eps = 1e-5;   // norm_kwargs.eps

  int64_t heads() const { return width / head_width; }
  int64_t mlp_width() const { return static_cast<int64_t>(static_cast<double>(width) * mlp_ratio); }
};

// open_clip's CLIPTextCfg (the built-in TextTransformer fields); defaults are open_clip's.
struct OpenClipTextConfig {
  int64_t context_length = 77;
  int64_t vocab_size = 49408;
  int64_t width = 512;
  int64_t heads = 8;
  int64_t layers = 12;
  double mlp_ratio = 4.0;
  std::optional<double> ls_init_value;
  bool no_causal_mask = false;
  std::string pool_type = "argmax";  // argmax | eos | first | last
  int64_t eos_id = 2;                // only for pool_type "eos"
  int64_t pad_id = 0;
  bool proj_bias = false;
  std::string proj_type = "linear";  // linear | none
  double layer_norm_eps = 1e-5;      // norm_kwargs.eps

  int64_t mlp_width() const { return static_cast<int64_t>(static_cast<double>(width) * mlp_ratio); }
};

struct OpenClipConfig {
  int64_t embed_dim = 512;
  bool quick_gelu = false;
  std::optional<double> init_logit_bias;
  OpenClipVisionConfig vision_cfg;
  OpenClipTextConfig text_cfg;

  // Accepts open_clip_config.json (with "model_cfg") or a bare model config (model_configs/*.json).
  static OpenClipConfig from_json(const JsonConfig& json);
  ClipActivation activation() const { return quick_gelu ? ClipActivation::QuickGelu : ClipActivation::Gelu; }
};

// nn.MultiheadAttention's parameters (packed in_proj) as open_clip uses them, batch first.
class OpenClipAttentionImpl : public torch::nn::Module {
 public:
  OpenClipAttentionImpl(int64_t width, int64_t heads);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& additive_mask = {});  // [B, L, D]

 private:
  int64_t heads_;
  at::Tensor in_proj_weight, in_proj_bias;  // [3D, D], [3D]
  torch::nn::Linear out_proj{nullptr};
};
TORCH_MODULE(OpenClipAttention);

// LayerScale: x * gamma.
class OpenClipLayerScaleImpl : public torch::nn::Module {
 public:
  OpenClipLayerScaleImpl(int64_t width, double init_value);
  at::Tensor forward(const at::Tensor& x) { return x * gamma; }

 private:
  at::Tensor gamma;
};
TORCH_MODULE(OpenClipLayerScale);

// The block's `mlp` Sequential: c_fc -> gelu -> c_proj.
class OpenClipMlpImpl : public torch::nn::Module {
 public:
  OpenClipMlpImpl(int64_t width, int64_t mlp_width, ClipActivation act);
  at::Tensor forward(const at::Tensor& x) { return linear(c_proj, apply_activation(linear(c_fc, x), act_)); }

 private:
  ClipActivation act_;
  torch::nn::Linear c_fc{nullptr}, c_proj{nullptr};
};
TORCH_MODULE(OpenClipMlp);

// ResidualAttentionBlock: x + ls_1(attn(ln_1(x))), then x + ls_2(mlp(ln_2(x))).
class OpenClipResidualBlockImpl : public torch::nn::Module {
 public:
  OpenClipResidualBlockImpl(int64_t width, int64_t heads, int64_t mlp_width, std::optional<double> ls_init_value,
                            ClipActivation act, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& additive_mask = {});

 private:
  torch::nn::LayerNorm ln_1{nullptr};
  OpenClipAttention attn{nullptr};
  OpenClipLayerScale ls_1{nullptr};  // null when ls_init_value is unset (Python: nn.Identity)
  torch::nn::LayerNorm ln_2{nullptr};
  OpenClipMlp mlp{nullptr};
  OpenClipLayerScale ls_2{nullptr};
};
TORCH_MODULE(OpenClipResidualBlock);

// Transformer: `resblocks.N`.
class OpenClipTransformerImpl : public torch::nn::Module {
 public:
  OpenClipTransformerImpl(int64_t width, int64_t layers, int64_t heads, int64_t mlp_width,
                          std::optional<double> ls_init_value, ClipActivation act, double eps);
  at::Tensor forward(const at::Tensor& x, const at::Tensor& additive_mask = {});

 private:
  torch::nn::ModuleList resblocks{nullptr};
};
TORCH_MODULE(OpenClipTransformer);

// VisionTransformer (`visual.`): conv1 patches, class token, positions, ln_pre, blocks, ln_post, proj.
class OpenClipVisionTransformerImpl : public torch::nn::Module {
 public:
  OpenClipVisionTransformerImpl(const OpenClipVisionConfig& config, int64_t embed_dim, ClipActivation act);
  at::Tensor forward(const at::Tensor& pixel_values);  // [B, 3, S, S] -> [B, embed_dim]

 private:
  OpenClipVisionConfig config_;
  torch::nn::Conv2d conv1{nullptr};
  at::Tensor class_embedding, positional_embedding;
  torch::nn::LayerNorm ln_pre{nullptr};  // null with no_ln_pre
  OpenClipTransformer transformer{nullptr};
  torch::nn::LayerNorm ln_post{nullptr};
  at::Tensor proj;  // [width, embed_dim]
};
TORCH_MODULE(OpenClipVisionTransformer);

// open_clip.model.CLIP: the text tower's modules sit at the top level, the image tower under `visual`.
class OpenClipModelImpl : public torch::nn::Module {
 public:
  explicit OpenClipModelImpl(const OpenClipConfig& config);

  // encode_image(normalize=False): [B, 3, S, S] -> [B, embed_dim].
  at::Tensor encode_image(const at::Tensor& pixel_values);
  // encode_text(normalize=False): input_ids [B, L] (L <= context_length; open_clip pads with 0) -> [B, embed_dim].
  at::Tensor encode_text(const at::Tensor& input_ids);

  const OpenClipConfig& config() const { return config_; }

 private:
  OpenClipConfig config_;
  OpenClipVisionTransformer visual{nullptr};
  OpenClipTransformer transformer{nullptr};
  torch::nn::Embedding token_embedding{nullptr};
  at::Tensor positional_embedding;  // [context_length, width]
  torch::nn::LayerNorm ln_final{nullptr};
  at::Tensor text_projection;                            // [width, embed_dim] (proj_bias false)
  torch::nn::Linear text_projection_linear{nullptr};     // registered as `text_projection` when proj_bias
  at::Tensor logit_scale, logit_bias;
};
TORCH_MODULE(OpenClipModel);

}  // namespace diffbench
