#include "diffbench/demo/evaluate.hpp"

#include "diffbench/demo/scenes.hpp"
#include "diffbench/error.hpp"
#include "diffbench/io/image.hpp"

namespace diffbench::demo {

double top1_accuracy(const at::Tensor& similarity) {
  if (similarity.dim() != 2 || similarity.size(0) != similarity.size(1) || similarity.size(0) == 0)
    throw UsageError("top-1 retrieval needs a square, non-empty similarity matrix", "similarity");
  const at::Tensor best = similarity.argmax(1);
  const at::Tensor hits = best.eq(at::arange(similarity.size(0), best.options()));
  return hits.to(at::kDouble).mean().item<double>();
}

nlohmann::json RetrievalCheck::to_json() const {
  return {{"count", count}, {"top1", top1}, {"clip_score", clip_score}, {"retrieved", retrieved}};
}

RetrievalCheck retrieval(const ClipScorer& scorer, const at::Tensor& images_u8, const std::vector<std::string>& prompts) {
  const at::Tensor sim = scorer.similarity(images_u8, prompts);  // [N, N]
  RetrievalCheck r;
  r.count = prompts.size();
  r.top1 = top1_accuracy(sim);
  r.clip_score = sim.diagonal().clamp_min(0).mean().item<double>();
  const at::Tensor best = sim.argmax(1);
  for (int64_t i = 0; i < best.size(0); ++i) r.retrieved.push_back(best[i].item<int64_t>());
  return r;
}

RetrievalCheck check_scorer(const ClipScorer& scorer, size_t count) {
  std::vector<at::Tensor> pictures;
  for (uint64_t seed : demo_prompt_seeds(count)) pictures.push_back(render_scene(make_scene(seed)));
  return retrieval(scorer, at::stack(pictures), demo_prompts(count));
}

RetrievalCheck check_pipeline(Txt2ImgPipeline& pipeline, const ClipScorer& scorer, const GenerateOptions& options,
                              size_t count, at::Tensor* images) {
  const auto prompts = demo_prompts(count);
  const at::Tensor out = to_uint8(pipeline.generate(prompts, options).images);
  if (images) *images = out;
  return retrieval(scorer, out, prompts);
}

at::Tensor image_grid(const at::Tensor& images_u8, int64_t cols) {
  const int64_t n = images_u8.size(0), h = images_u8.size(2), w = images_u8.size(3);
  const int64_t rows = (n + cols - 1) / cols;
  at::Tensor grid = at::zeros({3, rows * h, cols * w}, at::kByte);
  for (int64_t i = 0; i < n; ++i)
    grid.narrow(1, (i / cols) * h, h).narrow(2, (i % cols) * w, w).copy_(images_u8[i]);
  return grid;
}

}  // namespace diffbench::demo
