// The sub-pixel upsampler's interleave (see subpixel.hpp). LibTorch writes it as a broadcast add over a
// 6-dimensional strided view, which its elementwise kernel does one value at a time with index arithmetic
// per value; here one thread moves 16 bytes: both runs of C channels are contiguous in channels-last.
#include <cstdint>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "convert.cuh"
#include "subpixel.hpp"

namespace diffbench::kernels {

namespace {

constexpr int kThreads = 256;

// One thread per 16-byte vector of the output [N, 2H, 2W, C] (channels-last memory).
template <typename T>
__global__ void interleave_kernel(const T* __restrict__ y, const T* __restrict__ bias, T* __restrict__ out,
                                  int64_t vectors, int64_t h, int64_t w, int64_t c) {
  constexpr int V = 16 / sizeof(T);
  const int64_t idx = static_cast<int64_t>(blockIdx.x) * kThreads + threadIdx.x;
  if (idx >= vectors) return;
  const int64_t cv = c / V, v = idx % cv;
  int64_t p = idx / cv;  // output pixel
  const int64_t ox = p % (2 * w);
  p /= 2 * w;
  const int64_t oy = p % (2 * h), n = p / (2 * h);
  const int64_t a = oy & 1, b = ox & 1;
  const int64_t src = ((n * (h + 1) + (oy >> 1) + a) * (w + 1) + (ox >> 1) + b) * 4 * c + (2 * a + b) * c + v * V;
  uint4 q = *reinterpret_cast<const uint4*>(y + src);
  if (bias) {
    const uint4 bq = *reinterpret_cast<const uint4*>(bias + v * V);
    T* e = reinterpret_cast<T*>(&q);
    const T* be = reinterpret_cast<const T*>(&bq);
#pragma unroll
    for (int k = 0; k < V; ++k) e[k] = from_float<T>(to_float(e[k]) + to_float(be[k]));
  }
  *reinterpret_cast<uint4*>(out + idx * V) = q;
}

}  // namespace

bool subpixel_interleave_supported(const at::Tensor& y, const at::Tensor& bias) {
  if (!y.is_cuda() || y.dim() != 4 || y.size(1) % 4 != 0 || y.size(2) < 2 || y.size(3) < 2) return false;
  const auto type = y.scalar_type();
  if (type != at::kHalf && type != at::kBFloat16 && type != at::kFloat) return false;
  const int64_t c = y.size(1) / 4, v = 16 / static_cast<int64_t>(y.element_size());
  if (c % v != 0 || !y.is_contiguous(at::MemoryFormat::ChannelsLast) || !aligned16(y)) return false;
  return !bias.defined() || (bias.scalar_type() == type && bias.device() == y.device() && bias.numel() == c &&
                             bias.is_contiguous() && aligned16(bias));
}

at::Tensor subpixel_interleave(const at::Tensor& y, const at::Tensor& bias) {
  TORCH_CHECK(subpixel_interleave_supported(y, bias), "subpixel_interleave: unsupported input");
  const c10::cuda::CUDAGuard guard(y.device());
  const int64_t n = y.size(0), c = y.size(1) / 4, h = y.size(2) - 1, w = y.size(3) - 1;
  at::Tensor out = at::empty({n, c, 2 * h, 2 * w}, y.options().memory_format(at::MemoryFormat::ChannelsLast));
  const int64_t vectors = out.numel() * static_cast<int64_t>(y.element_size()) / 16;
  if (vectors == 0) return out;
  const auto blocks = static_cast<unsigned>((vectors + kThreads - 1) / kThreads);
  auto stream = at::cuda::getCurrentCUDAStream();
  auto go = [&](auto zero) {
    using T = decltype(zero);
    interleave_kernel<T><<<blocks, kThreads, 0, stream>>>(
        reinterpret_cast<const T*>(y.data_ptr()),
        bias.defined() ? reinterpret_cast<const T*>(bias.data_ptr()) : nullptr, reinterpret_cast<T*>(out.data_ptr()),
        vectors, h, w, c);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  if (y.scalar_type() == at::kHalf)
    go(__half{});
  else if (y.scalar_type() == at::kBFloat16)
    go(__nv_bfloat16{});
  else
    go(float{});
  return out;
}

}  // namespace diffbench::kernels
