// `diffbench score`: quality metrics of a folder of images that already exist: the CLIP score against
// prompts and, with a folder of reference images (--against), PSNR and SSIM of each image against
// the reference image of the same file name.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/metrics/metric_set.hpp"

namespace diffbench {

class ProcessGroup;  // dist/process_group.hpp

struct ScoreOptions {
  std::filesystem::path images;   // PNG files, taken in file-name order
  std::string prompts;            // prompt source, one prompt per image (CLIP); empty: images/run.json's prompts
  size_t num_samples = 0;         // the first N images (0 = all)
  std::filesystem::path clip;     // CLIP scorer folder (CLIP)
  ClipScoreMode clip_score = ClipScoreMode::PerSampleClamp;
  std::filesystem::path against;  // reference images with the same file names (PSNR, SSIM, LPIPS)
  std::filesystem::path lpips;    // LPIPS weights (safetensors)
  std::filesystem::path inception;         // FID Inception-v3 weights (safetensors), for kid / fid
  std::filesystem::path reference_images;  // a folder the images are compared with as a set (kid, fid)
  std::filesystem::path pickscore, hps;    // preference scorer folders (pickscore, hps; with --prompts)
  MetricSet metrics;              // what to compute; see default_score_metrics
  int batch_size = 16;            // images read and scored at a time
  uint64_t seed = 42;             // of the bootstrap intervals
  at::Device device = at::kCPU;   // the CLIP scorer's (float16 on CUDA)
  // A multi-process run's group (not owned; null: one process): each rank scores a contiguous shard
  // of whole batches, rank 0 gathers every image's scores (and Inception features) and returns the
  // one-process result plus a "distributed" section; the other ranks return null.
  ProcessGroup* group = nullptr;
};

// --metrics' default: clip without --against; psnr,ssim with it, plus clip when a scorer is given,
// lpips when its weights are and kid,fid when the Inception weights are.
MetricSet default_score_metrics(bool against, bool clip, bool lpips = false, bool inception = false);

// Scores the images, reading `batch_size` of them at a time (images may differ in size; a pair of
// images compared by PSNR/SSIM may not). Returns {"images", "n", "files", and per metric: for clip
// "clip_score", "per_sample", "clip", "mode" (as before); for psnr/ssim "against" and
// "psnr"/"ssim" summaries as report.json's metrics; for kid/fid "kid"/"fid" with the images as a set
// against --against's folder ("against") and --reference-images ("reference"), eval/distribution_quality.hpp}.
// UsageError for a metric without what it needs; InputError naming the file for a missing reference image
// or one of another size.
nlohmann::json run_score(const ScoreOptions& options);

// A few lines for the terminal.
std::string render_score(const nlohmann::json& score);

}  // namespace diffbench
