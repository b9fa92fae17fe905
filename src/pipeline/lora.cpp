// LoRA fusion at load time (pipeline/lora.hpp).
#include "diffbench/pipeline/lora.hpp"

#include <map>
#include <optional>

#include <c10/core/InferenceMode.h>
#include <torch/nn/module.h>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/models/unet.hpp"

namespace diffbench {

namespace {

bool starts_with(const std::string& s, const std::string& p) { return s.compare(0, p.size(), p) == 0; }
bool ends_with(const std::string& s, const std::string& p) {
  return s.size() >= p.size() && s.compare(s.size() - p.size(), p.size(), p) == 0;
}

// One low-rank pair: the layer it changes (the component and the module's name as written in the
// file, still to be resolved) and its tensors.
struct Pair {
  std::string component, module;
  bool flat = false;  // kohya: the module name with '.' flattened to '_'
  std::string down, up, alpha;  // the file's keys
};

std::string join_some(const std::vector<std::string>& names, size_t limit = 5) {
  std::string out;
  for (size_t i = 0; i < names.size() && i < limit; ++i) out += (i ? ", " : "") + names[i];
  if (names.size() > limit) out += ", … (" + std::to_string(names.size()) + " in all)";
  return out;
}

// kohya: lora_unet_<flat>.{lora_down.weight, lora_up.weight, alpha} (lora_te_ for SD's text encoder,
// lora_te1_ / lora_te2_ for SDXL's two); PEFT / diffusers: <component>.<module>.{lora_A.weight,
// lora_B.weight} (also diffusers' older .lora.down/.lora.up).
bool classify(const std::string& key, Pair& p, std::string& role, std::string& format) {
  static const std::pair<const char*, const char*> kKohya[] = {{"lora_unet_", "unet"},
                                                               {"lora_te_", "text_encoder"},
                                                               {"lora_te1_", "text_encoder"},
                                                               {"lora_te2_", "text_encoder_2"}};
  static const std::pair<const char*, const char*> kRoles[] = {{".lora_down.weight", "down"}, {".lora_up.weight", "up"},
                                                               {".lora_A.weight", "down"},   {".lora_B.weight", "up"},
                                                               {".lora.down.weight", "down"}, {".lora.up.weight", "up"},
                                                               {".alpha", "alpha"}};
  std::string stem;
  for (const auto& [suffix, r] : kRoles)
    if (ends_with(key, suffix)) {
      stem = key.substr(0, key.size() - std::string(suffix).size());
      role = r;
      break;
    }
  if (stem.empty()) return false;
  for (const auto& [prefix, component] : kKohya)
    if (starts_with(stem, prefix)) {
      p = {component, stem.substr(std::string(prefix).size()), true, {}, {}, {}};
      format = "kohya";
      return true;
    }
  for (const char* component : {"unet", "text_encoder", "text_encoder_2"})
    if (starts_with(stem, std::string(component) + ".")) {
      p = {component, stem.substr(std::string(component).size() + 1), false, {}, {}, {}};
      format = "peft";
      return true;
    }
  return false;
}

std::string flatten(std::string s) {
  std::replace(s.begin(), s.end(), '.', '_');
  return s;
}

// Names a LoRA may use for each weight of a component -> the parameter itself.
struct Layers {
  std::map<std::string, at::Tensor> by_module;  // "down_blocks.0....to_q" -> its weight
  std::map<std::string, std::string> by_flat;   // kohya's flattened names -> module name

  bool fused_already = false;  // a reused component: its LoRA layers are skipped

  Layers(const LoraComponent& c) {
    fused_already = c.module == nullptr;
    if (fused_already) return;
    for (auto& item : c.module->named_parameters(true)) {
      if (!ends_with(item.key(), ".weight")) continue;
      const std::string module = item.key().substr(0, item.key().size() - 7);
      by_module[module] = item.value();
      by_flat[flatten(module)] = module;
      if (!c.original_rules.empty()) {
        const std::string original = to_original(c.original_rules, item.key());
        if (original != item.key()) by_flat[flatten(original.substr(0, original.size() - 7))] = module;
      }
    }
  }
  std::optional<std::string> resolve(const Pair& p) const {
    auto find = [&](const std::string& name) -> std::optional<std::string> {
      if (!p.flat) return by_module.count(name) ? std::optional<std::string>(name) : std::nullopt;
      auto it = by_flat.find(name);
      return it == by_flat.end() ? std::nullopt : std::optional<std::string>(it->second);
    };
    if (auto found = find(p.module)) return found;
    // The engine's CLIPTextModel has no "text_model." level (CLIPTextModelWithProjection keeps it).
    if (p.component != "unet")
      for (const char* prefix : {"text_model.", "text_model_"})
        if (starts_with(p.module, prefix)) return find(p.module.substr(std::string(prefix).size()));
    return std::nullopt;
  }
};

// diffusers' save_lora_weights(..., unet_lora_adapter_metadata=LoraConfig.to_dict()) writes
// {"unet.r": 4, "unet.lora_alpha": 8, ...} as JSON under "lora_adapter_metadata".
std::map<std::string, double> metadata_alphas(const SafetensorsFile& f) {
  std::map<std::string, double> out;
  const auto& m = f.metadata();
  if (!m.is_object() || !m.contains("lora_adapter_metadata") || !m["lora_adapter_metadata"].is_string()) return out;
  nlohmann::json meta;
  try {
    meta = nlohmann::json::parse(m["lora_adapter_metadata"].get<std::string>());
  } catch (const std::exception&) {
    throw InputError("lora_adapter_metadata is not valid JSON", f.path().string());
  }
  for (const char* component : {"unet", "text_encoder", "text_encoder_2"}) {
    const std::string key = std::string(component) + ".lora_alpha";
    if (meta.contains(key) && meta[key].is_number()) out[component] = meta[key].get<double>();
    const std::string patterns = std::string(component) + ".alpha_pattern";
    if (meta.contains(patterns) && meta[patterns].is_object() && !meta[patterns].empty())
      throw ModelError("per-layer alpha_pattern in lora_adapter_metadata is not supported", f.path().string());
  }
  return out;
}

}  // namespace

std::vector<KeyRule> unet_original_rules(const UNetConfig& c) {
  UNetLayout layout;
  layout.blocks = static_cast<int>(c.down_block_types.size());
  layout.layers_per_block = c.layers_per_block.empty() ? 2 : static_cast<int>(c.layers_per_block[0]);
  for (const auto& t : c.down_block_types) layout.attention.push_back(t == "CrossAttnDownBlock2D");
  for (const auto& k : checkpoint_keys(CheckpointFamily::SD1, layout, VaeLayout{}, 1))
    if (k.component == "unet") return k.rules;
  return {};
}

nlohmann::json fuse_loras(const std::vector<LoraSpec>& loras, const std::vector<LoraComponent>& components) {
  nlohmann::json report = nlohmann::json::array();
  std::map<std::string, Layers> layers;
  for (const auto& c : components) layers.emplace(c.name, Layers(c));
  c10::InferenceMode guard;
  for (const auto& lora : loras) {
    const auto file = SafetensorsFile::open(lora.file);
    const std::string where = lora.file.string();
    std::map<std::string, Pair> pairs;  // by "component/module"
    std::vector<std::string> unmatched;
    std::string format;
    for (const auto& t : file->tensors()) {
      Pair p;
      std::string role, f;
      if (!classify(t.name, p, role, f)) {
        unmatched.push_back(t.name);
        continue;
      }
      if (!format.empty() && format != f) throw ModelError("the file mixes kohya and PEFT key names", where);
      format = f;
      Pair& slot = pairs.emplace(p.component + "/" + p.module, p).first->second;
      (role == "down" ? slot.down : role == "up" ? slot.up : slot.alpha) = t.name;
    }
    const auto alphas = metadata_alphas(*file);
    struct Delta { at::Tensor weight; std::string down, up, alpha; std::string component; };
    std::vector<Delta> deltas;
    // The pairs of reused components, which hold them already (the load that made them checked them).
    std::map<std::string, int> fused_already;
    for (const auto& [id, p] : pairs) {
      auto it = layers.find(p.component);
      if (it != layers.end() && it->second.fused_already) {
        if (!p.down.empty() && !p.up.empty()) ++fused_already[p.component];
        continue;
      }
      const std::optional<std::string> module = it == layers.end() ? std::nullopt : it->second.resolve(p);
      if (!module || p.down.empty() || p.up.empty()) {
        for (const auto* k : {&p.down, &p.up, &p.alpha})
          if (!k->empty()) unmatched.push_back(*k);
        continue;
      }
      deltas.push_back({it->second.by_module.at(*module), p.down, p.up, p.alpha, p.component});
    }
    if (!unmatched.empty()) {
      std::sort(unmatched.begin(), unmatched.end());
      throw ModelError("LoRA keys that match no layer of the model: " + join_some(unmatched), where);
    }
    if (deltas.empty() && fused_already.empty()) throw ModelError("no LoRA weights in the file", where);

    nlohmann::json counts = nlohmann::json::object();
    for (const auto& [component, n] : fused_already) counts[component] = n;
    for (const auto& d : deltas) {
      at::Tensor down = file->get(d.down, at::kFloat).to(d.weight.device());
      at::Tensor up = file->get(d.up, at::kFloat).to(d.weight.device());
      const int64_t rank = down.size(0);
      const at::Tensor down2 = down.flatten(1), up2 = up.flatten(1);
      if (up2.size(1) != rank || up.size(0) != d.weight.size(0) || down2.size(1) * up.size(0) != d.weight.numel())
        throw ModelError("LoRA pair " + d.down + " / " + d.up + " does not fit its layer (" + std::to_string(d.weight.numel()) +
                             " weights)",
                         where);
      double alpha = static_cast<double>(rank);
      if (!d.alpha.empty()) alpha = file->get(d.alpha, at::kDouble).item<double>();
      else if (auto a = alphas.find(d.component); a != alphas.end()) alpha = a->second;
      const double k = lora.scale * alpha / static_cast<double>(rank);
      at::Tensor w = d.weight;
      const at::Tensor fused = w.to(at::kFloat) + at::matmul(up2, down2).view(w.sizes()) * k;
      w.copy_(fused);
      counts[d.component] = counts.value(d.component, 0) + 1;
    }
    report.push_back({{"file", where}, {"scale", lora.scale}, {"format", format}, {"layers", counts}});
  }
  return report;
}

}  // namespace diffbench
