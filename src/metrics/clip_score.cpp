#include "diffbench/metrics/clip_score.hpp"

#include <algorithm>
#include <unordered_map>

#include <torch/torch.h>

#include "diffbench/error.hpp"
#include "diffbench/metrics/preprocess.hpp"
#include "diffbench/models/clip_embedder.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "util/parallel.hpp"

namespace diffbench {

namespace fs = std::filesystem;

ClipScoreMode parse_clip_score_mode(const std::string& name) {
  if (name == "per-sample-clamp") return ClipScoreMode::PerSampleClamp;
  if (name == "mean-clamp") return ClipScoreMode::MeanClamp;
  throw UsageError("unknown CLIP score mode '" + name + "' (per-sample-clamp or mean-clamp)", "--clip-score");
}

std::string to_string(ClipScoreMode mode) {
  return mode == ClipScoreMode::PerSampleClamp ? "per-sample-clamp" : "mean-clamp";
}

struct ClipScorer::Impl {
  fs::path dir;
  std::unique_ptr<ClipEmbedder> model;
  std::optional<ClipTokenizer> tokenizer;
  at::Device device = at::kCPU;
  std::unordered_map<std::string, at::Tensor> text_features;  // per prompt: [E], unit norm, float32
};

ClipScorer::ClipScorer(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipScorer::~ClipScorer() = default;

std::unique_ptr<ClipScorer> ClipScorer::load(const fs::path& dir, const at::Device& device,
                                             std::optional<at::ScalarType> dtype) {
  auto impl = std::make_unique<Impl>();
  impl->dir = dir;
  impl->device = device;
  const at::ScalarType type = dtype ? *dtype : device.is_cuda() ? at::kHalf : at::kFloat;
  impl->model = load_clip_embedder(impl->dir, at::TensorOptions().device(device).dtype(type));
  impl->model->to(device, type);  // the buffers
  impl->model->module().eval();
  TokenizerOptions topt;
  topt.max_length = static_cast<int>(impl->model->context_length());
  if (impl->model->layout() == "open_clip")
    impl->tokenizer.emplace(ClipTokenizer::open_clip(impl->dir, topt));
  else
    impl->tokenizer.emplace(ClipTokenizer::from_dir(impl->dir, topt));
  return std::unique_ptr<ClipScorer>(new ClipScorer(std::move(impl)));
}

const fs::path& ClipScorer::path() const { return impl_->dir; }
std::string ClipScorer::layout() const { return impl_->model->layout(); }

double ClipScorer::logit_scale() const {
  const auto params = impl_->model->module().named_parameters(/*recurse=*/false);
  const at::Tensor* scale = params.find("logit_scale");
  if (!scale) throw ModelError("the checkpoint has no logit_scale", impl_->dir.string());
  return scale->item<double>();
}

namespace {

void check_images(const at::Tensor& images_u8) {
  if (images_u8.dim() != 4 || images_u8.size(1) != 3 || images_u8.scalar_type() != at::kByte)
    throw InputError("CLIP scoring needs uint8 images [N,3,H,W]", "images");
}

void check_images(const std::vector<at::Tensor>& images_u8) {
  for (const auto& img : images_u8)
    if (img.dim() != 3 || img.size(0) != 3 || img.scalar_type() != at::kByte)
      throw InputError("CLIP scoring needs uint8 images [3,H,W]", "images");
}

}  // namespace

at::Tensor ClipScorer::image_embeddings(const std::vector<at::Tensor>& images_u8, int batch_size) const {
  c10::InferenceMode guard;
  const ClipImageSpec spec = impl_->model->image_spec();
  // Each layout crops as its reference library does (they differ by a pixel for some sizes).
  const CenterCrop crop = impl_->model->layout() == "open_clip" ? CenterCrop::Torchvision : CenterCrop::Transformers;
  std::vector<at::Tensor> out;
  const auto count = static_cast<int64_t>(images_u8.size());
  for (int64_t first = 0; first < count; first += batch_size) {
    const int64_t n = std::min<int64_t>(count - first, batch_size);
    std::vector<at::Tensor> pixels(static_cast<size_t>(n));
    parallel_for(pixels.size(), [&](size_t i) {  // Pillow's resampling on the CPU, an image per core
      pixels[i] = clip_preprocess(images_u8[static_cast<size_t>(first) + i], spec.size, spec.mean, spec.std, crop);
    });
    at::Tensor img = impl_->model->image_features(at::stack(pixels).to(impl_->device)).to(at::kFloat);
    out.push_back(img / img.norm(2, -1, true));
  }
  return at::cat(out);
}

at::Tensor ClipScorer::text_embeddings(const std::vector<std::string>& prompts, int batch_size) const {
  c10::InferenceMode guard;
  auto& cache = impl_->text_features;
  std::vector<std::string> todo;  // distinct prompts not encoded yet, in order
  for (const auto& p : prompts)
    if (!cache.count(p) && std::find(todo.begin(), todo.end(), p) == todo.end()) todo.push_back(p);
  const int64_t eos = impl_->tokenizer->eos_id();
  for (size_t first = 0; first < todo.size(); first += static_cast<size_t>(batch_size)) {
    const size_t n = std::min(todo.size() - first, static_cast<size_t>(batch_size));
    const std::vector<std::string> texts(todo.begin() + first, todo.begin() + first + n);
    at::Tensor ids = impl_->tokenizer->encode_batch(texts);  // [n, L]
    // Attention: 1 up to and including the first end-of-text token.
    at::Tensor is_eos = ids.eq(eos).to(at::kLong);
    at::Tensor mask = (is_eos.cumsum(1) - is_eos).eq(0).to(at::kLong);
    at::Tensor txt = impl_->model->text_features(ids.to(impl_->device), mask.to(impl_->device)).to(at::kFloat);
    txt = txt / txt.norm(2, -1, true);
    for (size_t i = 0; i < n; ++i) cache[texts[i]] = txt[static_cast<int64_t>(i)];
  }
  std::vector<at::Tensor> out;
  for (const auto& p : prompts) out.push_back(cache.at(p));
  return at::stack(out);
}

void ClipScorer::warm_up(const std::vector<std::string>& prompts, int images_per_call, int batch_size) const {
  text_embeddings(prompts, batch_size);
  const int64_t size = impl_->model->image_spec().size;
  const std::vector<at::Tensor> blank(static_cast<size_t>(std::max(images_per_call, 1)),
                                      at::zeros({3, size, size}, at::kByte));
  image_embeddings(blank, std::min(images_per_call, batch_size)).cpu();
}

std::vector<double> ClipScorer::score(const at::Tensor& images_u8, const std::vector<std::string>& prompts,
                                      int batch_size) const {
  check_images(images_u8);
  return score(images_u8.cpu().unbind(0), prompts, batch_size);  // one copy off the device, not one per image
}

std::vector<double> ClipScorer::score(const std::vector<at::Tensor>& images_u8, const std::vector<std::string>& prompts,
                                      int batch_size) const {
  check_images(images_u8);
  if (images_u8.size() != prompts.size())
    throw InputError(std::to_string(images_u8.size()) + " images but " + std::to_string(prompts.size()) + " prompts",
                     "images");
  c10::InferenceMode guard;
  std::vector<double> scores;
  for (size_t first = 0; first < prompts.size(); first += static_cast<size_t>(batch_size)) {
    const int64_t n = static_cast<int64_t>(std::min(prompts.size() - first, static_cast<size_t>(batch_size)));
    const std::vector<std::string> texts(prompts.begin() + first, prompts.begin() + first + n);
    const std::vector<at::Tensor> chunk(images_u8.begin() + static_cast<int64_t>(first),
                                        images_u8.begin() + static_cast<int64_t>(first) + n);
    at::Tensor img = image_embeddings(chunk, batch_size);
    at::Tensor txt = text_embeddings(texts, batch_size);
    at::Tensor s = (100.0 * (img * txt).sum(-1)).to(at::kDouble).cpu();
    for (int64_t i = 0; i < s.size(0); ++i) scores.push_back(s[i].item<double>());
  }
  return scores;
}

at::Tensor ClipScorer::similarity(const at::Tensor& images_u8, const std::vector<std::string>& prompts,
                                  int batch_size) const {
  check_images(images_u8);
  if (prompts.empty()) throw InputError("no prompts to compare the images with", "prompts");
  c10::InferenceMode guard;
  at::Tensor img = image_embeddings(images_u8.unbind(0), batch_size);
  at::Tensor txt = text_embeddings(prompts, batch_size);
  return (100.0 * img.matmul(txt.t())).to(at::kDouble).cpu();
}

double ClipScorer::aggregate(const std::vector<double>& scores, ClipScoreMode mode) {
  if (scores.empty()) return 0.0;
  double sum = 0;
  for (double s : scores) sum += mode == ClipScoreMode::PerSampleClamp ? std::max(s, 0.0) : s;
  const double mean = sum / static_cast<double>(scores.size());
  return mode == ClipScoreMode::MeanClamp ? std::max(mean, 0.0) : mean;
}

}  // namespace diffbench
