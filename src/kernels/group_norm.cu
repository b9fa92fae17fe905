// GroupNorm (+SiLU) for channels-last activations, optionally of x + shift[n, c] + channel_shift[c] (the
// time embedding's projection and a convolution's bias, which the resnet would otherwise add in passes
// of their own).
// Three kernels:
//  1. partial sums: block (chunk of pixels, sample) of rows of C/8 threads; a thread owns 8 adjacent
//     channels (one 16-byte load per pixel) and accumulates sum and sum of squares over its row's share
//     of the chunk's pixels; the rows' sums meet in shared memory, are added per channel in row order,
//     then per group in channel order; one (sum, sumsq) per group is written. No atomics: the float
//     sums, and with them the images, are the same in every run and every process;
//  2. finalise: per (sample, group) one warp adds the chunks' partials in double -> mean, 1/std, and
//     writes each of the group's channels' scale and offset (weight, bias and the shifts folded in);
//  3. apply: the partial sums' thread layout again, each thread holding its 8 channels' scale and
//     offset in registers: y = x * scale + offset, then SiLU.
// The chunks are as long as leaves about two blocks per SM, so that the small levels fill the GPU and
// the large ones do not launch thousands of blocks; loads are unrolled four deep.
// A small group (at most kOnePassElements values: the UNet's 8x8 and 16x16 levels) is normalised by one
// kernel instead, a block per (group, sample): it adds the group's values in a fixed order, then reads
// them again (from L1/L2) to write the output. Those levels launch tens of thousands of the three kernels
// per generation, each too small to fill the GPU. DIFFBENCH_GN_ONE_PASS=0 turns it off (A/B timing).
#include <algorithm>
#include <limits>
#include <type_traits>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include "convert.cuh"
#include "group_norm.hpp"
#include "util/ab_switch.hpp"

namespace diffbench::kernels {

namespace {

constexpr int kThreads = 256;
constexpr int kMaxThreads = 1024;  // the statistics and apply kernels' block: at least one row of C/8 threads
constexpr size_t kMaxShared = 48 * 1024;  // the statistics kernel's shared memory without an opt-in
constexpr int kMaxPixelsPerChunk = 64;
constexpr int kOnePassElements = 16384;  // values of one (sample, group) normalised by the one-pass kernel
constexpr int kOnePassMaxChannels = 256;  // channels per group of the one-pass kernel (a thread per VEC of them)
constexpr int kOnePassThreads = 256;

// What is added to x before the normalisation, in float: a per-sample shift ([N, C] with rows `stride`
// apart, or [1, C] for every sample: `stride` 0), in x's type or float, plus a per-channel one ([C], x's
// type): the time embedding's projection and conv1's bias in a resnet, added here instead of in two
// passes of their own.
template <typename T>
struct Shift {
  const T* sample = nullptr;
  const float* sample_float = nullptr;
  int stride = 0;
  const T* channel = nullptr;
  __host__ __device__ bool any() const { return sample || sample_float || channel; }
  __device__ float at(int n, int c) const {
    float v = 0.f;
    if (sample) v += to_float(sample[n * stride + c]);
    else if (sample_float) v += sample_float[n * stride + c];
    if (channel) v += to_float(channel[c]);
    return v;
  }
};

template <typename T, bool Silu>
__device__ __forceinline__ T normalised(float x, float scale, float offset) {
  float r = x * scale + offset;
  if (Silu) r = r / (1.f + __expf(-r));
  return from_float<T>(r);
}

// The thread layout of the partial sums and the apply: rows of C/8 threads, as many rows as fit in
// kThreads (one row above 2048 channels). Thread t owns the 8 channels 8·(t mod C/8) .. +7.
int row_count(int C) { return std::max(1, kThreads / (C / 8)); }

// Rows of C/8 threads take the chunk's pixels in turn (C ≤ 8192, C % 8 == 0).
template <typename T>
__global__ void partial_sums(const T* __restrict__ x, const Shift<T> shift, float2* __restrict__ partial,
                             int HW, int C, int G, int chunks, int ppc) {
  const int chunk = blockIdx.x, n = blockIdx.y;
  const int p0 = chunk * ppc, p1 = min(p0 + ppc, HW);
  const int c8 = C / 8, rows = blockDim.x / c8;
  const int lane = threadIdx.x % c8, r = threadIdx.x / c8;
  const int c0 = lane * 8;
  float s[8] = {0}, q[8] = {0}, sh[8] = {0};
  if (shift.any()) {
#pragma unroll
    for (int k = 0; k < 8; ++k) sh[k] = shift.at(n, c0 + k);
  }
  const T* base = x + static_cast<size_t>(n) * HW * C + c0;
#pragma unroll 4
  for (int p = p0 + r; p < p1; p += rows) {
    const uint4 in = *reinterpret_cast<const uint4*>(base + static_cast<size_t>(p) * C);
    const T* v = reinterpret_cast<const T*>(&in);
#pragma unroll
    for (int k = 0; k < 8; ++k) {
      const float f = to_float(v[k]) + sh[k];
      s[k] += f;
      q[k] += f * f;
    }
  }
  extern __shared__ float shared[];  // [rows][2][C]: each row's per-channel sums, then sums of squares
  float* row = shared + static_cast<size_t>(r) * 2 * C;
#pragma unroll
  for (int k = 0; k < 8; ++k) {
    row[c0 + k] = s[k];
    row[C + c0 + k] = q[k];
  }
  __syncthreads();
  // Per channel over the rows, in row order (into row 0: only the thread of channel c touches its slots).
  for (int c = threadIdx.x; c < C; c += blockDim.x) {
    float cs = 0.f, cq = 0.f;
    for (int rr = 0; rr < rows; ++rr) {
      cs += shared[static_cast<size_t>(rr) * 2 * C + c];
      cq += shared[static_cast<size_t>(rr) * 2 * C + C + c];
    }
    shared[c] = cs;
    shared[C + c] = cq;
  }
  __syncthreads();
  const int cg = C / G;
  for (int g = threadIdx.x; g < G; g += blockDim.x) {
    float gs = 0.f, gq = 0.f;
    for (int c = g * cg; c < (g + 1) * cg; ++c) {
      gs += shared[c];
      gq += shared[C + c];
    }
    partial[(static_cast<size_t>(n) * chunks + chunk) * G + g] = make_float2(gs, gq);
  }
}

// One warp per (sample, group): lanes add strided chunks in double, a shuffle reduction gives mean and
// 1/std, then the lanes write the group's channels' scale (1/std · weight) and offset (bias + (shift −
// mean) · scale) to coef[n][0][c] and coef[n][1][c].
template <typename T>
__global__ void finalise(const float2* __restrict__ partial, const Shift<T> shift, const T* __restrict__ w,
                         const T* __restrict__ b, float* __restrict__ coef, int chunks, int C, int G, double count,
                         double eps, int total) {
  const int i = (blockIdx.x * blockDim.x + threadIdx.x) / 32;  // n * G + g
  const int lane = threadIdx.x % 32;
  if (i >= total) return;  // a whole warp: total groups fill warps, not blocks
  const int n = i / G, g = i % G;
  double s = 0, q = 0;
  for (int k = lane; k < chunks; k += 32) {
    const float2 v = partial[(static_cast<size_t>(n) * chunks + k) * G + g];
    s += v.x;
    q += v.y;
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    s += __shfl_down_sync(0xffffffffu, s, off);
    q += __shfl_down_sync(0xffffffffu, q, off);
  }
  s = __shfl_sync(0xffffffffu, s, 0);
  q = __shfl_sync(0xffffffffu, q, 0);
  const double mean = s / count;
  const double var = fmax(q / count - mean * mean, 0.0);
  const float m = static_cast<float>(mean), rstd = static_cast<float>(rsqrt(var + eps));
  const int cg = C / G;
  float* scale = coef + static_cast<size_t>(n) * 2 * C;
  for (int c = g * cg + lane; c < (g + 1) * cg; c += 32) {
    const float a = rstd * to_float(w[c]);
    scale[c] = a;
    scale[C + c] = to_float(b[c]) + ((shift.any() ? shift.at(n, c) : 0.f) - m) * a;
  }
}

template <typename T, bool Silu>
__global__ void apply(const T* __restrict__ x, const float* __restrict__ coef, T* __restrict__ y, int HW, int C,
                      int ppc) {
  const int chunk = blockIdx.x, n = blockIdx.y;
  const int p0 = chunk * ppc, p1 = min(p0 + ppc, HW);
  const int c8 = C / 8, rows = blockDim.x / c8;
  const int lane = threadIdx.x % c8, r = threadIdx.x / c8;
  const int c0 = lane * 8;
  const float* ca = coef + static_cast<size_t>(n) * 2 * C + c0;
  float a[8], o[8];
  *reinterpret_cast<float4*>(a) = *reinterpret_cast<const float4*>(ca);
  *reinterpret_cast<float4*>(a + 4) = *reinterpret_cast<const float4*>(ca + 4);
  *reinterpret_cast<float4*>(o) = *reinterpret_cast<const float4*>(ca + C);
  *reinterpret_cast<float4*>(o + 4) = *reinterpret_cast<const float4*>(ca + C + 4);
  const size_t base = static_cast<size_t>(n) * HW * C + c0;
#pragma unroll 4
  for (int p = p0 + r; p < p1; p += rows) {
    const uint4 in = *reinterpret_cast<const uint4*>(x + base + static_cast<size_t>(p) * C);
    const T* v = reinterpret_cast<const T*>(&in);
    uint4 out;
    T* t = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < 8; ++k) t[k] = normalised<T, Silu>(to_float(v[k]), a[k], o[k]);
    *reinterpret_cast<uint4*>(y + base + static_cast<size_t>(p) * C) = out;
  }
}

// One block per (group, sample). The group's channels are split into slots of VEC adjacent ones; thread t
// takes slot t mod slots of the pixels t / slots, + rows, ... (rows = blockDim / slots; the threads past
// rows · slots idle), so that a thread's channels, and with them its shifts, scale and offset, stay in
// registers. It adds its values in float, the warps' sums meet in shared memory and are added in double
// in a fixed order; then the same values are read again and written normalised.
template <typename T, int VEC, bool Silu>
__global__ void one_pass(const T* __restrict__ x, const Shift<T> shift, T* __restrict__ y,
                         const T* __restrict__ w, const T* __restrict__ b, int HW, int C, int G, float eps) {
  const int g = blockIdx.x, n = blockIdx.y;
  const int cg = C / G, slots = cg / VEC, rows = blockDim.x / slots;
  const int r = threadIdx.x / slots;
  const int c0 = g * cg + (threadIdx.x % slots) * VEC;  // this thread's first channel
  const size_t base = static_cast<size_t>(n) * HW * C + c0;
  const int p_end = r < rows ? HW : 0;  // the threads past rows · slots take no pixels
  using Vec = typename std::conditional<VEC == 8, uint4, typename std::conditional<VEC == 4, uint2,
              typename std::conditional<VEC == 2, unsigned int, unsigned short>::type>::type>::type;
  float sh[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) sh[k] = shift.any() ? shift.at(n, c0 + k) : 0.f;
  float s = 0.f, q = 0.f;
#pragma unroll 4
  for (int p = r; p < p_end; p += rows) {
    const Vec in = *reinterpret_cast<const Vec*>(x + base + static_cast<size_t>(p) * C);
    const T* t = reinterpret_cast<const T*>(&in);
#pragma unroll
    for (int k = 0; k < VEC; ++k) {
      const float f = to_float(t[k]) + sh[k];
      s += f;
      q += f * f;
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    s += __shfl_down_sync(0xffffffffu, s, off);
    q += __shfl_down_sync(0xffffffffu, q, off);
  }
  __shared__ float2 warp_sums[kOnePassThreads / 32];
  __shared__ float2 stats;
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  if (lane == 0) warp_sums[warp] = make_float2(s, q);
  __syncthreads();
  if (threadIdx.x == 0) {
    double ds = 0, dq = 0;
    for (int i = 0; i < static_cast<int>(blockDim.x / 32); ++i) {
      ds += warp_sums[i].x;
      dq += warp_sums[i].y;
    }
    const double values = static_cast<double>(HW) * cg;
    const double mean = ds / values;
    const double var = fmax(dq / values - mean * mean, 0.0);
    stats = make_float2(static_cast<float>(mean), static_cast<float>(rsqrt(var + static_cast<double>(eps))));
  }
  __syncthreads();
  const float2 st = stats;
  float a[VEC], o[VEC];
#pragma unroll
  for (int k = 0; k < VEC; ++k) {
    a[k] = st.y * to_float(w[c0 + k]);
    o[k] = to_float(b[c0 + k]) + (sh[k] - st.x) * a[k];
  }
#pragma unroll 4
  for (int p = r; p < p_end; p += rows) {
    const Vec in = *reinterpret_cast<const Vec*>(x + base + static_cast<size_t>(p) * C);
    const T* t = reinterpret_cast<const T*>(&in);
    Vec out;
    T* u = reinterpret_cast<T*>(&out);
#pragma unroll
    for (int k = 0; k < VEC; ++k) u[k] = normalised<T, Silu>(to_float(t[k]), a[k], o[k]);
    *reinterpret_cast<Vec*>(y + base + static_cast<size_t>(p) * C) = out;
  }
}

template <typename T, int VEC>
void launch_one_pass(const T* x, const Shift<T>& shift, T* y, const T* w, const T* b, int N, int HW, int C, int G,
                     double eps, bool silu, cudaStream_t stream) {
  if (silu)
    one_pass<T, VEC, true><<<dim3(G, N), kOnePassThreads, 0, stream>>>(x, shift, y, w, b, HW, C, G,
                                                                         static_cast<float>(eps));
  else
    one_pass<T, VEC, false><<<dim3(G, N), kOnePassThreads, 0, stream>>>(x, shift, y, w, b, HW, C, G,
                                                                          static_cast<float>(eps));
}

// Whether a (sample, group) of this shape goes to the one-pass kernel.
bool use_one_pass(int64_t HW, int64_t C, int64_t G) {
  return HW * (C / G) <= kOnePassElements && C / G <= kOnePassMaxChannels && ab_switch_on("DIFFBENCH_GN_ONE_PASS");
}

// The statistics kernel's shared memory: 2 floats a channel for each row.
size_t stats_shared_bytes(int64_t C) {
  return static_cast<size_t>(row_count(static_cast<int>(C))) * 2 * static_cast<size_t>(C) * sizeof(float);
}

// Pixels per block of the statistics and apply kernels: about two blocks per SM over the whole batch,
// at least a pixel per row, at most kMaxPixelsPerChunk.
int pixels_per_chunk(int N, int HW, int rows) {
  const int64_t blocks = 2 * static_cast<int64_t>(at::cuda::getCurrentDeviceProperties()->multiProcessorCount);
  const int64_t ppc = (static_cast<int64_t>(N) * HW + blocks - 1) / blocks;
  return static_cast<int>(std::clamp<int64_t>(ppc, std::min(rows, kMaxPixelsPerChunk), kMaxPixelsPerChunk));
}

template <typename T>
void launch(const at::Tensor& x, const Shift<T>& shift, at::Tensor& y, const at::Tensor& w, const at::Tensor& b, int G,
            double eps, bool silu) {
  const int N = static_cast<int>(x.size(0)), C = static_cast<int>(x.size(1));
  const int HW = static_cast<int>(x.size(2) * x.size(3));
  const T* xp = reinterpret_cast<const T*>(x.data_ptr());
  auto* yp = reinterpret_cast<T*>(y.data_ptr());
  auto* wp = reinterpret_cast<const T*>(w.data_ptr());
  auto* bp = reinterpret_cast<const T*>(b.data_ptr());
  auto stream = at::cuda::getCurrentCUDAStream();
  if (use_one_pass(HW, C, G)) {
    const int cg = C / G;
    // Vector loads as wide as the group's channels allow (C % 8 == 0, so every group starts 16-byte
    // aligned when cg % 8 == 0, 8-byte aligned when cg % 4 == 0, ...).
    if (cg % 8 == 0)
      launch_one_pass<T, 8>(xp, shift, yp, wp, bp, N, HW, C, G, eps, silu, stream);
    else if (cg % 4 == 0)
      launch_one_pass<T, 4>(xp, shift, yp, wp, bp, N, HW, C, G, eps, silu, stream);
    else if (cg % 2 == 0)
      launch_one_pass<T, 2>(xp, shift, yp, wp, bp, N, HW, C, G, eps, silu, stream);
    else
      launch_one_pass<T, 1>(xp, shift, yp, wp, bp, N, HW, C, G, eps, silu, stream);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    return;
  }
  const int rows = row_count(C), threads = rows * (C / 8);
  const int ppc = pixels_per_chunk(N, HW, rows);
  const int chunks = (HW + ppc - 1) / ppc;
  auto opts = x.options().dtype(at::kFloat);
  at::Tensor partial = at::empty({N, chunks, G, 2}, opts);
  at::Tensor coef = at::empty({N, 2, C}, opts);
  auto* pp = reinterpret_cast<float2*>(partial.data_ptr());
  partial_sums<T><<<dim3(chunks, N), threads, stats_shared_bytes(C), stream>>>(xp, shift, pp, HW, C, G, chunks, ppc);
  const int total_groups = N * G;
  finalise<T><<<(total_groups * 32 + 255) / 256, 256, 0, stream>>>(pp, shift, wp, bp, coef.data_ptr<float>(), chunks,
                                                                  C, G, static_cast<double>(HW) * (C / G), eps,
                                                                  total_groups);
  if (silu)
    apply<T, true><<<dim3(chunks, N), threads, 0, stream>>>(xp, coef.data_ptr<float>(), yp, HW, C, ppc);
  else
    apply<T, false><<<dim3(chunks, N), threads, 0, stream>>>(xp, coef.data_ptr<float>(), yp, HW, C, ppc);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

at::Tensor group_norm_nhwc(const at::Tensor& x, const at::Tensor& weight, const at::Tensor& bias, int64_t groups,
                           double eps, bool silu, const at::Tensor& shift, const at::Tensor& channel_shift) {
  const c10::cuda::CUDAGuard guard(x.device());
  const int64_t N = x.size(0), C = x.size(1);
  // The vectorised apply needs 8 channels per load; fall back to LibTorch otherwise.
  if (C % 8 != 0 || C / 8 > kMaxThreads || stats_shared_bytes(C) > kMaxShared) {
    at::Tensor in = x;
    if (shift.defined()) in = in + shift.view({shift.size(0), C, 1, 1}).to(x.scalar_type());
    if (channel_shift.defined()) in = in + channel_shift.view({1, C, 1, 1}).to(x.scalar_type());
    at::Tensor y = at::group_norm(in, groups, weight, bias, eps);
    return silu ? at::silu(y) : y;
  }
  at::Tensor y = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  const at::Tensor w = weight.to(x.scalar_type()).contiguous(), b = bias.to(x.scalar_type()).contiguous();
  // The shifts as they are when they are x's type (a resnet's), else in float; kept alive here.
  at::Tensor sample, channel;
  if (shift.defined()) {
    sample = shift.reshape({-1, C});
    TORCH_CHECK(sample.size(0) == 1 || sample.size(0) == N, "group_norm_nhwc: shift must be [N, C] or [1, C]");
    // Rows may be apart (a UNet's time projections are column blocks of one [N, Σ C] tensor).
    if (sample.scalar_type() != x.scalar_type()) sample = sample.to(at::kFloat);
    if (sample.stride(1) != 1 || sample.size(0) * sample.stride(0) > std::numeric_limits<int>::max())
      sample = sample.contiguous();
  }
  if (channel_shift.defined()) channel = channel_shift.reshape({C}).to(x.scalar_type()).contiguous();
  auto run = [&](auto tag) {
    using T = decltype(tag);
    Shift<T> sh;
    if (sample.defined()) {
      sh.stride = sample.size(0) == 1 ? 0 : static_cast<int>(sample.stride(0));
      if (sample.scalar_type() == at::kFloat) sh.sample_float = sample.data_ptr<float>();
      else sh.sample = reinterpret_cast<const T*>(sample.data_ptr());
    }
    if (channel.defined()) sh.channel = reinterpret_cast<const T*>(channel.data_ptr());
    launch<T>(x, sh, y, w, b, static_cast<int>(groups), eps, silu);
  };
  if (x.scalar_type() == at::kHalf)
    run(__half());
  else
    run(__nv_bfloat16());
  return y;
}

namespace {

// out = (x + bias[c] + residual) * scale, channels-last (c = index mod C), 8 values per thread.
template <typename T>
__global__ void bias_residual_kernel(const T* __restrict__ x, const T* __restrict__ bias, const T* __restrict__ res,
                                     T* __restrict__ out, size_t total, int C, float scale) {
  for (size_t i = (static_cast<size_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8; i < total;
       i += static_cast<size_t>(gridDim.x) * blockDim.x * 8) {
    const int c0 = static_cast<int>(i % C);
    uint4 xv = *reinterpret_cast<const uint4*>(x + i);
    uint4 rv = *reinterpret_cast<const uint4*>(res + i);
    const T* a = reinterpret_cast<const T*>(&xv);
    const T* r = reinterpret_cast<const T*>(&rv);
    uint4 ov;
    T* o = reinterpret_cast<T*>(&ov);
#pragma unroll
    for (int k = 0; k < 8; ++k)
      o[k] = from_float<T>((to_float(a[k]) + to_float(bias[c0 + k]) + to_float(r[k])) * scale);
    *reinterpret_cast<uint4*>(out + i) = ov;
  }
}

}  // namespace

at::Tensor bias_residual_nhwc(const at::Tensor& x, const at::Tensor& bias, const at::Tensor& residual, double scale) {
  const int64_t C = x.size(1);
  const bool fits = x.dim() == 4 && x.sizes() == residual.sizes() && x.scalar_type() == residual.scalar_type() &&
                    (x.scalar_type() == at::kHalf || x.scalar_type() == at::kBFloat16) && C % 8 == 0 &&
                    x.is_contiguous(at::MemoryFormat::ChannelsLast) &&
                    residual.is_contiguous(at::MemoryFormat::ChannelsLast);
  if (!fits) {
    at::Tensor out = residual + (x + bias.view({1, C, 1, 1}).to(x.scalar_type()));
    return scale != 1.0 ? out * scale : out;
  }
  const c10::cuda::CUDAGuard guard(x.device());
  at::Tensor out = at::empty_like(x, at::MemoryFormat::ChannelsLast);
  const at::Tensor b = bias.to(x.scalar_type()).contiguous();
  const size_t total = static_cast<size_t>(x.numel());
  const int blocks = static_cast<int>(std::min<size_t>((total / 8 + kThreads - 1) / kThreads, 65535));
  auto stream = at::cuda::getCurrentCUDAStream();
  if (x.scalar_type() == at::kHalf)
    bias_residual_kernel<__half><<<blocks, kThreads, 0, stream>>>(
        reinterpret_cast<const __half*>(x.data_ptr()), reinterpret_cast<const __half*>(b.data_ptr()),
        reinterpret_cast<const __half*>(residual.data_ptr()), reinterpret_cast<__half*>(out.data_ptr()), total,
        static_cast<int>(C), static_cast<float>(scale));
  else
    bias_residual_kernel<__nv_bfloat16><<<blocks, kThreads, 0, stream>>>(
        reinterpret_cast<const __nv_bfloat16*>(x.data_ptr()), reinterpret_cast<const __nv_bfloat16*>(b.data_ptr()),
        reinterpret_cast<const __nv_bfloat16*>(residual.data_ptr()), reinterpret_cast<__nv_bfloat16*>(out.data_ptr()),
        total, static_cast<int>(C), static_cast<float>(scale));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace diffbench::kernels
