#include "diffbench/metrics/preference.hpp"

#include <cmath>

namespace diffbench {

std::string to_string(PreferenceModel model) { return model == PreferenceModel::PickScore ? "pickscore" : "hps"; }

PreferenceScorer::PreferenceScorer(PreferenceModel model, std::unique_ptr<ClipScorer> clip)
    : model_(model), clip_(std::move(clip)) {
  if (model_ == PreferenceModel::PickScore) {
    scale_ = std::exp(clip_->logit_scale());
    definition_ = "PickScore: logit_scale.exp() * cos(image, text features) of the CLIPModel checkpoint";
  } else {
    definition_ = "HPS v2: cos(image, text features) of the open_clip checkpoint (the diagonal of "
                  "image_features @ text_features.T)";
  }
}

std::unique_ptr<PreferenceScorer> PreferenceScorer::load(PreferenceModel model, const std::filesystem::path& dir) {
  return std::unique_ptr<PreferenceScorer>(new PreferenceScorer(model, ClipScorer::load(dir)));
}

std::vector<double> PreferenceScorer::score(const at::Tensor& images_u8, const std::vector<std::string>& prompts,
                                            int batch_size) const {
  std::vector<double> s = clip_->score(images_u8, prompts, batch_size);  // 100·cos
  for (double& v : s) v *= scale_ / 100.0;
  return s;
}

std::vector<double> PreferenceScorer::score(const std::vector<at::Tensor>& images_u8,
                                            const std::vector<std::string>& prompts, int batch_size) const {
  std::vector<double> s = clip_->score(images_u8, prompts, batch_size);
  for (double& v : s) v *= scale_ / 100.0;
  return s;
}

}  // namespace diffbench
