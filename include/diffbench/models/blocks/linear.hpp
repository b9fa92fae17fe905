#pragma once

#include <vector>

#include <torch/nn/modules/linear.h>

namespace diffbench {

// y = x·Wᵀ + b through at::linear, which hands an input of any rank to one GEMM with the bias added
// in the GEMM's epilogue. torch::nn::Linear's own C++ forward multiplies first and adds the bias in a
// second, broadcasting pass over the output whenever the input has more than two dimensions (on the
// H100 that pass was 11 % of the UNet's GPU time at batch 1).
inline at::Tensor linear(const torch::nn::Linear& m, const at::Tensor& x) { return at::linear(x, m->weight, m->bias); }

// Linear layers that read the same input, their weights (and biases) the row blocks of one tensor:
// one GEMM computes every layer's output, layer i's in the columns after layers 0..i-1's. The owner
// makes it when the model is made; loading then fills the blocks through the layers' own parameters.
// The owner passes the same layers, in the same order, to intact() before each use.
class RowFusedLinears {
 public:
  RowFusedLinears() = default;
  // Moves the layers' weights (and biases: all or none have one) into one tensor each, every layer's
  // parameters becoming views of its row block. Under a ParameterTarget nothing is copied.
  explicit RowFusedLinears(const std::vector<torch::nn::Linear>& layers);
  // Whether the layers can be fused: all or none with a bias, all reading inputs of one width.
  static bool fusable(const std::vector<torch::nn::Linear>& layers);

  // False when a layer has left its block (moved to another device or dtype, or given other tensors)
  // or a gradient is wanted (training needs each layer's own): then run the layers one by one.
  bool intact(const std::vector<torch::nn::Linear>& layers) const;
  // [..., Σ out_features]
  at::Tensor forward(const at::Tensor& x) const { return at::linear(x, weight_, bias_); }
  const at::Tensor& weight() const { return weight_; }

 private:
  at::Tensor weight_, bias_;
};

}  // namespace diffbench
