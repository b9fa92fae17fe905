// The evaluation protocol's defaults: the bundled prompt set and the CLIP scorer looked up by id in
// the local Hugging Face hub cache, so `diffbench eval 1_gen.py` needs no other option.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffbench {

// The default prompt set: "coco2017-val" names assets/prompts/coco2017-val-first-captions.jsonl, the
// first caption of each of the first 5,000 COCO 2017 val images (io/prompts.hpp).
inline constexpr const char* kDefaultPrompts = "coco2017-val";
inline constexpr size_t kDefaultNumSamples = 32;

// Scorer ids tried in order when no --clip is given; the first found in the cache is used.
// ViT-g-14 laion2B first, the scorer of DeepCache's protocol.
const std::vector<std::string>& default_clip_ids();

struct ScorerChoice {
  std::filesystem::path folder;  // what ClipScorer::load reads ("demo": the bundled demo scorer's folder)
  std::string id;                // the hub id when resolved through the cache
  std::string commit;
  bool is_default = false;       // picked from default_clip_ids()
  nlohmann::json to_json() const;
};

// `value` = "" (the first of default_clip_ids() in the cache), "demo" (the bundled demo scorer,
// io/assets.hpp), a folder, or an "ORG/NAME" id in the local hub cache (io/hub_cache.hpp): the one
// place a --clip value is resolved. Nothing found: InputError naming the ids, the
// cache looked in and the download command.
ScorerChoice resolve_scorer(const std::string& value);

}  // namespace diffbench
