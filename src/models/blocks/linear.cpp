#include "diffbench/models/blocks/linear.hpp"

#include <algorithm>
#include <stdexcept>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "diffbench/models/blocks/layers.hpp"

namespace diffbench {

namespace {

// Replaces each tensor by its row block of one new tensor (a concatenation of them, or uninitialised
// under a ParameterTarget, where the loader fills the blocks) and returns that tensor.
at::Tensor fuse_rows(const std::vector<at::Tensor*>& parts) {
  std::vector<at::Tensor> values;
  for (const auto* p : parts) values.push_back(*p);
  at::Tensor fused;
  if (ParameterTarget::current()) {
    int64_t rows = 0;
    for (const auto& v : values) rows += v.size(0);
    std::vector<int64_t> shape(values[0].sizes().begin(), values[0].sizes().end());
    shape[0] = rows;
    fused = at::empty(shape, values[0].options());
  } else {
    fused = at::cat(values, 0);
  }
  int64_t row = 0;
  for (auto* p : parts) {
    const int64_t n = p->size(0);
    p->set_data(fused.narrow(0, row, n));
    row += n;
  }
  return fused;
}

// Whether each tensor is still the next row block of `fused`.
bool still_rows_of(const at::Tensor& fused, const std::vector<const at::Tensor*>& parts) {
  int64_t offset = fused.storage_offset();
  for (const auto* p : parts) {
    if (!p->is_alias_of(fused) || p->storage_offset() != offset || !p->is_contiguous() || p->dim() != fused.dim() ||
        (p->dim() == 2 && p->size(1) != fused.size(1)))
      return false;
    offset += p->numel();
  }
  return offset == fused.storage_offset() + fused.numel();
}

}  // namespace

bool RowFusedLinears::fusable(const std::vector<torch::nn::Linear>& layers) {
  return !layers.empty() && std::all_of(layers.begin(), layers.end(), [&](const torch::nn::Linear& m) {
    return m->bias.defined() == layers[0]->bias.defined() && m->weight.size(1) == layers[0]->weight.size(1);
  });
}

RowFusedLinears::RowFusedLinears(const std::vector<torch::nn::Linear>& layers) {
  if (layers.empty()) return;
  if (!fusable(layers))
    throw std::invalid_argument("RowFusedLinears: the layers must all have a bias or none and read inputs of one width");
  const bool bias = layers[0]->bias.defined();
  std::vector<at::Tensor*> weights, biases;
  for (auto m : layers) {  // a copy of the holder: the parameters are changed
    weights.push_back(&m->weight);
    if (bias) biases.push_back(&m->bias);
  }
  torch::NoGradGuard no_grad;
  weight_ = fuse_rows(weights);
  if (bias) bias_ = fuse_rows(biases);
}

bool RowFusedLinears::intact(const std::vector<torch::nn::Linear>& layers) const {
  if (!weight_.defined() || layers.empty()) return false;
  if (at::GradMode::is_enabled() && layers[0]->weight.requires_grad()) return false;
  std::vector<const at::Tensor*> weights, biases;
  for (const auto& m : layers) {
    weights.push_back(&m->weight);
    if (m->bias.defined() != bias_.defined()) return false;
    if (bias_.defined()) biases.push_back(&m->bias);
  }
  return still_rows_of(weight_, weights) && (!bias_.defined() || still_rows_of(bias_, biases));
}

}  // namespace diffbench
