#include "diffbench/eval/protocol.hpp"

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/hub_cache.hpp"

namespace diffbench {

namespace fs = std::filesystem;

const std::vector<std::string>& default_clip_ids() {
  static const std::vector<std::string> ids = {"laion/CLIP-ViT-g-14-laion2B-s34B-b88K",
                                               "laion/CLIP-ViT-H-14-laion2B-s32B-b79K",
                                               "openai/clip-vit-large-patch14"};
  return ids;
}

nlohmann::json ScorerChoice::to_json() const {
  nlohmann::json j = {{"folder", folder.string()}, {"default", is_default}};
  if (!id.empty()) {
    j["id"] = id;
    j["commit"] = commit;
  }
  return j;
}

ScorerChoice resolve_scorer(const std::string& value) {
  ScorerChoice c;
  if (value.empty()) {
    for (const auto& id : default_clip_ids()) {
      if (!hub_model_cached(id)) continue;
      const HubModel m = resolve_hub_model(id);
      return ScorerChoice{m.folder, m.repo_id, m.commit, true};
    }
    std::string ids;
    for (const auto& id : default_clip_ids()) ids += "\n  " + id;
    throw InputError("no --clip given and none of the default CLIP scorers is in the local Hugging Face cache " +
                         hub_cache_dir().string() + ":" + ids + "\ndownload the first with: hf download " +
                         default_clip_ids()[0] + " open_clip_config.json open_clip_model.safetensors"
                         "\nor pass --clip DIR (a transformers CLIPModel or open_clip folder) or --clip ORG/NAME",
                     "--clip");
  }
  if (value == "demo" || fs::exists(value) || !looks_like_repo_id(value)) {
    c.folder = resolve_demo_alias(value, "clip");  // the bundled demo scorer, unless ./demo exists
    return c;
  }
  const HubModel m = resolve_hub_model(value);
  return ScorerChoice{m.folder, m.repo_id, m.commit, false};
}

}  // namespace diffbench
