// The original-layout -> diffusers key table (pipeline/single_file.hpp). The names follow
// ldm.modules.diffusionmodules.openaimodel.UNetModel (input_blocks / middle_block / output_blocks),
// ldm.modules.diffusionmodules.model.{Encoder,Decoder} (down / mid / up, reversed in the decoder), and
// open_clip.transformer.TextTransformer (resblocks, in_proj) on the original side; diffusers'
// UNet2DConditionModel and AutoencoderKL and transformers' CLIPTextModel on the other.
#include "diffbench/pipeline/single_file.hpp"

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

using Transform = KeyRule::Transform;

std::string str(int i) { return std::to_string(i); }

// ldm's ResBlock inside a UNet block.
void unet_resnet(std::vector<KeyRule>& out, const std::string& original, const std::string& diffusers) {
  static const std::pair<const char*, const char*> kInner[] = {{"in_layers.0.", "norm1."},  {"in_layers.2.", "conv1."},
                                                               {"emb_layers.1.", "time_emb_proj."},
                                                               {"out_layers.0.", "norm2."}, {"out_layers.3.", "conv2."},
                                                               {"skip_connection.", "conv_shortcut."}};
  for (const auto& [o, d] : kInner) out.push_back({original + o, diffusers + d});
}

std::vector<KeyRule> unet_rules(const UNetLayout& u) {
  std::vector<KeyRule> r = {{"time_embed.0.", "time_embedding.linear_1."},
                            {"time_embed.2.", "time_embedding.linear_2."},
                            // SDXL's added conditioning (sgm's label_emb: Sequential(Sequential(
                            // Linear, SiLU, Linear)))
                            {"label_emb.0.0.", "add_embedding.linear_1."},
                            {"label_emb.0.2.", "add_embedding.linear_2."},
                            {"input_blocks.0.0.", "conv_in."},
                            {"out.0.", "conv_norm_out."},
                            {"out.2.", "conv_out."}};
  const int per = u.layers_per_block + 1;  // input_blocks per down block: its resnets and a downsampler
  for (int b = 0; b < u.blocks; ++b) {
    const std::string down = "down_blocks." + str(b) + ".";
    for (int j = 0; j < u.layers_per_block; ++j) {
      const std::string in = "input_blocks." + str(b * per + j + 1) + ".";
      unet_resnet(r, in + "0.", down + "resnets." + str(j) + ".");
      if (u.attention[b]) r.push_back({in + "1.", down + "attentions." + str(j) + "."});
    }
    if (b + 1 < u.blocks) r.push_back({"input_blocks." + str((b + 1) * per) + ".0.op.", down + "downsamplers.0.conv."});

    const std::string up = "up_blocks." + str(b) + ".";
    const bool up_attention = u.attention[u.blocks - 1 - b];
    for (int j = 0; j < per; ++j) {
      const std::string out = "output_blocks." + str(b * per + j) + ".";
      unet_resnet(r, out + "0.", up + "resnets." + str(j) + ".");
      if (up_attention) r.push_back({out + "1.", up + "attentions." + str(j) + "."});
    }
    if (b + 1 < u.blocks)
      r.push_back({"output_blocks." + str(b * per + per - 1) + "." + (up_attention ? "2" : "1") + ".conv.",
                   up + "upsamplers.0.conv."});
  }
  unet_resnet(r, "middle_block.0.", "mid_block.resnets.0.");
  r.push_back({"middle_block.1.", "mid_block.attentions.0."});
  unet_resnet(r, "middle_block.2.", "mid_block.resnets.1.");
  return r;
}

std::vector<KeyRule> vae_rules(const VaeLayout& v) {
  std::vector<KeyRule> r;
  auto resnet = [&](const std::string& original, const std::string& diffusers) {
    r.push_back({original, diffusers});
    r.push_back({original + "nin_shortcut.", diffusers + "conv_shortcut."});
  };
  for (const std::string side : {"encoder.", "decoder."}) {
    r.push_back({side + "norm_out.", side + "conv_norm_out."});
    resnet(side + "mid.block_1.", side + "mid_block.resnets.0.");
    resnet(side + "mid.block_2.", side + "mid_block.resnets.1.");
    const std::string attn = side + "mid.attn_1.", to = side + "mid_block.attentions.0.";
    r.push_back({attn + "norm.", to + "group_norm."});
    r.push_back({attn + "q.", to + "to_q.", Transform::Squeeze1x1});
    r.push_back({attn + "k.", to + "to_k.", Transform::Squeeze1x1});
    r.push_back({attn + "v.", to + "to_v.", Transform::Squeeze1x1});
    r.push_back({attn + "proj_out.", to + "to_out.0.", Transform::Squeeze1x1});
  }
  for (int i = 0; i < v.blocks; ++i) {
    const std::string down = "encoder.down." + str(i) + ".", to = "encoder.down_blocks." + str(i) + ".";
    for (int j = 0; j < v.layers_per_block; ++j) resnet(down + "block." + str(j) + ".", to + "resnets." + str(j) + ".");
    if (i + 1 < v.blocks) r.push_back({down + "downsample.conv.", to + "downsamplers.0.conv."});
    // The decoder's up blocks are numbered from the bottom in ldm, from the top in diffusers.
    const std::string up = "decoder.up." + str(v.blocks - 1 - i) + ".", up_to = "decoder.up_blocks." + str(i) + ".";
    for (int j = 0; j <= v.layers_per_block; ++j) resnet(up + "block." + str(j) + ".", up_to + "resnets." + str(j) + ".");
    if (i + 1 < v.blocks) r.push_back({up + "upsample.conv.", up_to + "upsamplers.0.conv."});
  }
  return r;
}

// open_clip's text tower as transformers' CLIPTextModel (the engine's names, without "text_model.").
std::vector<KeyRule> open_clip_text_rules(int layers) {
  std::vector<KeyRule> r = {{"token_embedding.", "embeddings.token_embedding."},
                            {"positional_embedding", "embeddings.position_embedding.weight"},
                            {"ln_final.", "final_layer_norm."}};
  for (int i = 0; i < layers; ++i) {
    const std::string o = "transformer.resblocks." + str(i) + ".", d = "encoder.layers." + str(i) + ".";
    r.push_back({o + "ln_1.", d + "layer_norm1."});
    r.push_back({o + "ln_2.", d + "layer_norm2."});
    r.push_back({o + "attn.in_proj_", d + "self_attn.", Transform::SplitQkv});
    r.push_back({o + "attn.out_proj.", d + "self_attn.out_proj."});
    r.push_back({o + "mlp.c_fc.", d + "mlp.fc1."});
    r.push_back({o + "mlp.c_proj.", d + "mlp.fc2."});
  }
  return r;
}

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }

}  // namespace

std::string to_string(CheckpointFamily family) {
  switch (family) {
    case CheckpointFamily::SD1: return "SD 1.x";
    case CheckpointFamily::SD2: return "SD 2.x";
    case CheckpointFamily::SDXL: return "SDXL";
  }
  return "?";
}

std::vector<ComponentKeys> checkpoint_keys(CheckpointFamily family, const UNetLayout& unet, const VaeLayout& vae,
                                           int text_layers) {
  std::vector<ComponentKeys> out;
  out.push_back({"unet", "model.diffusion_model.", unet_rules(unet), {}});
  out.push_back({"vae", "first_stage_model.", vae_rules(vae), {"loss."}});
  if (family == CheckpointFamily::SDXL) {
    // sgm's GeneralConditioner: embedders.0 is FrozenCLIPEmbedder (transformers' CLIPTextModel under
    // transformer.), embedders.1 FrozenOpenCLIPEmbedder2 (open_clip's text tower, all its layers:
    // the pooled output comes from the last). Its text_projection is handled by the loader (a
    // transposed matrix in Stability's files, "text_projection.weight" as diffusers' script writes).
    out.push_back({"text_encoder", "conditioner.embedders.0.transformer.", {}, {}});
    std::vector<KeyRule> rules = open_clip_text_rules(text_layers);
    for (auto& r : rules) r.diffusers = "text_model." + r.diffusers;  // CLIPTextModelWithProjection's names
    out.push_back({"text_encoder_2", "conditioner.embedders.1.model.", rules, {"logit_scale", "attn_mask", "visual."}});
    return out;
  }
  if (family == CheckpointFamily::SD1) {
    // transformers' CLIPTextModel as saved inside the checkpoint: its own names, with or without
    // "text_model." (which the text encoder's LoadOptions strip, as for a diffusers folder).
    out.push_back({"text_encoder", "cond_stage_model.transformer.", {}, {}});
  } else {
    // Stability's FrozenOpenCLIPEmbedder(layer="penultimate"): the last resblock never runs.
    const int used = text_layers - 1;
    out.push_back({"text_encoder", "cond_stage_model.model.", open_clip_text_rules(used),
                   {"transformer.resblocks." + str(used) + ".", "text_projection", "logit_scale", "attn_mask", "visual."}});
  }
  return out;
}

std::vector<std::string> to_diffusers(const std::vector<KeyRule>& rules, const std::string& key, Transform* transform) {
  const KeyRule* best = nullptr;
  for (const auto& r : rules)
    if (starts_with(key, r.original) && (!best || r.original.size() > best->original.size())) best = &r;
  if (transform) *transform = best ? best->transform : Transform::None;
  if (!best) return {key};
  const std::string rest = key.substr(best->original.size());
  if (best->transform != Transform::SplitQkv) return {best->diffusers + rest};
  // in_proj_weight / in_proj_bias -> {q,k,v}_proj.weight / .bias
  return {best->diffusers + "q_proj." + rest, best->diffusers + "k_proj." + rest, best->diffusers + "v_proj." + rest};
}

std::string to_original(const std::vector<KeyRule>& rules, const std::string& key, Transform* transform) {
  const KeyRule* best = nullptr;
  std::string rest;
  for (const auto& r : rules) {
    if (!starts_with(key, r.diffusers) || (best && r.diffusers.size() <= best->diffusers.size())) continue;
    std::string tail = key.substr(r.diffusers.size());
    if (r.transform == Transform::SplitQkv) {
      if (tail.size() < 7 || tail.compare(1, 6, "_proj.") != 0 || std::string("qkv").find(tail[0]) == std::string::npos) continue;
      tail = tail.substr(7);
    }
    best = &r;
    rest = tail;
  }
  if (transform) *transform = best ? best->transform : Transform::None;
  return best ? best->original + rest : key;
}

}  // namespace diffbench
