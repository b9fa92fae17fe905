// Model ids such as "runwayml/stable-diffusion-v1-5" resolved through the local Hugging Face hub
// cache, laid out as huggingface_hub writes it; never through the network:
//
//   CACHE/models--ORG--NAME/refs/main          the commit hash the revision "main" points at
//   CACHE/models--ORG--NAME/snapshots/<commit>/  the files (often symlinks into ../../blobs/)
//
// CACHE is the caller's cache_dir when given, else $HF_HUB_CACHE, else $HF_HOME/hub, else
// ~/.cache/huggingface/hub.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace diffbench {

struct HubModel {
  std::string repo_id;               // "ORG/NAME"
  std::string revision;              // as asked ("main", a branch or tag, or a commit hash)
  std::string commit;                // the snapshot's commit hash
  std::filesystem::path cache_dir;   // the cache that was used
  std::filesystem::path folder;      // CACHE/models--ORG--NAME/snapshots/<commit>

  nlohmann::json to_json() const;  // {"id", "revision", "commit", "folder"}
};

// True for "ORG/NAME": exactly two non-empty parts of letters, digits, '-', '_' and '.', neither
// starting with '.' (so "./x", "../x" and absolute paths are paths).
bool looks_like_repo_id(const std::string& text);

// The cache folder used for `cache_dir` (empty: from the environment, as described above).
std::filesystem::path hub_cache_dir(const std::filesystem::path& cache_dir = {});

// Resolves `repo_id` at `revision` (empty = "main"). With `variant` (e.g. "fp16"), the snapshot
// must hold at least one "*.<variant>.safetensors" file. Not found: InputError listing the folders
// looked in and the command that downloads the model (`hf download ORG/NAME`).
HubModel resolve_hub_model(const std::string& repo_id, const std::string& revision = {},
                           const std::filesystem::path& cache_dir = {}, const std::string& variant = {});

// Whether `repo_id` has a snapshot for `revision` in the cache (no error).
bool hub_model_cached(const std::string& repo_id, const std::string& revision = {},
                      const std::filesystem::path& cache_dir = {});

}  // namespace diffbench
