// eval's image metrics, a batch at a time (streamed_quality.hpp).
#include "streamed_quality.hpp"

#include <algorithm>
#include <cmath>

#include "diffbench/error.hpp"
#include "diffbench/metrics/psnr.hpp"

namespace diffbench {

StreamedQuality::StreamedQuality(StreamedQualityInputs inputs, ReadBack read_back)
    : in_(std::move(inputs)), read_back_(std::move(read_back)) {
  for (int side = 0; side < 2; ++side) {
    pickscore_[side].assign(in_.seeds, std::vector<double>(in_.prompts, 0.0));
    hps_[side].assign(in_.seeds, std::vector<double>(in_.prompts, 0.0));
  }
  reproduction_.sse.assign(in_.seeds, 0.0);
  reproduction_.elements.assign(in_.seeds, 0.0);
}

double Reproduction::worst_psnr_db() const {
  double worst = kPsnrCapDb;
  for (size_t k = 0; k < sse.size(); ++k)
    if (sse[k] > 0)  // as psnr_capped over the seed's images: 10·log10(255² / MSE), capped
      worst = std::min(worst, std::min(kPsnrCapDb, 10.0 * std::log10(255.0 * 255.0 / (sse[k] / elements[k]))));
  return worst;
}

void StreamedQuality::add(int side, size_t k, size_t first, const at::Tensor& images) {
  if (in_.reused) {
    add_beside_reused(side, k, first, images);
    return;
  }
  const size_t count = static_cast<size_t>(images.size(0));
  held(images.size(0) + (last_.defined() ? last_.size(0) : 0));
  set_metrics(side, k, first, images);
  if (k == 0 && in_.metrics.fidelity()) {
    at::Tensor partner;
    if (last_.defined() && last_side_ == 1 - side && last_k_ == 0 && last_first_ == first) {
      partner = last_;
    } else if (seen_[1 - side].count(first)) {
      last_ = at::Tensor();
      partner = read_back_(1 - side, 0, first, count);
    }
    if (partner.defined()) {
      held(images.size(0) + partner.size(0));
      FidelityScores pair;  // PSNR and SSIM on the pipelines' device
      pair.add_batch(side == 0 ? images : partner, side == 0 ? partner : images, in_.metrics, in_.lpips, in_.device);
      pairs_[first] = std::move(pair);
      keep_diff_sums(first, side == 0 ? images : partner, side == 0 ? partner : images);
    }
    seen_[side].insert(first);
  }
  last_ = images;
  last_side_ = side;
  last_k_ = k;
  last_first_ = first;
}

void StreamedQuality::add_beside_reused(int side, size_t k, size_t first, const at::Tensor& images) {
  const size_t count = static_cast<size_t>(images.size(0));
  held(images.size(0) + reused_held());
  if (side == 0) {
    // Timed again beside the candidate: the metrics use the reused images; these are only compared.
    const at::Tensor r = reused_batch(k, first, count);
    held(images.size(0) + reused_held());
    Reproduction& rep = reproduction_;
    if (!rep.comparable || r.sizes() != images.sizes()) {
      rep.comparable = false;
    } else if (!at::equal(r, images)) {
      rep.same = false;
      const at::Tensor diff = images.to(at::kDouble) - r.to(at::kDouble);
      rep.max_abs_diff = std::max(rep.max_abs_diff, static_cast<int64_t>(diff.abs().max().item<double>()));
      rep.sse[k] += diff.square().sum().item<double>();
      rep.elements[k] += static_cast<double>(diff.numel());
    }
    return;
  }
  set_metrics(side, k, first, images);
  if (k != 0 || !in_.metrics.fidelity()) return;
  const at::Tensor partner = reused_batch(0, first, count);
  held(images.size(0) + reused_held());
  FidelityScores pair;  // PSNR and SSIM on the pipelines' device
  pair.add_batch(partner, images, in_.metrics, in_.lpips, in_.device);
  pairs_[first] = std::move(pair);
  keep_diff_sums(first, partner, images);
}

void StreamedQuality::keep_diff_sums(size_t first, const at::Tensor& baseline, const at::Tensor& candidate) {
  if (diff_sums_dropped_ || baseline.sizes() != candidate.sizes()) return;
  const at::Tensor sums = channel_abs_diff_sum(baseline.to(candidate.device()), candidate).cpu();  // [n,H,W]
  diff_sums_bytes_ += sums.numel() * static_cast<int64_t>(sums.element_size());
  if (diff_sums_bytes_ > kDiffSumsBytes) {
    diff_sums_.clear();
    diff_sums_dropped_ = true;
    return;
  }
  diff_sums_[first] = sums;
}

std::vector<at::Tensor> StreamedQuality::channel_abs_diff_sums() const {
  std::vector<at::Tensor> out(in_.prompts);
  for (const auto& [first, sums] : diff_sums_)
    for (int64_t i = 0; i < sums.size(0) && first + static_cast<size_t>(i) < out.size(); ++i)
      out[first + static_cast<size_t>(i)] = sums[i];
  return out;
}

at::Tensor StreamedQuality::reused_batch(size_t k, size_t first, size_t count) {
  const BatchKey key{k, first};
  if (reused_key_ != key) {
    reused_ = at::Tensor();
    if (ahead_key_ == key) {
      reused_ = ahead_.get();
    } else {
      if (ahead_.valid()) ahead_.wait();  // a batch decoded ahead in vain (the order changed): dropped
      reused_ = in_.reused->batch(k, first, count);
    }
    ahead_key_.reset();
    ahead_ = {};
    reused_key_ = key;
    // The next batch of the order both sides follow (prompts ascending, then the next seed).
    const auto batch = static_cast<size_t>(in_.batch_size);
    std::optional<BatchKey> next;
    if (first + batch < in_.prompts) next = BatchKey{k, first + batch};
    else if (k + 1 < in_.seeds) next = BatchKey{k + 1, 0};
    if (in_.decode_ahead && next) {
      const size_t n = std::min(batch, in_.prompts - next->second);
      const BaselineResult* reused = in_.reused;
      ahead_ = std::async(std::launch::async, [reused, next, n] { return reused->batch(next->first, next->second, n); });
      ahead_key_ = next;
    }
  }
  if (reused_.size(0) != static_cast<int64_t>(count))
    throw RuntimeFailure("a reused baseline batch of " + std::to_string(count) + " images expected");
  return reused_;
}

int64_t StreamedQuality::reused_held() const {
  const int64_t ahead = ahead_key_ ? static_cast<int64_t>(std::min(static_cast<size_t>(in_.batch_size),
                                                                   in_.prompts - ahead_key_->second))
                                   : 0;
  return (reused_.defined() ? reused_.size(0) : 0) + ahead;
}

void StreamedQuality::set_metrics(int side, size_t k, size_t first, const at::Tensor& images) {
  if (in_.inception) features_[side].add(in_.inception->features(images));
  if (!in_.preference || !in_.preference->any()) return;
  const auto n = static_cast<size_t>(images.size(0));
  const std::vector<std::string> texts(in_.prompt_texts->begin() + static_cast<std::ptrdiff_t>(first),
                                       in_.prompt_texts->begin() + static_cast<std::ptrdiff_t>(first + n));
  for (auto [scorer, out] : {std::pair{in_.preference->pickscore.get(), &pickscore_[side]},
                             std::pair{in_.preference->hps.get(), &hps_[side]}})
    if (scorer) {
      const auto s = scorer->score(images, texts, in_.batch_size);
      std::copy(s.begin(), s.end(), (*out)[k].begin() + static_cast<std::ptrdiff_t>(first));
    }
}

void StreamedQuality::finish() {
  last_ = at::Tensor();
  reused_ = at::Tensor();
  reused_key_.reset();
  if (ahead_.valid()) ahead_.wait();
  ahead_ = {};
  ahead_key_.reset();
  // Only the set metrics (KID/FID) and the preference scores need every baseline image.
  if (!in_.reused || (!in_.inception && (!in_.preference || !in_.preference->any()))) return;
  const auto batch = static_cast<size_t>(in_.batch_size);
  for (size_t k = 0; k < in_.seeds; ++k)
    for (size_t first = 0; first < in_.prompts; first += batch) {
      const at::Tensor images = in_.reused->batch(k, first, std::min(batch, in_.prompts - first));
      held(images.size(0));
      set_metrics(0, k, first, images);
    }
}

FidelityScores StreamedQuality::fidelity() const {
  FidelityScores out;
  for (const auto& [first, pair] : pairs_) {
    out.psnr.insert(out.psnr.end(), pair.psnr.begin(), pair.psnr.end());
    out.ssim.insert(out.ssim.end(), pair.ssim.begin(), pair.ssim.end());
    out.lpips.insert(out.lpips.end(), pair.lpips.begin(), pair.lpips.end());
  }
  return out;
}

const std::vector<std::vector<double>>& StreamedQuality::preference(int side, const PreferenceScorer* scorer) const {
  if (in_.preference && scorer == in_.preference->pickscore.get()) return pickscore_[side];
  if (in_.preference && scorer == in_.preference->hps.get()) return hps_[side];
  throw RuntimeFailure("StreamedQuality::preference: not one of the run's scorers");
}

}  // namespace diffbench
