// GEGLU's gating, fused: out[m, d] = y[m, d] * gelu(y[m, D + d]) for y = proj(x) of shape [M, 2D]
// (diffusers' GEGLU: hidden, gate = proj(x).chunk(2, -1); hidden * gelu(gate), exact erf GELU).
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "convert.cuh"
#include "geglu.hpp"

namespace diffbench::kernels {

namespace {

template <typename T>
__global__ void geglu_kernel(const T* __restrict__ y, T* __restrict__ out, size_t total, int D) {
  for (size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x * 8) {
    const size_t m = i / D, d = i % D;
    const T* row = y + m * 2 * D;
    uint4 hv = *reinterpret_cast<const uint4*>(row + d);
    uint4 gv = *reinterpret_cast<const uint4*>(row + D + d);
    const T* h = reinterpret_cast<const T*>(&hv);
    const T* g = reinterpret_cast<const T*>(&gv);
    uint4 ov;
    T* o = reinterpret_cast<T*>(&ov);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float gate = to_float(g[k]);
      const float gelu = 0.5f * gate * (1.f + erff(gate * 0.70710678118654752f));
      o[k] = from_float<T>(to_float(h[k]) * gelu);
    }
    *reinterpret_cast<uint4*>(out + i) = ov;
  }
}

}  // namespace

at::Tensor geglu(const at::Tensor& y) {
  const int64_t D = y.size(-1) / 2;
  if (!y.is_contiguous() || D % 8 != 0 || (y.scalar_type() != at::kHalf && y.scalar_type() != at::kBFloat16)) {
    auto parts = y.chunk(2, -1);
    return parts[0] * at::gelu(parts[1]);
  }
  const c10::cuda::CUDAGuard guard(y.device());
  auto sizes = y.sizes().vec();
  sizes.back() = D;
  at::Tensor out = at::empty(sizes, y.options());
  const size_t total = static_cast<size_t>(out.numel());
  const int threads = 256;
  const int blocks = static_cast<int>(std::min<size_t>((total / 8 + threads - 1) / threads, 65535));
  auto stream = at::cuda::getCurrentCUDAStream();
  if (y.scalar_type() == at::kHalf)
    geglu_kernel<__half><<<blocks, threads, 0, stream>>>(reinterpret_cast<const __half*>(y.data_ptr()),
                                                         reinterpret_cast<__half*>(out.data_ptr()), total, static_cast<int>(D));
  else
    geglu_kernel<__nv_bfloat16><<<blocks, threads, 0, stream>>>(reinterpret_cast<const __nv_bfloat16*>(y.data_ptr()),
                                                                reinterpret_cast<__nv_bfloat16*>(out.data_ptr()), total,
                                                                static_cast<int>(D));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace diffbench::kernels
