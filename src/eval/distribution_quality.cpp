#include "diffbench/eval/distribution_quality.hpp"

#include <algorithm>

#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"
#include "util/format.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

constexpr int64_t kKidSubsets = 100;      // torchmetrics' and clean-fid's defaults
constexpr int64_t kKidMaxSubsetSize = 1000;

const char* kFidDefinition =
    "Fréchet distance of Inception-v3 pool features (pytorch-fid's FID Inception: 2048-d, images resized to "
    "299x299 bilinear), float64";
const char* kKidDefinition =
    "unbiased squared MMD of Inception-v3 pool features with the cubic polynomial kernel, mean (and standard "
    "deviation) over random subsets, as torchmetrics' KernelInceptionDistance";

nlohmann::json kid_json(const SetDistance& d) {
  return {{"mean", d.kid->mean}, {"std", d.kid->std}, {"subsets", kKidSubsets}, {"subset_size", d.kid_subset_size}};
}

std::string fid_note(int64_t smallest) {
  return "FID over " + std::to_string(smallest) + " images is biased upwards (its 2048x2048 covariance needs at least " +
         std::to_string(kFidReliableImages) + " images per set): compare KID instead";
}

void check_max(nlohmann::json& m, const std::optional<double>& max, double value, const char* option,
               const std::string& what, const std::string& key, std::vector<std::string>* failures) {
  if (!max) return;
  const bool passed = value <= *max;
  m["threshold"] = {{"option", option}, {key, *max}, {"passed", passed}};
  if (!passed && failures)
    failures->push_back(what + " " + fixed(value, 6) + " exceeds " + option + " " + fixed(*max, 6));
}

}  // namespace

void ImageSetFeatures::add(const at::Tensor& features) {
  const at::Tensor f = features.to(at::kCPU, at::kFloat).contiguous();
  moments_.add(f);
  rows_.push_back(f);
}

at::Tensor ImageSetFeatures::rows() const {
  if (rows_.empty()) return at::empty({0, kInceptionFeatureDim});
  return at::cat(rows_, 0);
}

std::vector<fs::path> image_set_files(const fs::path& dir) {
  if (!fs::is_directory(dir)) throw InputError("not a folder of PNG images", dir.string());
  auto files = list_pngs(dir);
  if (files.size() < 2)
    throw InputError("KID and FID compare sets of images: this folder has " + std::to_string(files.size()) +
                         " PNG file(s), at least 2 are needed",
                     dir.string());
  return files;
}

ImageSetFeatures files_features(const InceptionFeatures& net, const std::vector<fs::path>& files, int batch_size,
                                const Logger& log) {
  if (batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
  ImageSetFeatures set;
  const auto batch = static_cast<size_t>(batch_size);
  for (size_t first = 0; first < files.size(); first += batch) {  // a batch of images in memory at a time
    std::vector<at::Tensor> images;
    for (size_t i = first; i < std::min(files.size(), first + batch); ++i) images.push_back(read_png(files[i]));
    set.add(net.features(images));
    log.progress("Inception features", static_cast<long>(first + images.size()), static_cast<long>(files.size()));
  }
  return set;
}

void add_images_features(const InceptionFeatures& net, const at::Tensor& images_u8, int batch_size,
                         ImageSetFeatures& set) {
  if (images_u8.dim() != 4) throw UsageError("expected uint8 images [N,3,H,W]", "inception");
  for (int64_t first = 0; first < images_u8.size(0); first += batch_size)
    set.add(net.features(images_u8.narrow(0, first, std::min<int64_t>(batch_size, images_u8.size(0) - first))));
}

SetDistance set_distance(const ImageSetFeatures& a, const ImageSetFeatures& b, const MetricSet& m, uint64_t seed) {
  if (a.count() < 2 || b.count() < 2)
    throw UsageError("KID and FID need at least 2 images in each set (got " + std::to_string(a.count()) + " and " +
                         std::to_string(b.count()) + ")",
                     "--metrics");
  SetDistance d;
  if (m.fid) d.fid = frechet_distance(a.moments(), b.moments());
  if (m.kid) {
    KidOptions o;
    o.subsets = kKidSubsets;
    o.subset_size = std::min({kKidMaxSubsetSize, a.count(), b.count()});
    o.seed = seed;
    d.kid = kid(a.rows(), b.rows(), o);
    d.kid_subset_size = o.subset_size;
  }
  return d;
}

nlohmann::json distribution_metrics_json(const MetricSet& m, const ImageSetFeatures& baseline,
                                         const ImageSetFeatures& candidate, const ImageSetFeatures* reference,
                                         const std::string& reference_dir, const DistributionThresholds& t,
                                         uint64_t seed, std::vector<std::string>* failures) {
  nlohmann::json out = nlohmann::json::object();
  if (!m.distribution()) return out;
  const SetDistance cb = set_distance(baseline, candidate, m, seed);
  SetDistance rb, rc;
  int64_t smallest = std::min(baseline.count(), candidate.count());
  if (reference) {
    rb = set_distance(*reference, baseline, m, seed);
    rc = set_distance(*reference, candidate, m, seed);
    smallest = std::min(smallest, reference->count());
  }
  const std::string compares = reference ? "the candidate's image set vs the baseline's, and each vs the reference images"
                                         : "the candidate's image set vs the baseline's (every prompt and seed)";
  if (m.fid) {
    nlohmann::json f = {{"compares", compares},
                        {"direction", "lower-is-better"},
                        {"definition", kFidDefinition},
                        {"n_baseline", baseline.count()},
                        {"n_candidate", candidate.count()},
                        {"candidate_vs_baseline", *cb.fid}};
    double increase = *cb.fid;
    if (reference) {
      increase = *rc.fid - *rb.fid;
      f["reference"] = {{"images", reference_dir}, {"n", reference->count()}, {"baseline", *rb.fid},
                        {"candidate", *rc.fid}, {"increase", increase}};
      if (*rb.fid > 0) f["loss_pct"] = increase / *rb.fid * 100.0;
    }
    f["increase"] = increase;
    f["increase_of"] = reference ? "FID to the reference images, candidate minus baseline"
                                 : "FID of the candidate vs the baseline (the baseline's FID to itself is 0)";
    f["reliable"] = smallest >= kFidReliableImages;
    if (smallest < kFidReliableImages) f["note"] = fid_note(smallest);
    check_max(f, t.max_fid_increase, increase, "--max-fid-increase", "FID increase", "max_increase", failures);
    out["fid"] = f;
  }
  if (m.kid) {
    nlohmann::json k = {{"compares", compares},
                        {"direction", "lower-is-better"},
                        {"definition", kKidDefinition},
                        {"n_baseline", baseline.count()},
                        {"n_candidate", candidate.count()},
                        {"candidate_vs_baseline", kid_json(cb)}};
    if (reference) {
      const double increase = rc.kid->mean - rb.kid->mean;
      k["reference"] = {{"images", reference_dir}, {"n", reference->count()}, {"baseline", kid_json(rb)},
                        {"candidate", kid_json(rc)}, {"increase", increase}};
      if (rb.kid->mean > 0) k["loss_pct"] = increase / rb.kid->mean * 100.0;
    }
    check_max(k, t.max_kid, cb.kid->mean, "--max-kid", "KID of the candidate vs the baseline", "max_mean", failures);
    out["kid"] = k;
  }
  return out;
}

nlohmann::json eval_distribution_metrics(const InceptionFeatures& net, const std::vector<at::Tensor>& baseline_images,
                                         const std::vector<at::Tensor>& candidate_images,
                                         const std::vector<fs::path>& reference_files, const fs::path& reference_dir,
                                         const MetricSet& m, const DistributionThresholds& t, int batch_size,
                                         uint64_t seed, std::vector<std::string>* failures, const Logger& log) {
  if (!m.distribution()) return nlohmann::json::object();
  log.info("Inception features of both runs' images for " + std::string(m.kid && m.fid ? "KID and FID" : m.kid ? "KID" : "FID"));
  ImageSetFeatures baseline, candidate;
  for (const auto& images : baseline_images) add_images_features(net, images, batch_size, baseline);
  for (const auto& images : candidate_images) add_images_features(net, images, batch_size, candidate);
  return eval_distribution_metrics(net, baseline, candidate, reference_files, reference_dir, m, t, batch_size, seed,
                                   failures, log);
}

nlohmann::json eval_distribution_metrics(const InceptionFeatures& net, const ImageSetFeatures& baseline,
                                         const ImageSetFeatures& candidate, const std::vector<fs::path>& reference_files,
                                         const fs::path& reference_dir, const MetricSet& m,
                                         const DistributionThresholds& t, int batch_size, uint64_t seed,
                                         std::vector<std::string>* failures, const Logger& log) {
  if (!m.distribution()) return nlohmann::json::object();
  std::optional<ImageSetFeatures> reference;
  if (!reference_files.empty()) {
    log.info("Inception features of " + std::to_string(reference_files.size()) + " reference images in " +
             reference_dir.string());
    reference = files_features(net, reference_files, batch_size, log);
  }
  return distribution_metrics_json(m, baseline, candidate, reference ? &*reference : nullptr, reference_dir.string(), t,
                                   seed, failures);
}

nlohmann::json score_distribution_json(const MetricSet& m, const ImageSetFeatures& images,
                                       const std::vector<NamedImageSet>& others, uint64_t seed) {
  nlohmann::json out = nlohmann::json::object();
  if (!m.distribution() || others.empty()) return out;
  nlohmann::json f = {{"direction", "lower-is-better"}, {"definition", kFidDefinition}, {"n", images.count()}};
  nlohmann::json k = {{"direction", "lower-is-better"}, {"definition", kKidDefinition}, {"n", images.count()}};
  int64_t smallest = images.count();
  for (const auto& other : others) {
    const SetDistance d = set_distance(*other.set, images, m, seed);
    smallest = std::min(smallest, other.set->count());
    if (m.fid) f[other.role] = {{"images", other.dir.string()}, {"n", other.set->count()}, {"value", *d.fid}};
    if (m.kid) {
      nlohmann::json kj = kid_json(d);
      kj["images"] = other.dir.string();
      kj["n"] = other.set->count();
      k[other.role] = kj;
    }
  }
  f["reliable"] = smallest >= kFidReliableImages;
  if (smallest < kFidReliableImages) f["note"] = fid_note(smallest);
  if (m.fid) out["fid"] = f;
  if (m.kid) out["kid"] = k;
  return out;
}

}  // namespace diffbench
