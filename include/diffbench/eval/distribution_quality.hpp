// KID and FID of image sets for eval and score: Inception-v3 pool features (models/inception_fid.hpp)
// computed a batch at a time and compared as metrics/distribution.hpp computes KID and FID. Images are
// never all held: a set keeps FID's running moments and its 2048-d feature rows (8 KiB an image) for KID.
#pragma once

#include <filesystem>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/log.hpp"
#include "diffbench/metrics/distribution.hpp"
#include "diffbench/metrics/metric_set.hpp"
#include "diffbench/models/inception_fid.hpp"

namespace diffbench {

// FID is biased upwards on small sets (its covariance has 2048 dimensions): below this many images
// the report marks it unreliable and prefers KID.
inline constexpr int64_t kFidReliableImages = 2048;

struct DistributionThresholds {
  // FID(candidate, reference images) - FID(baseline, reference images) with --reference-images; without
  // it FID(candidate, baseline) (the baseline's FID to itself being 0). --max-fid-increase
  std::optional<double> max_fid_increase;
  // KID(candidate, baseline), mean over subsets. --max-kid
  std::optional<double> max_kid;
};

// The features of one image set, added a batch at a time.
class ImageSetFeatures {
 public:
  void add(const at::Tensor& features);  // [N,2048] float
  int64_t count() const { return moments_.count(); }
  const FeatureMoments& moments() const { return moments_; }
  at::Tensor rows() const;  // [count, 2048] float32

 private:
  FeatureMoments moments_;
  std::vector<at::Tensor> rows_;
};

// The PNGs of an image folder compared as a set (--reference-images), checked before any work is done:
// InputError naming the folder when it is not one or holds fewer than 2 PNGs.
std::vector<std::filesystem::path> image_set_files(const std::filesystem::path& dir);

// The features of `files`, read and passed through the network `batch_size` at a time (sizes may differ).
ImageSetFeatures files_features(const InceptionFeatures& net, const std::vector<std::filesystem::path>& files,
                                int batch_size, const Logger& log = Logger::silent());

// Adds the features of uint8 images [N,3,H,W], `batch_size` at a time, to `set`.
void add_images_features(const InceptionFeatures& net, const at::Tensor& images_u8, int batch_size,
                         ImageSetFeatures& set);

// FID and KID of two sets (KID: torchmetrics' 100 subsets of min(1000, smaller set) images, seeded).
struct SetDistance {
  std::optional<double> fid;
  std::optional<KidResult> kid;
  int64_t kid_subset_size = 0;
};
SetDistance set_distance(const ImageSetFeatures& a, const ImageSetFeatures& b, const MetricSet& metrics, uint64_t seed);

// eval's report.json metrics.fid and metrics.kid (those asked for): direction lower-is-better, set sizes,
// candidate_vs_baseline, with a reference set its distance to each side and the increase, `reliable`
// (FID: at least kFidReliableImages per set) with a note, thresholds and whether they passed, and,
// where relative to a baseline value that is above 0, loss_pct (candidate worse than baseline, in %:
// only with a reference set). Failed thresholds add a sentence naming the option to *failures.
nlohmann::json distribution_metrics_json(const MetricSet& metrics, const ImageSetFeatures& baseline,
                                         const ImageSetFeatures& candidate, const ImageSetFeatures* reference,
                                         const std::string& reference_dir, const DistributionThresholds& thresholds,
                                         uint64_t seed, std::vector<std::string>* failures);

// eval's KID/FID in one call: the features of every image of both runs (all seeds; uint8 [N,3,H,W] each)
// and of `reference_files` (when any), `batch_size` at a time, then distribution_metrics_json.
nlohmann::json eval_distribution_metrics(const InceptionFeatures& net, const std::vector<at::Tensor>& baseline_images,
                                         const std::vector<at::Tensor>& candidate_images,
                                         const std::vector<std::filesystem::path>& reference_files,
                                         const std::filesystem::path& reference_dir, const MetricSet& metrics,
                                         const DistributionThresholds& thresholds, int batch_size, uint64_t seed,
                                         std::vector<std::string>* failures, const Logger& log);

// The same with both runs' features already computed (eval adds each batch's as it comes).
nlohmann::json eval_distribution_metrics(const InceptionFeatures& net, const ImageSetFeatures& baseline,
                                         const ImageSetFeatures& candidate,
                                         const std::vector<std::filesystem::path>& reference_files,
                                         const std::filesystem::path& reference_dir, const MetricSet& metrics,
                                         const DistributionThresholds& thresholds, int batch_size, uint64_t seed,
                                         std::vector<std::string>* failures, const Logger& log);

// score's fid and kid: the image set against each named other set ({"against", ...} and/or
// {"reference", ...}), with the set sizes and `reliable` as above.
struct NamedImageSet {
  std::string role;  // "against" or "reference": the JSON key
  std::filesystem::path dir;
  const ImageSetFeatures* set;
};
nlohmann::json score_distribution_json(const MetricSet& metrics, const ImageSetFeatures& images,
                                       const std::vector<NamedImageSet>& others, uint64_t seed);

}  // namespace diffbench
