// LibTorch's layers, made either as LibTorch makes them (random initialisation, float32 on the CPU)
// or, while a ParameterTarget is alive on this thread, with their parameters allocated once,
// uninitialised, on the target device and dtype: a model that is about to be loaded from a
// checkpoint skips LibTorch's kaiming/normal initialisation (seconds of CPU time for a billion
// parameters, thrown away by the load) and the float32 CPU copy that a later .to() would move.
// Every model constructor makes its layers through these functions.
#pragma once

#include <optional>

#include <ATen/ATen.h>
#include <torch/nn/modules/conv.h>
#include <torch/nn/modules/embedding.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/modules/normalization.h>

namespace diffbench {

// While alive, layers made by the functions below (on this thread) get uninitialised parameters
// with `options` (device and dtype); they must then be loaded. Nests; restores the previous target.
class ParameterTarget {
 public:
  explicit ParameterTarget(at::TensorOptions options);
  ~ParameterTarget();
  ParameterTarget(const ParameterTarget&) = delete;
  ParameterTarget& operator=(const ParameterTarget&) = delete;
  // The innermost live target of this thread, if any.
  static std::optional<at::TensorOptions> current();

 private:
  std::optional<at::TensorOptions> previous_;
};

torch::nn::Linear make_linear(const torch::nn::LinearOptions& options);
inline torch::nn::Linear make_linear(int64_t in_features, int64_t out_features) {
  return make_linear(torch::nn::LinearOptions(in_features, out_features));
}
torch::nn::Conv2d make_conv2d(const torch::nn::Conv2dOptions& options);
torch::nn::GroupNorm make_group_norm(const torch::nn::GroupNormOptions& options);
torch::nn::LayerNorm make_layer_norm(const torch::nn::LayerNormOptions& options);
torch::nn::Embedding make_embedding(const torch::nn::EmbeddingOptions& options);
inline torch::nn::Embedding make_embedding(int64_t num_embeddings, int64_t embedding_dim) {
  return make_embedding(torch::nn::EmbeddingOptions(num_embeddings, embedding_dim));
}

// A tensor for register_parameter: uninitialised on the target under a ParameterTarget, else
// float32 on the CPU filled with `fill`.
at::Tensor parameter_tensor(at::IntArrayRef shape, double fill = 0.0);

}  // namespace diffbench
