#include "diffbench/models/blocks/layers.hpp"

#include <vector>

namespace diffbench {

namespace nn = torch::nn;

namespace {

thread_local std::optional<at::TensorOptions> tls_target;

// LibTorch's constructors allocate and initialise at the shapes in their options. Here each layer is
// first made at the smallest shape its checks accept (one channel or feature: initialising that costs
// nothing), given its real options back, and its parameters replaced by uninitialised tensors on the
// target.
void replace(at::Tensor& parameter, at::IntArrayRef shape, const at::TensorOptions& target) {
  if (parameter.defined()) parameter.set_data(at::empty(shape, target));
}

}  // namespace

ParameterTarget::ParameterTarget(at::TensorOptions options) : previous_(tls_target) { tls_target = options; }
ParameterTarget::~ParameterTarget() { tls_target = previous_; }
std::optional<at::TensorOptions> ParameterTarget::current() { return tls_target; }

nn::Linear make_linear(const nn::LinearOptions& options) {
  const auto target = ParameterTarget::current();
  if (!target) return nn::Linear(options);
  nn::Linear m(nn::LinearOptions(1, 1).bias(options.bias()));
  m->options = options;
  replace(m->weight, {options.out_features(), options.in_features()}, *target);
  replace(m->bias, {options.out_features()}, *target);
  return m;
}

nn::Conv2d make_conv2d(const nn::Conv2dOptions& options) {
  const auto target = ParameterTarget::current();
  if (!target) return nn::Conv2d(options);
  nn::Conv2dOptions small = options;
  small.in_channels(options.groups()).out_channels(options.groups());  // weight [groups, 1, kh, kw]
  nn::Conv2d m(small);
  m->options.in_channels(options.in_channels()).out_channels(options.out_channels());  // the rest is as given
  const auto& k = options.kernel_size();
  replace(m->weight, {options.out_channels(), options.in_channels() / options.groups(), k->at(0), k->at(1)}, *target);
  replace(m->bias, {options.out_channels()}, *target);
  return m;
}

nn::GroupNorm make_group_norm(const nn::GroupNormOptions& options) {
  const auto target = ParameterTarget::current();
  if (!target) return nn::GroupNorm(options);
  nn::GroupNormOptions small = options;
  small.num_groups(1).num_channels(1);
  nn::GroupNorm m(small);
  m->options = options;
  replace(m->weight, {options.num_channels()}, *target);
  replace(m->bias, {options.num_channels()}, *target);
  return m;
}

nn::LayerNorm make_layer_norm(const nn::LayerNormOptions& options) {
  const auto target = ParameterTarget::current();
  if (!target) return nn::LayerNorm(options);
  nn::LayerNormOptions small = options;
  small.normalized_shape(std::vector<int64_t>{1});
  nn::LayerNorm m(small);
  m->options = options;
  replace(m->weight, options.normalized_shape(), *target);
  replace(m->bias, options.normalized_shape(), *target);
  return m;
}

nn::Embedding make_embedding(const nn::EmbeddingOptions& options) {
  const auto target = ParameterTarget::current();
  if (!target || options._weight().defined()) return nn::Embedding(options);
  nn::EmbeddingOptions small = options;
  small.num_embeddings(1).embedding_dim(1).padding_idx(std::nullopt);
  nn::Embedding m(small);
  m->options = options;
  replace(m->weight, {options.num_embeddings(), options.embedding_dim()}, *target);
  return m;
}

at::Tensor parameter_tensor(at::IntArrayRef shape, double fill) {
  const auto target = ParameterTarget::current();
  if (target) return at::empty(shape, *target);
  return at::full(shape, fill);
}

}  // namespace diffbench
