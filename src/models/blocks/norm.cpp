#include "diffbench/models/blocks/norm.hpp"

#include "kernels/group_norm.hpp"

namespace diffbench {

bool have_fused_group_norm() {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

bool fused_nhwc(const at::Tensor& x) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  return x.is_cuda() && x.dim() == 4 && (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16) &&
         x.is_contiguous(at::MemoryFormat::ChannelsLast);
#else
  (void)x;
  return false;
#endif
}

at::Tensor group_norm_act(const at::Tensor& x, torch::nn::GroupNorm& norm, bool silu, const at::Tensor& shift) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  const auto& o = norm->options;
  if (fused_nhwc(x) && o.affine() && x.size(1) % o.num_groups() == 0)
    return kernels::group_norm_nhwc(x, norm->weight, norm->bias, o.num_groups(), o.eps(), silu, shift);
#endif
  const at::Tensor in = shift.defined() ? x + shift.view({shift.size(0), shift.size(1), 1, 1}).to(x.scalar_type()) : x;
  at::Tensor y = norm(in);
  return silu ? at::silu(y) : y;
}

at::Tensor bias_residual(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& residual, double scale) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (fused_nhwc(x)) return kernels::bias_residual_nhwc(x, bias, residual, scale);
#endif
  at::Tensor out = residual + (x + bias.view({1, -1, 1, 1}));
  return scale != 1.0 ? out * scale : out;
}

}  // namespace diffbench
