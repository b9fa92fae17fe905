// eval's image metrics computed batch by batch as the timed batches finish (issue 23: metrics over
// 10,000 images stay within memory). Each image-keeping batch of either side comes here once (a
// resumed run's finished batches too, read back from their PNGs): its Inception features and
// preference scores are kept, never the images. PSNR/SSIM/LPIPS need the baseline and candidate
// image of the same prompt: the batch that came just before is held, so an interleaved pair meets
// in memory; otherwise (sequential schedule) the partner is read back from its PNGs. At most two
// batches of decoded images are held at a time (three when a reused baseline's next batch is
// decoded ahead); max_images_held() is what was.
#pragma once

#include <cstdint>
#include <functional>
#include <future>
#include <utility>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/eval/distribution_quality.hpp"
#include "diffbench/eval/preference_quality.hpp"
#include "diffbench/eval/quality.hpp"
#include "diffbench/metrics/lpips.hpp"
#include "diffbench/metrics/metric_set.hpp"
#include "diffbench/models/inception_fid.hpp"

namespace diffbench {

struct StreamedQualityInputs {
  MetricSet metrics;
  size_t prompts = 0;
  size_t seeds = 1;
  int batch_size = 1;
  const std::vector<std::string>* prompt_texts = nullptr;
  const Lpips* lpips = nullptr;
  const InceptionFeatures* inception = nullptr;      // for kid / fid
  const PreferenceScorers* preference = nullptr;     // for pickscore / hps
  at::Device device = at::kCPU;                      // where PSNR and SSIM run
  const BaselineResult* reused = nullptr;            // a reused baseline: its images stand for side 0's
  // Decode a reused baseline's next batch on a thread while the current one is used (a GPU run: the
  // decoding overlaps the next timed batch; never on the CPU, whose timed batches it would slow).
  bool decode_ahead = false;
};

// A reused baseline timed again beside the candidate, compared with the reused images batch by batch:
// the largest pixel difference, and per seed the squared-error sum and element count, so the PSNR is
// over all of a seed's images together (as if compared in one piece).
struct Reproduction {
  bool comparable = true;  // every batch had the reused images' shape
  bool same = true;        // and equal bit for bit
  int64_t max_abs_diff = 0;
  std::vector<double> sse;       // per seed
  std::vector<double> elements;  // per seed
  // The lowest PSNR of a seed whose images differ (capped at kPsnrCapDb; the cap when none differ).
  double worst_psnr_db() const;
};

class StreamedQuality {
 public:
  // Reads back images [first, first+count) of `side`'s seed k from the PNGs written for them.
  using ReadBack = std::function<at::Tensor(int side, size_t k, size_t first, size_t count)>;
  StreamedQuality(StreamedQualityInputs inputs, ReadBack read_back);

  // Batch of side `side` (0 baseline, 1 candidate), seed index k, prompts [first, first+n): uint8
  // [n,3,H,W]. A reused baseline's batch timed again is only compared with the reused images.
  void add(int side, size_t k, size_t first, const at::Tensor& images);
  // After the last batch: a reused baseline's images enter the set and preference metrics, a batch
  // at a time.
  void finish();

  FidelityScores fidelity() const;  // the first seed's pairs, in prompt order
  // Per prompt, the first seed's pair's channel_abs_diff_sum (int16 [H,W] on the host), made as the
  // pairs meet, for report.html's heat maps; kept while they take at most kDiffSumsBytes (else, and
  // for a prompt without both images of one size, undefined: the page reads the PNGs).
  std::vector<at::Tensor> channel_abs_diff_sums() const;
  static constexpr int64_t kDiffSumsBytes = int64_t{256} << 20;
  const ImageSetFeatures& features(int side) const { return features_[side]; }
  // Per seed, per prompt: the scores of `model` (pickscore or hps) of a side.
  const std::vector<std::vector<double>>& preference(int side, const PreferenceScorer* scorer) const;
  const Reproduction& reproduction() const { return reproduction_; }  // a reused baseline timed again
  // Notes that the caller holds `n` decoded images (rank 0's gathered images).
  void holding(int64_t n) { held(n); }
  int64_t max_images_held() const { return max_held_; }
  // The most it holds in one process: two batches, three when a reused baseline is decoded ahead.
  int64_t bound() const { return (in_.reused && in_.decode_ahead ? 3 : 2) * static_cast<int64_t>(in_.batch_size); }

 private:
  void set_metrics(int side, size_t k, size_t first, const at::Tensor& images);
  // add() when a reused baseline's images stand for side 0's.
  void add_beside_reused(int side, size_t k, size_t first, const at::Tensor& images);
  // The reused baseline's images [first, first+count) of seed k, decoded once for both of their uses
  // (checking the batch timed again, pairing the candidate's); with decode_ahead the next batch is
  // being decoded meanwhile.
  at::Tensor reused_batch(size_t k, size_t first, size_t count);
  int64_t reused_held() const;
  void held(int64_t n) { max_held_ = std::max(max_held_, n); }

  StreamedQualityInputs in_;
  ReadBack read_back_;
  at::Tensor last_;  // the batch before, kept for its partner
  int last_side_ = -1;
  size_t last_k_ = 0, last_first_ = 0;
  std::set<size_t> seen_[2];                // first prompts of the first seed's batches added
  std::map<size_t, FidelityScores> pairs_;  // by first prompt
  void keep_diff_sums(size_t first, const at::Tensor& baseline, const at::Tensor& candidate);
  std::map<size_t, at::Tensor> diff_sums_;  // by first prompt: int16 [n,H,W] on the host
  int64_t diff_sums_bytes_ = 0;
  bool diff_sums_dropped_ = false;  // over kDiffSumsBytes
  ImageSetFeatures features_[2];
  std::vector<std::vector<double>> pickscore_[2], hps_[2];
  Reproduction reproduction_;
  int64_t max_held_ = 0;
  using BatchKey = std::pair<size_t, size_t>;  // seed index, first prompt
  std::optional<BatchKey> reused_key_, ahead_key_;
  at::Tensor reused_;              // the reused batch of reused_key_
  std::future<at::Tensor> ahead_;  // the one of ahead_key_, being decoded
};

}  // namespace diffbench
