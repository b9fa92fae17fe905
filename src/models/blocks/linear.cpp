#include "diffbench/models/blocks/linear.hpp"

#include <algorithm>
#include <cmath>
#include <optional>
#include <utility>
#include <stdexcept>

#include <ATen/ATen.h>
#include <torch/csrc/autograd/grad_mode.h>

#include "diffbench/models/blocks/layers.hpp"
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
#include "kernels/planned_gemm.hpp"
#endif
#include "util/ab_switch.hpp"

namespace diffbench {

namespace {

#ifdef DIFFBENCH_WITH_CUDA_KERNELS
// The table's plan for x [..., K]·w[N, K]ᵀ, or nullptr: half CUDA operands, contiguous rows, no gradient.
const kernels::GemmPlan* plan_for(const at::Tensor& x, const at::Tensor& w, kernels::GemmEpilogue epilogue) {
  if (!x.is_cuda() || w.device() != x.device() || x.scalar_type() != at::kHalf || w.scalar_type() != at::kHalf ||
      w.dim() != 2 || x.dim() < 1 || x.size(-1) != w.size(1) || !w.is_contiguous() || x.numel() == 0 ||
      at::GradMode::is_enabled() || !ab_switch_on("DIFFBENCH_PLANNED_GEMM"))
    return nullptr;
  return kernels::find_gemm_plan(x, x.numel() / w.size(1), w.size(0), w.size(1), epilogue);
}

bool plannable_bias(const at::Tensor& b, const at::Tensor& w) {
  return b.dim() == 1 && b.size(0) == w.size(0) && b.scalar_type() == at::kHalf && b.is_contiguous() &&
         b.device() == w.device();
}
#endif

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

at::Tensor gemm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  const auto epilogue = b.defined() ? kernels::GemmEpilogue::kBias : kernels::GemmEpilogue::kNone;
  if (const kernels::GemmPlan* plan = plan_for(x, w, epilogue); plan && (!b.defined() || plannable_bias(b, w))) {
    const at::Tensor x2d = x.reshape({-1, w.size(1)});  // a view for the layouts the UNet passes
    if (x2d.is_contiguous()) {
      std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
      sizes.back() = w.size(0);
      const at::Tensor out = at::empty(sizes, x.options());
      at::Tensor out2d = out.view({-1, w.size(0)});
      if (kernels::run_gemm_plan(*plan, x2d, w, b, out2d)) return out;
    }
  }
#endif
  return at::linear(x, w, b);
}

void gemm_onto(const at::Tensor& acc, const at::Tensor& x, const at::Tensor& w) {
  at::Tensor acc2d = acc.view({-1, acc.size(-1)});
  const at::Tensor x2d = x.reshape({-1, x.size(-1)});
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (const kernels::GemmPlan* plan = plan_for(x, w, kernels::GemmEpilogue::kAccumulate);
      plan && x2d.is_contiguous() && acc2d.is_contiguous() && acc.scalar_type() == at::kHalf &&
      acc2d.size(0) == x2d.size(0) && acc2d.size(1) == w.size(0) &&
      kernels::run_gemm_plan(*plan, x2d, w, {}, acc2d))
    return;
#endif
  acc2d.addmm_(x2d, w.t());  // beta = 1
}

namespace {

constexpr double kE4m3Max = 448.0;  // float8_e4m3fn's largest finite value; from 464 on a conversion gives NaN

// x in e4m3, its largest magnitude mapped to 448, and the float32 scale that undoes that. The scale is
// rounded to x's dtype (at least its smallest normal number, so never a division by zero) and x is divided
// by that value in its own dtype, the result written as e4m3; the GEMM multiplies back by the same value.
// A quotient can exceed 448 by the scale's rounding: e4m3's conversion rounds anything below 464 to 448.
// Four kernels in float32 (the largest magnitude, two on the scale, the division), six in half.
std::pair<at::Tensor, at::Tensor> to_e4m3(const at::Tensor& x) {
  const double smallest = x.scalar_type() == at::kHalf ? 6.103515625e-05 : 1e-30;
  at::Tensor scale = at::linalg_vector_norm(x, INFINITY, std::nullopt, false, at::kFloat);  // max |x|
  scale.mul_(1.0 / kE4m3Max).clamp_min_(smallest);
  const at::Tensor divisor = scale.to(x.scalar_type());
  at::Tensor q = at::empty(x.sizes(), x.options().dtype(at::kFloat8_e4m3fn));
  at::div_out(q, x, divisor);
  return {q, divisor.to(at::kFloat)};
}

}  // namespace

Fp8Matrix Fp8Matrix::of(const at::Tensor& w) {
  if (!w.defined() || w.dim() != 2 || w.size(0) % 16 != 0 || w.size(1) % 16 != 0 || w.numel() == 0) return {};
  torch::NoGradGuard no_grad;
  auto [w8, scale] = to_e4m3(w.to(at::kFloat));  // the scale from the float32 weight, not a rounded one
  return {w8.contiguous(), scale};
}

at::Tensor gemm(const at::Tensor& x, const at::Tensor& w, const at::Tensor& b, const Fp8Matrix& w8) {
  if (!w8.defined() || x.numel() == 0 || x.size(-1) != w8.w8.size(1) || x.device() != w8.w8.device())
    return gemm(x, w, b);
  const int64_t K = w8.w8.size(1), N = w8.w8.size(0);
  const auto dt = x.scalar_type();
  auto [x8, x_scale] = to_e4m3(x.reshape({-1, K}));
  at::Tensor y;
  if (x.is_cuda()) {
    std::optional<at::Tensor> bias;
    if (b.defined()) bias = b.to(dt);
    // w8ᵀ is column-major, as the fp8 GEMMs want their second operand
    y = at::_scaled_mm(x8.contiguous(), w8.w8.t(), x_scale, w8.scale, bias, {}, dt);
  } else {
    // The same e4m3 operands multiplied in x's dtype (exact products, float accumulation) as the GPU's
    // fp8 GEMM does: LibTorch's _scaled_mm on the CPU is a far slower reference kernel.
    y = at::linear(x8.to(dt).mul_(x_scale.to(dt)), w8.w8.to(dt).mul_(w8.scale.to(dt)), b);
  }
  std::vector<int64_t> sizes(x.sizes().begin(), x.sizes().end());
  sizes.back() = N;
  return y.view(sizes);
}

void gemm_onto(const at::Tensor& acc, const at::Tensor& x, const at::Tensor& w, const Fp8Matrix& w8) {
  if (!w8.defined()) return gemm_onto(acc, x, w);
  acc.add_(gemm(x, w, {}, w8));  // the fp8 GEMM does not accumulate onto its output
}

bool has_gemm_plan(const at::Tensor& x, const at::Tensor& w, bool bias, bool onto) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  using E = kernels::GemmEpilogue;
  return plan_for(x, w, onto ? E::kAccumulate : bias ? E::kBias : E::kNone) != nullptr;
#else
  (void)x, (void)w, (void)bias, (void)onto;
  return false;
#endif
}

int gemm_plan_rows(const at::Device& device) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (device.is_cuda() && ab_switch_on("DIFFBENCH_PLANNED_GEMM"))
    return kernels::gemm_plan_rows(device.has_index() ? device.index() : -1);
#endif
  (void)device;
  return 0;
}

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
