#pragma once

#include <vector>

#include <torch/nn/modules/linear.h>

namespace diffbench {

// gemm: y = x·wᵀ + b (b optional) for x [..., K], w [N, K]: one GEMM for an input of any rank, the bias added
// in the GEMM's epilogue. torch::nn::Linear's own C++ forward multiplies first and adds the bias in a
// second, broadcasting pass over the output whenever the input has more than two dimensions (on the
// H100 that pass was 11 % of the UNet's GPU time at batch 1). In the CUDA build, half inputs whose shape
// the table of planned GEMMs has for this GPU model and cuBLASLt version run that table's cuBLASLt
// algorithm (chosen ahead of time, the same in every process: src/kernels/gemm_plans.inc); everything
// else, and everything with DIFFBENCH_PLANNED_GEMM=0, runs at::linear.
at::Tensor gemm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b = {});
inline at::Tensor linear(const torch::nn::Linear& m, const at::Tensor& x) { return gemm(x, m->weight, m->bias); }

// acc += x·wᵀ in place (acc [..., N] contiguous, as many rows as x [..., K]): the GEMM accumulating onto
// its output, planned as gemm() is.
void gemm_onto(const at::Tensor& acc, const at::Tensor& x, const at::Tensor& w);

// Whether gemm (with a bias or not) or gemm_onto would run a planned algorithm for these operands.
bool has_gemm_plan(const at::Tensor& x, const at::Tensor& w, bool bias, bool onto = false);
// How many planned GEMM shapes apply on this device (its GPU model, the loaded cuBLASLt): 0 on the CPU,
// in a build without the CUDA kernels, on a GPU the table lacks, or with DIFFBENCH_PLANNED_GEMM=0.
int gemm_plan_rows(const at::Device& device);

// dtype "fp8": a weight matrix in float8 e4m3 with one float32 scale, w ≈ scale · w8. Made once, after
// loading (and fusing LoRAs): the layer's weight must not change afterwards.
struct Fp8Matrix {
  at::Tensor w8;     // [N, K] float8_e4m3fn, contiguous
  at::Tensor scale;  // float32, one element, on w8's device
  bool defined() const { return w8.defined(); }
  // w [N, K] quantized by its largest magnitude; an undefined result when N or K is not a multiple of
  // 16 (what CUDA's fp8 GEMMs take), and those layers keep multiplying in the activations' dtype.
  static Fp8Matrix of(const at::Tensor& w);
};

// gemm / gemm_onto with the weight's fp8 form when w8 is defined: x quantized to e4m3 with one scale from
// its largest magnitude (per call), multiplied by w8 with float accumulation, the result in x's dtype
// (on the GPU LibTorch's _scaled_mm, cuBLASLt's fp8 GEMM; on the CPU the same e4m3 operands multiplied in
// x's dtype). Undefined w8: the plain forms above, with w.
at::Tensor gemm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const Fp8Matrix& w8);
void gemm_onto(const at::Tensor& acc, const at::Tensor& x, const at::Tensor& w, const Fp8Matrix& w8);
// A layer's output by its fp8 form (undefined: its own weight).
inline at::Tensor linear(const torch::nn::Linear& m, const at::Tensor& x, const Fp8Matrix& w8) {
  return gemm(x, m->weight, m->bias, w8);
}

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
  at::Tensor forward(const at::Tensor& x) const { return gemm(x, weight_, bias_, fp8_); }
  const at::Tensor& weight() const { return weight_; }
  // dtype "fp8": the fused weight's fp8 form (one scale for all the layers), used by forward from now on.
  void use_fp8() { fp8_ = Fp8Matrix::of(weight_); }

 private:
  at::Tensor weight_, bias_;
  Fp8Matrix fp8_;
};

}  // namespace diffbench
