// Human-preference scores through the CLIP loaders (transformers CLIPModel or open_clip folders), as their
// reference code scores an image against its prompt:
//   PickScore (Kirstain et al. 2023, a transformers CLIPModel checkpoint): logit_scale.exp() · cos(image, text);
//   HPS v2 / v2.1 (Wu et al. 2023, an open_clip ViT-H-14 checkpoint): the raw cosine of the normalised
//   features, the diagonal of image_features @ text_features.T in its score.py (values around 0.25-0.30).
// Both are higher-is-better. ImageReward needs BLIP, which diffbench does not implement.
#pragma once

#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/metrics/clip_score.hpp"

namespace diffbench {

enum class PreferenceModel { PickScore, Hps };
std::string to_string(PreferenceModel model);  // "pickscore" | "hps"

class PreferenceScorer {
 public:
  // Loads the folder with ClipScorer::load (a converted safetensors checkpoint in either layout).
  static std::unique_ptr<PreferenceScorer> load(PreferenceModel model, const std::filesystem::path& dir);

  // Per-image scores of uint8 [N,3,H,W] images (or [3,H,W] images of any sizes) against their prompts.
  std::vector<double> score(const at::Tensor& images_u8, const std::vector<std::string>& prompts, int batch_size = 16) const;
  std::vector<double> score(const std::vector<at::Tensor>& images_u8, const std::vector<std::string>& prompts,
                            int batch_size = 16) const;

  PreferenceModel model() const { return model_; }
  double scale() const { return scale_; }  // score = scale · cos: exp(logit_scale) for PickScore, 1 for HPS
  const std::string& definition() const { return definition_; }
  const ClipScorer& clip() const { return *clip_; }

 private:
  PreferenceScorer(PreferenceModel model, std::unique_ptr<ClipScorer> clip);
  PreferenceModel model_;
  std::unique_ptr<ClipScorer> clip_;
  double scale_ = 1.0;
  std::string definition_;
};

}  // namespace diffbench
