// CLIP score: 100 · cos(image features, text features), with a scorer in the transformers CLIPModel
// layout or the open_clip layout, preprocessing as the reference libraries do it.
#pragma once

#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

enum class ClipScoreMode {
  PerSampleClamp,  // mean(max(score_i, 0)): the seed protocol's torch.max(score, 0) then mean
  MeanClamp,       // max(mean(score_i), 0): torchmetrics' CLIPScore
};
ClipScoreMode parse_clip_score_mode(const std::string& name);  // "per-sample-clamp" | "mean-clamp"
std::string to_string(ClipScoreMode mode);

class ClipScorer {
 public:
  // Detects the layout of `dir` and loads model and tokenizer onto `device`, in `dtype` (default:
  // float16 on CUDA, float32 on the CPU); features are compared in float32 either way.
  static std::unique_ptr<ClipScorer> load(const std::filesystem::path& dir, const at::Device& device = at::kCPU,
                                          std::optional<at::ScalarType> dtype = std::nullopt);
  ~ClipScorer();

  // Per-image scores (unclamped 100·cos) of uint8 [N,3,H,W] images against their prompts.
  std::vector<double> score(const at::Tensor& images_u8, const std::vector<std::string>& prompts,
                            int batch_size = 16) const;
  // The same for uint8 [3,H,W] images of any sizes (each is resized and cropped on its own).
  std::vector<double> score(const std::vector<at::Tensor>& images_u8, const std::vector<std::string>& prompts,
                            int batch_size = 16) const;
  // 100·cos between every image and every prompt: float64 [N_images, N_prompts] on the CPU (for
  // retrieval: image i "retrieves" the prompt of its row's largest entry).
  at::Tensor similarity(const at::Tensor& images_u8, const std::vector<std::string>& prompts,
                        int batch_size = 16) const;
  // The one-time work of the first calls, done before a timed run: encodes every distinct prompt
  // (kept for later calls) and runs the image tower once on `images_per_call` blank images. LibTorch
  // keeps cuDNN's attention plans per thread, so it pays only for calls on the calling thread.
  void warm_up(const std::vector<std::string>& prompts, int images_per_call, int batch_size = 16) const;
  // The aggregate of per-image scores in `mode`.
  static double aggregate(const std::vector<double>& scores, ClipScoreMode mode);

  const std::filesystem::path& path() const;
  std::string layout() const;  // "transformers" | "open_clip"
  // The checkpoint's learned temperature `logit_scale` (its log; CLIP's logits are exp(logit_scale)·cos).
  double logit_scale() const;

 private:
  at::Tensor image_embeddings(const std::vector<at::Tensor>& images_u8, int batch_size) const;  // [N, E], unit norm
  // [N, E], unit norm; each distinct prompt is encoded once per scorer (later calls reuse it).
  at::Tensor text_embeddings(const std::vector<std::string>& prompts, int batch_size) const;
  struct Impl;
  explicit ClipScorer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffbench
