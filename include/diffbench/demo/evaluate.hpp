// The demo's acceptance measures: top-1 retrieval among the 32 demo prompts, for the scorer on
// rendered pictures and for a pipeline's images scored by the scorer.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/metrics/clip_score.hpp"
#include "diffbench/pipeline/txt2img.hpp"

namespace diffbench::demo {

// Fraction of rows i of a square similarity matrix [N, N] whose largest entry is in column i.
double top1_accuracy(const at::Tensor& similarity);

struct RetrievalCheck {
  size_t count = 0;
  double top1 = 0;                 // image i retrieves prompt i, among all `count` prompts
  double clip_score = 0;           // mean of the per-image scores against their own prompts, clamped at 0
  std::vector<int64_t> retrieved;  // the prompt each image retrieves
  nlohmann::json to_json() const;
};

RetrievalCheck retrieval(const ClipScorer& scorer, const at::Tensor& images_u8, const std::vector<std::string>& prompts);

// The scorer on the rendered pictures of the demo prompts.
RetrievalCheck check_scorer(const ClipScorer& scorer, size_t count = 32);
// The pipeline's images for the demo prompts, scored by the scorer; `images` receives them
// (uint8 [count, 3, H, W]) when given.
RetrievalCheck check_pipeline(Txt2ImgPipeline& pipeline, const ClipScorer& scorer, const GenerateOptions& options,
                              size_t count = 32, at::Tensor* images = nullptr);

// uint8 [N, 3, H, W] -> one uint8 [3, rows·H, cols·W] picture, row by row.
at::Tensor image_grid(const at::Tensor& images_u8, int64_t cols);

}  // namespace diffbench::demo
