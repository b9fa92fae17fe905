// Timestep embeddings: diffusers' sinusoidal `Timesteps` projection and `TimestepEmbedding` MLP.
#pragma once

#include <torch/nn/module.h>
#include <torch/nn/modules/linear.h>
#include <torch/nn/pimpl.h>

namespace diffbench {

// Sinusoidal embedding of `timesteps` ([N], any numeric dtype) into [N, dim] float32, as
// diffusers' get_timestep_embedding: frequencies exp(-ln(max_period) * i / (dim/2 - shift)),
// [sin, cos] (or [cos, sin] when flip_sin_to_cos), zero-padded when dim is odd.
at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                              double downscale_freq_shift, double scale = 1.0, double max_period = 10000.0);

// linear_1 -> SiLU -> linear_2.
class TimestepEmbeddingImpl : public torch::nn::Module {
 public:
  TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim);
  at::Tensor forward(const at::Tensor& x);  // [B, in] -> [B, time_embed_dim]

 private:
  torch::nn::Linear linear_1{nullptr}, linear_2{nullptr};
};
TORCH_MODULE(TimestepEmbedding);

}  // namespace diffbench
