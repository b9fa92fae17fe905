// Test data for single-file checkpoints, made from the tiny-sd fixture with diffbench's own key table
// run backwards (to_original): the original-layout files, and an SD 2.x-shaped variant of tiny-sd as a
// diffusers folder. tests/pipeline/data/tiny-sd-original.tensors.json (tools/refs/make_single_file_refs.py)
// holds what diffusers' conversion script makes of the same weights, to check these files against.
#pragma once

#include <filesystem>
#include <fstream>
#include <map>
#include <string>

#include <nlohmann/json.hpp>

#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/pipeline/single_file.hpp"

namespace diffbench::test {

namespace sf_detail {
inline void write_json(const std::filesystem::path& file, const nlohmann::json& j) {
  std::filesystem::create_directories(file.parent_path());
  std::ofstream(file) << j.dump(2);
}
}  // namespace sf_detail

// The original-layout tensors of a diffusers folder (SD 1.x, SD 2.x or SDXL family). The SD 2.x text encoder
// is written as open_clip's tower with its q/k/v joined; `extra_text_layer` appends one more resblock
// (a copy of the last), as Stability's files hold the layer the penultimate convention skips.
inline StateDict original_layout(const std::filesystem::path& folder, CheckpointFamily family, bool extra_text_layer) {
  const auto unet_cfg = read_json_file(folder / "unet/config.json");
  const auto vae_cfg = read_json_file(folder / "vae/config.json");
  const auto text_cfg = read_json_file(folder / "text_encoder/config.json");
  UNetLayout u;
  u.blocks = static_cast<int>(unet_cfg["down_block_types"].size());
  u.layers_per_block = unet_cfg["layers_per_block"].get<int>();
  for (const auto& t : unet_cfg["down_block_types"]) u.attention.push_back(t == "CrossAttnDownBlock2D");
  VaeLayout v{static_cast<int>(vae_cfg["block_out_channels"].size()), vae_cfg["layers_per_block"].get<int>()};
  int text_layers = text_cfg["num_hidden_layers"].get<int>() + (family == CheckpointFamily::SD2 ? 1 : 0);
  if (family == CheckpointFamily::SDXL)  // the open_clip tower is SDXL's second encoder
    text_layers = read_json_file(folder / "text_encoder_2/config.json")["num_hidden_layers"].get<int>();
  const auto table = checkpoint_keys(family, u, v, text_layers);
  const std::map<std::string, std::string> files = {{"unet", "unet/diffusion_pytorch_model.safetensors"},
                                                    {"vae", "vae/diffusion_pytorch_model.safetensors"},
                                                    {"text_encoder", "text_encoder/model.safetensors"},
                                                    {"text_encoder_2", "text_encoder_2/model.safetensors"}};
  StateDict out;
  for (const auto& c : table) {
    std::map<std::string, std::array<at::Tensor, 3>> qkv;  // joined in_proj keys -> q, k, v
    for (const auto& [name, tensor] : load_safetensors(folder / files.at(c.component))) {
      KeyRule::Transform transform;
      const std::string key = c.prefix + to_original(c.rules, name, &transform);
      if (transform == KeyRule::Transform::SplitQkv) {
        const size_t which = std::string("qkv").find(name[name.rfind("_proj.") - 1]);
        qkv[key][which] = tensor;
      } else if (transform == KeyRule::Transform::Squeeze1x1 && tensor.dim() == 2) {
        out[key] = tensor.reshape({tensor.size(0), tensor.size(1), 1, 1});
      } else {
        out[key] = tensor;
      }
    }
    for (const auto& [key, parts] : qkv) out[key] = at::cat({parts[0], parts[1], parts[2]}, 0);
  }
  if (family == CheckpointFamily::SD2 && extra_text_layer) {
    const std::string last = "cond_stage_model.model.transformer.resblocks." + std::to_string(text_layers - 2) + ".";
    const std::string extra = "cond_stage_model.model.transformer.resblocks." + std::to_string(text_layers - 1) + ".";
    StateDict added;
    for (const auto& [k, t] : out)
      if (k.rfind(last, 0) == 0) added[extra + k.substr(last.size())] = t.clone() * 3;  // any values: never used
    out.insert(added.begin(), added.end());
  }
  return out;
}

// tiny-sd made SD 2.x-shaped, as a diffusers folder: linear proj_in/proj_out in the UNet
// (use_linear_projection), GELU in the text encoder, a tokenizer padding with "!". The same as the
// "sd2" derivation of tools/refs/make_single_file_refs.py.
inline void write_sd2_folder(const std::filesystem::path& tiny_sd, const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  fs::create_directories(out);
  fs::copy(tiny_sd / "model_index.json", out / "model_index.json");
  for (const char* dir : {"vae", "scheduler", "tokenizer"}) fs::copy(tiny_sd / dir, out / dir, fs::copy_options::recursive);
  for (const auto& e : fs::recursive_directory_iterator(out))
    fs::permissions(e.path(), fs::perms::owner_write, fs::perm_options::add);
  auto tok = read_json_file(out / "tokenizer/tokenizer_config.json");
  tok["pad_token"] = "!";
  sf_detail::write_json(out / "tokenizer/tokenizer_config.json", tok);
  auto text = read_json_file(tiny_sd / "text_encoder/config.json");
  text["hidden_act"] = "gelu";
  text["pad_token_id"] = 0;
  sf_detail::write_json(out / "text_encoder/config.json", text);
  fs::copy(tiny_sd / "text_encoder/model.safetensors", out / "text_encoder/model.safetensors");
  auto unet = read_json_file(tiny_sd / "unet/config.json");
  unet["use_linear_projection"] = true;
  sf_detail::write_json(out / "unet/config.json", unet);
  StateDict weights = load_safetensors(tiny_sd / "unet/diffusion_pytorch_model.safetensors");
  for (auto& [k, t] : weights)
    if ((k.find(".proj_in.weight") != std::string::npos || k.find(".proj_out.weight") != std::string::npos) && t.dim() == 4)
      t = t.reshape({t.size(0), t.size(1)}).contiguous();
  save_safetensors(out / "unet/diffusion_pytorch_model.safetensors", weights);
}

// The tiny SDXL pipeline with SDXL base's exact UNet block structure, as a diffusers folder: a copy
// of tests/pipeline/data/tiny-sdxl whose UNet is tests/pipeline/data/tiny-sdxl-l2-unet (both made with
// diffusers; tools/refs/make_sdxl_single_file_refs.py says why).
inline void write_sdxl_l2_folder(const std::filesystem::path& data, const std::filesystem::path& out) {
  namespace fs = std::filesystem;
  fs::copy(data / "tiny-sdxl", out, fs::copy_options::recursive);
  fs::remove_all(out / "unet");
  fs::copy(data / "tiny-sdxl-l2-unet", out / "unet", fs::copy_options::recursive);
}

}  // namespace diffbench::test
