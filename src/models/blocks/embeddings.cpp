#include "diffbench/models/blocks/embeddings.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"

#include <cmath>

namespace diffbench {

at::Tensor timestep_embedding(const at::Tensor& timesteps, int64_t dim, bool flip_sin_to_cos,
                              double downscale_freq_shift, double scale, double max_period) {
  const int64_t half = dim / 2;
  at::Tensor exponent =
      at::arange(0, half, at::TensorOptions().dtype(at::kFloat).device(timesteps.device())) * (-std::log(max_period));
  exponent = exponent / (static_cast<double>(half) - downscale_freq_shift);
  at::Tensor freqs = at::exp(exponent);                                   // [half]
  at::Tensor args = timesteps.unsqueeze(1).to(at::kFloat) * freqs.unsqueeze(0);  // [N, half]
  if (scale != 1.0) args = args * scale;
  at::Tensor emb = flip_sin_to_cos ? at::cat({at::cos(args), at::sin(args)}, -1)
                                   : at::cat({at::sin(args), at::cos(args)}, -1);  // [N, 2*half]
  if (dim % 2 == 1) emb = at::constant_pad_nd(emb, {0, 1});
  return emb;
}

TimestepEmbeddingImpl::TimestepEmbeddingImpl(int64_t in_channels, int64_t time_embed_dim) {
  linear_1 = register_module("linear_1", make_linear(in_channels, time_embed_dim));
  linear_2 = register_module("linear_2", make_linear(time_embed_dim, time_embed_dim));
}

at::Tensor TimestepEmbeddingImpl::forward(const at::Tensor& x) { return linear(linear_2, at::silu(linear(linear_1, x))); }

}  // namespace diffbench
