// A baseline that has already run, reused by later evaluations: within one `suite` (candidates that
// share a baseline spec and protocol) and across runs through the baseline cache, a folder of
// entries keyed by everything the baseline's images and scores depend on.
//
// What is reused and what is measured again (the report's `baseline_reuse` says it per run):
// - images and per-prompt CLIP scores are always reused (the fidelity metrics compare the
//   candidate's images with the reused baseline images);
// - times are measured again, baseline batches interleaved with the candidate's, when the schedule
//   is interleaved (times from another moment are not comparable); the regenerated baseline images
//   are then compared with the reused ones (`images_reproduced`);
// - with the sequential schedule the baseline is not run at all: its times are reused too.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/eval/evaluator.hpp"

namespace diffbench {

struct BaselineResult {
  PipelineRun run;                 // times, stages, per-seed CLIP scores of the baseline
  // Per seed, the images: uint8 [N,3,H,W] tensors, or (when `images` is empty) the folders holding
  // them as NNNNNN.png, read a batch at a time (an eval's report folder, a cache entry).
  std::vector<at::Tensor> images;
  std::vector<std::filesystem::path> image_dirs;
  // Images [first, first+count) of seed `k`, uint8 [count,3,H,W].
  at::Tensor batch(size_t k, size_t first, size_t count) const;
  // Writes images [0, count) of seed `k` into `dir` as NNNNNN.png: the PNG files copied as they are
  // when they are files (no decoding, no encoding), else encoded.
  void write_pngs(size_t k, size_t count, const std::filesystem::path& dir) const;
  // Where it came from: {"source": "run"|"suite"|"cache", ...} (the suite adds the candidate that
  // ran it, the cache its entry and key); copied into the report's baseline_reuse.
  nlohmann::json provenance = nlohmann::json::object();
};

// The cache key's material: the baseline spec (model as the content hashes of its files), the
// protocol (prompts, seeds, batch size, noise mode, repeats, warm-up), the CLIP scorer (its files'
// hashes and the score mode), the device (name, CPU or GPU model, threads, LibTorch) and the
// diffbench version. Prompts are the protocol's loaded prompt texts.
nlohmann::json baseline_key_material(const PipelineSpec& baseline, const EvalOptions& options,
                                     const std::vector<std::string>& prompts,
                                     const std::string& version = DIFFBENCH_VERSION);

// A spec as its results depend on it: its JSON without names and paths, the model (and config,
// LoRA and plugin files) as content hashes. Part of the cache key and of eval's journal key.
nlohmann::json spec_identity(const PipelineSpec& spec);

// XXH3-128 of the material's canonical JSON, 32 hex digits.
std::string baseline_key(const nlohmann::json& material);

// Content hashes of the regular files under a model or scorer folder (relative path -> hash;
// symbolic links, as in a hub snapshot, are followed). A file is named as itself. Of a diffusers
// folder, the weights the pipeline loads: those of `variant` (e.g. fp16) where the folder has them.
nlohmann::json folder_hashes(const std::filesystem::path& folder, const std::string& variant = {});

class BaselineCache {
 public:
  explicit BaselineCache(std::filesystem::path dir);
  const std::filesystem::path& dir() const { return dir_; }

  // The entry stored under `key`, or null when there is none (or it cannot be read: a damaged
  // entry is a miss, logged, never an error).
  std::shared_ptr<const BaselineResult> find(const std::string& key, const Logger& log) const;

  // Stores a baseline under `key` (entry.json + PNGs, copied from its image_dirs or written from its
  // images), written beside and renamed into place; an
  // existing entry is kept. A cache that cannot be written is logged and otherwise ignored.
  void store(const std::string& key, const nlohmann::json& material, const BaselineResult& result,
             const Logger& log) const;

 private:
  std::filesystem::path dir_;
};

inline constexpr const char* kDefaultBaselineCache = "runs/.baseline-cache";

// The cache folder when --baseline-cache is not given: $DIFFBENCH_BASELINE_CACHE when set, else
// kDefaultBaselineCache. "off" (as either) means no cache: baseline_cache_dir returns "".
std::string default_baseline_cache();
std::filesystem::path baseline_cache_dir(const std::string& option, bool disabled);

// run_eval with the cache (`cache_dir` empty: without): a hit becomes options.baseline_result; a
// baseline the run generated is stored. An options.baseline_result already set is used as is.
EvalResult run_eval_cached(EvalOptions options, const std::filesystem::path& cache_dir, const Logger& log);

}  // namespace diffbench
