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

at::Tensor group_norm_act(const at::Tensor& x, torch::nn::GroupNorm& norm, bool silu) {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  const auto& o = norm->options;
  if (x.is_cuda() && x.dim() == 4 && (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16) &&
      x.is_contiguous(at::MemoryFormat::ChannelsLast) && o.affine() && x.size(1) % o.num_groups() == 0)
    return kernels::group_norm_nhwc(x, norm->weight, norm->bias, o.num_groups(), o.eps(), silu);
#endif
  at::Tensor y = norm(x);
  return silu ? at::silu(y) : y;
}

}  // namespace diffbench
