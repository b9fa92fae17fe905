// Residual add + LayerNorm, fused, for the transformer block's
//   x = attn(norm_i(x)) + x;  next input = norm_{i+1}(x)
// (with the attention's to_out bias added here when its GEMM left it out: cuBLASLt's bias epilogue
// makes it pick slower kernels for the 320-wide outputs).
// LibTorch does the add (read a and r, write y) and then the LayerNorm (read y, write n); here one warp
// per row reads a and r once, keeps the row in registers and writes y and n. The row's sums are a
// per-lane loop in a fixed order and an xor-butterfly over the warp's lanes, so every lane holds the
// same sum and every run the same bits (no atomics); mean first, then the variance of (y - mean) from
// the registers (two passes, no cancellation).
#include <cstdint>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "add_layer_norm.hpp"
#include "convert.cuh"

namespace diffbench::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;
constexpr int64_t kMaxC = 2048;

__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
  for (int off = 16; off > 0; off /= 2) v += __shfl_xor_sync(0xffffffffu, v, off);
  return v;
}

// Lane l of the row's warp owns the 16-byte vectors l, l + 32, ... (V values each, V = 8 for 16-bit
// types, 4 for float); Iters ≥ ceil(C / V / 32) of them. Without a (and y) it is r's LayerNorm alone.
template <typename T, int Iters>
__global__ void add_layer_norm_kernel(const T* __restrict__ a, const T* __restrict__ r, const T* __restrict__ w,
                                      const T* __restrict__ b, const T* __restrict__ extra,
                                      const T* __restrict__ a_bias, T* __restrict__ y,
                                      T* __restrict__ n, int64_t rows, int C, float eps) {
  constexpr int V = 16 / sizeof(T);
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;  // the whole warp leaves together
  const size_t base = static_cast<size_t>(row) * C;
  float v[Iters][V];
  float sum = 0.f;
#pragma unroll
  for (int it = 0; it < Iters; ++it) {
    const int c = (lane + it * 32) * V;
    if (c < C) {
      const uint4 av = a ? *reinterpret_cast<const uint4*>(a + base + c) : make_uint4(0, 0, 0, 0);
      const uint4 rv = *reinterpret_cast<const uint4*>(r + base + c);
      const T* ap = reinterpret_cast<const T*>(&av);
      const T* rp = reinterpret_cast<const T*>(&rv);
      uint4 yv;
      T* yp = reinterpret_cast<T*>(&yv);
      uint4 ev = make_uint4(0, 0, 0, 0), abv = make_uint4(0, 0, 0, 0);
      const T* ep = reinterpret_cast<const T*>(&ev);
      const T* abp = reinterpret_cast<const T*>(&abv);
      if (extra) ev = *reinterpret_cast<const uint4*>(extra + c);
      if (a_bias) abv = *reinterpret_cast<const uint4*>(a_bias + c);
#pragma unroll
      for (int k = 0; k < V; ++k) {
        // a's bias first, rounded as LibTorch's broadcast add rounds it; then the residual.
        const float ak = a_bias ? to_float(from_float<T>(to_float(ap[k]) + to_float(abp[k]))) : to_float(ap[k]);
        const T s = a ? from_float<T>(ak + to_float(rp[k])) : rp[k];  // LibTorch's add: in float, rounded
        v[it][k] = to_float(s);
        sum += v[it][k];
        yp[k] = extra ? from_float<T>(v[it][k] + to_float(ep[k])) : s;
      }
      if (y) *reinterpret_cast<uint4*>(y + base + c) = yv;
    }
  }
  const float mean = warp_sum(sum) / C;
  float sq = 0.f;
#pragma unroll
  for (int it = 0; it < Iters; ++it) {
    if ((lane + it * 32) * V < C) {
#pragma unroll
      for (int k = 0; k < V; ++k) {
        const float d = v[it][k] - mean;
        sq += d * d;
      }
    }
  }
  const float rstd = rsqrtf(warp_sum(sq) / C + eps);
#pragma unroll
  for (int it = 0; it < Iters; ++it) {
    const int c = (lane + it * 32) * V;
    if (c < C) {
      const uint4 wv = *reinterpret_cast<const uint4*>(w + c);
      const uint4 bv = *reinterpret_cast<const uint4*>(b + c);
      const T* wp = reinterpret_cast<const T*>(&wv);
      const T* bp = reinterpret_cast<const T*>(&bv);
      uint4 nv;
      T* np = reinterpret_cast<T*>(&nv);
#pragma unroll
      for (int k = 0; k < V; ++k) np[k] = from_float<T>((v[it][k] - mean) * rstd * to_float(wp[k]) + to_float(bp[k]));
      *reinterpret_cast<uint4*>(n + base + c) = nv;
    }
  }
}

template <typename T, int Iters>
void launch_rows(const at::Tensor& a, const at::Tensor& r, const at::Tensor& w, const at::Tensor& b,
                 const at::Tensor& extra, const at::Tensor& a_bias, at::Tensor& y, at::Tensor& n, int64_t rows, int C,
                 double eps) {
  const int64_t blocks = (rows + kWarpsPerBlock - 1) / kWarpsPerBlock;
  auto stream = at::cuda::getCurrentCUDAStream();
  const auto* ep = extra.defined() ? reinterpret_cast<const T*>(extra.data_ptr()) : nullptr;
  const auto* abp = a_bias.defined() ? reinterpret_cast<const T*>(a_bias.data_ptr()) : nullptr;
  add_layer_norm_kernel<T, Iters><<<static_cast<unsigned>(blocks), kWarpsPerBlock * 32, 0, stream>>>(
      a.defined() ? reinterpret_cast<const T*>(a.data_ptr()) : nullptr, reinterpret_cast<const T*>(r.data_ptr()),
      reinterpret_cast<const T*>(w.data_ptr()), reinterpret_cast<const T*>(b.data_ptr()), ep, abp,
      y.defined() ? reinterpret_cast<T*>(y.data_ptr()) : nullptr, reinterpret_cast<T*>(n.data_ptr()), rows, C,
      static_cast<float>(eps));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

// Registers for as few 16-byte vectors per lane as the row needs (C = 320, 640, 1280 in SD's UNets).
template <typename T>
void launch(const at::Tensor& a, const at::Tensor& r, const at::Tensor& w, const at::Tensor& b,
            const at::Tensor& extra, const at::Tensor& a_bias, at::Tensor& y, at::Tensor& n, int64_t rows, int C,
            double eps) {
  constexpr int V = 16 / sizeof(T);
  const int iters = (C / V + 31) / 32;
  if (iters <= 2)
    launch_rows<T, 2>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
  else if (iters <= 4)
    launch_rows<T, 4>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
  else if (iters <= 8)
    launch_rows<T, 8>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
  else
    launch_rows<T, 16>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
}

// launch<T> for the tensors' dtype (half, bfloat16 or float).
void launch_typed(const at::Tensor& a, const at::Tensor& r, const at::Tensor& w, const at::Tensor& b,
                  const at::Tensor& extra, const at::Tensor& a_bias, at::Tensor& y, at::Tensor& n, int64_t rows, int C,
                  double eps) {
  if (r.scalar_type() == at::kHalf)
    launch<__half>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
  else if (r.scalar_type() == at::kBFloat16)
    launch<__nv_bfloat16>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
  else
    launch<float>(a, r, w, b, extra, a_bias, y, n, rows, C, eps);
}

}  // namespace

std::pair<at::Tensor, at::Tensor> add_layer_norm(const at::Tensor& a, const at::Tensor& r, const at::Tensor& weight,
                                                 const at::Tensor& bias, double eps, const at::Tensor& extra,
                                                 const at::Tensor& a_bias) {
  const int64_t C = a.size(-1);
  const auto type = a.scalar_type();
  const bool fits = a.is_cuda() && a.sizes() == r.sizes() && type == r.scalar_type() &&
                    (type == at::kHalf || type == at::kBFloat16 || type == at::kFloat) && C % 8 == 0 && C <= kMaxC &&
                    a.is_contiguous() && r.is_contiguous() && aligned16(a) && aligned16(r) && weight.defined() &&
                    bias.defined() && weight.numel() == C && bias.numel() == C &&
                    (!extra.defined() || extra.numel() == C) && (!a_bias.defined() || a_bias.numel() == C);
  if (!fits) {
    at::Tensor y = (a_bias.defined() ? a + a_bias.to(type) : a) + r;
    at::Tensor n = at::layer_norm(y, {C}, weight, bias, eps);
    if (extra.defined()) y = y + extra.to(type);
    return {y, n};
  }
  const c10::cuda::CUDAGuard guard(a.device());
  // Fresh contiguous tensors are 16-byte aligned; a parameter of another dtype is converted once per call.
  const at::Tensor w = weight.to(type).contiguous(), b = bias.to(type).contiguous();
  const at::Tensor e = extra.defined() ? extra.to(type).contiguous() : at::Tensor();
  const at::Tensor ab = a_bias.defined() ? a_bias.to(type).contiguous() : at::Tensor();
  at::Tensor y = at::empty_like(a, at::MemoryFormat::Contiguous);
  at::Tensor n = at::empty_like(a, at::MemoryFormat::Contiguous);
  if (!aligned16(w) || !aligned16(b) || (e.defined() && !aligned16(e)) || (ab.defined() && !aligned16(ab))) {
    at::Tensor s = (ab.defined() ? a + ab : a) + r;
    return {e.defined() ? s + e : s, at::layer_norm(s, {C}, weight, bias, eps)};
  }
  const int64_t rows = a.numel() / C;
  if (rows == 0) return {y, n};
  launch_typed(a, r, w, b, e, ab, y, n, rows, static_cast<int>(C), eps);
  return {y, n};
}

at::Tensor layer_norm(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, double eps) {
  const int64_t C = x.size(-1);
  const auto type = x.scalar_type();
  const bool fits = x.is_cuda() && (type == at::kHalf || type == at::kBFloat16 || type == at::kFloat) && C % 8 == 0 &&
                    C <= kMaxC && x.is_contiguous() && aligned16(x) && weight.defined() && bias.defined() &&
                    weight.numel() == C && bias.numel() == C;
  if (!fits) return at::layer_norm(x, {C}, weight, bias, eps);
  const c10::cuda::CUDAGuard guard(x.device());
  const at::Tensor w = weight.to(type).contiguous(), b = bias.to(type).contiguous();
  if (!aligned16(w) || !aligned16(b)) return at::layer_norm(x, {C}, weight, bias, eps);
  at::Tensor n = at::empty_like(x, at::MemoryFormat::Contiguous);
  const int64_t rows = x.numel() / C;
  if (rows == 0) return n;
  const at::Tensor none;
  at::Tensor no_y;
  launch_typed(none, x, w, b, none, none, no_y, n, rows, static_cast<int>(C), eps);
  return n;
}

}  // namespace diffbench::kernels
