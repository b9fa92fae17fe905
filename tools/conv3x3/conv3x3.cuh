// 3×3 convolution (stride 1, padding 1, no bias) of few pixels and many channels, as split-K implicit GEMM
// (issue 21, round 13; docs/performance.md: tried, slower than cuDNN's, not in the library): SD 1.5's 8²
// level, where a batch-1 generation's convolutions have 128 pixels (two images with guidance) and 1280 or
// 2560 channels, and cuDNN's kernels read the weights (29.5 MB a 1280-channel convolution) at about a third
// of the memory bandwidth. Every block takes all the pixels of its rows (kBM) and 128 output channels over
// one slice of K = 9·C (split-K); each slice's sums go to a float workspace of its own, and a second kernel
// (sum_slices) adds the slices in a fixed order and writes half.
//   y[m, n] = Σ_k a[m, k] · w[n, k], m a pixel (b, y, x), k = (r, s, c) (c fastest), a[m, k] = x[b, y+r-1, x+s-1, c]
// (zero outside the image): x channels-last, w channels-last ([N][3][3][C], each row's K contiguous).
// Two kernels: mma.sync m16n8k16 (conv3x3_split_k) and wgmma m64n128k16 reading both operands from shared
// memory (conv3x3_split_k_wgmma, sm_90a); 16-byte cp.async copies into kStages slots whose rows are swizzled
// as wgmma's 128-byte mode expects (and conflict-free for ldmatrix).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "../../src/kernels/sm90.cuh"

namespace diffbench::kernels::conv3x3 {

using sm90::cp_async16;
using sm90::cp_async_commit;
using sm90::cp_async_wait_all;
using sm90::fence_async_shared;
using sm90::ldmatrix_x4;
using sm90::mma_k16;
using sm90::smem_addr;
using sm90::wgmma_commit;
using sm90::wgmma_fence;
using sm90::wgmma_wait;

constexpr int kBM = 128;      // pixels a block
constexpr int kBN = 128;      // output channels a block
constexpr int kBK = 64;       // K a step (C must be a multiple: a step stays at one (r, s))
constexpr int kStages = 4;    // steps in shared memory
constexpr int kThreads = 256; // 8 warps: 2 along the pixels × 4 along the channels, 64 × 32 each
constexpr int kSlotChunks = (kBM + kBN) * kBK / 8;            // 16-byte chunks a slot
constexpr int kSmemBytes = kStages * kSlotChunks * 16;         // 131,072

struct Params {
  const __half* x;         // [B, C, H, W] channels-last: strides xb, xh, xw (elements), channel stride 1
  const __half* w;         // [N, 3, 3, C] contiguous in (r, s, c)
  __half* y;               // [B, N, H, W] channels-last, contiguous
  float* partial;          // [slices, M, N]: each slice's sums
  int64_t xb, xh, xw;
  int height, width, c, n, m;  // m = B·H·W
  int kblocks, per_split;  // K / kBK; steps a slice
};

// Row `row`'s 16-byte chunk `chunk` (of 8) in a slot's A or B part.
__device__ __forceinline__ int swizzle(int row, int chunk) { return row * 8 + (chunk ^ (row & 7)); }

// One block's copies of its slice: this thread's rows lrow + 32·i of A (pixels, im2col on the fly) and of B
// (output channels' weights), 16-byte chunk lchunk, into a slot (A's kBM rows, then B's kBN, 128 bytes each,
// swizzled). PREFETCH: the block's weight rows (one contiguous run of its slice each) into L2 by the copy
// engine first, so that DRAM serves whole runs, not a 128-byte piece of 128 rows a step (sm_90). ROTATE: the
// channel tiles of one slice start at different steps of it, so that they do not read the same pixels' rows at
// once.
template <bool PREFETCH, bool ROTATE>
struct SliceLoader {
  const Params& p;
  int lrow, lchunk, kb0, steps, rot;
  int pix_y[kBM / 32], pix_x[kBM / 32];
  const __half* pix[kBM / 32];
  const __half* wrow;
  int64_t krow;

  __device__ __forceinline__ SliceLoader(const Params& params, int m0, int n0, int first, int count)
      : p(params), lrow(threadIdx.x >> 3), lchunk(threadIdx.x & 7), kb0(first), steps(count) {
    const int hw = p.height * p.width;
#pragma unroll
    for (int i = 0; i < kBM / 32; ++i) {
      const int m = m0 + lrow + 32 * i, b = m / hw, rem = m - b * hw;
      pix_y[i] = m < p.m ? rem / p.width : -4;  // -4: no such pixel (every tap outside)
      pix_x[i] = rem - (rem / p.width) * p.width;
      pix[i] = p.x + b * p.xb + lchunk * 8;
    }
    krow = 9 * static_cast<int64_t>(p.c);
    wrow = p.w + (n0 + lrow) * krow + lchunk * 8;
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 900
    if constexpr (PREFETCH) {
      if (threadIdx.x < kBN && steps > 0)
        asm volatile("cp.async.bulk.prefetch.L2.global [%0], %1;\n" ::"l"(p.w + (n0 + threadIdx.x) * krow + kb0 * kBK),
                     "r"(steps * kBK * 2)
                     : "memory");
    }
#endif
    rot = ROTATE && steps > 0 ? static_cast<int>(blockIdx.x * 5) % steps : 0;
  }
  __device__ __forceinline__ int step_kb(int it) const {
    return kb0 + (it + rot < steps ? it + rot : it + rot - steps);
  }
  __device__ __forceinline__ void load(uint4* a, int kb) const {
    const int k0 = kb * kBK, rs = k0 / p.c, c0 = k0 - rs * p.c, r = rs / 3 - 1, s = rs % 3 - 1;
    uint4* bm = a + kBM * 8;
#pragma unroll
    for (int i = 0; i < kBM / 32; ++i) {
      const int iy = pix_y[i] + r, ix = pix_x[i] + s;
      const bool valid = iy >= 0 && iy < p.height && ix >= 0 && ix < p.width;
      cp_async16(a + swizzle(lrow + 32 * i, lchunk), valid ? pix[i] + iy * p.xh + ix * p.xw + c0 : p.x, valid);
    }
#pragma unroll
    for (int i = 0; i < kBN / 32; ++i) cp_async16(bm + swizzle(lrow + 32 * i, lchunk), wrow + 32 * i * krow + k0, true);
  }
};

// Grid: (N / kBN, ceil(M / kBM), slices), kThreads threads, kSmemBytes of dynamic shared memory. mma.sync:
// 8 warps, 2 along the pixels × 4 along the channels, 64 × 32 each.
template <bool PREFETCH, bool ROTATE>
__global__ void __launch_bounds__(kThreads, 1) conv3x3_split_k(const Params p) {
  extern __shared__ uint4 smem[];
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
  const int n0 = blockIdx.x * kBN, m0 = blockIdx.y * kBM;
  const int kb0 = blockIdx.z * p.per_split, steps = max(0, min(p.kblocks, kb0 + p.per_split) - kb0);

  SliceLoader<PREFETCH, ROTATE> loader(p, m0, n0, kb0, steps);
  float acc[4][4][4];
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j)
#pragma unroll
      for (int e = 0; e < 4; ++e) acc[i][j][e] = 0.f;

#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) loader.load(smem + s * kSlotChunks, loader.step_kb(s));
    cp_async_commit();
  }
  const int wm = (warp >> 2) * 64, wn = (warp & 3) * 32;
  for (int it = 0; it < steps; ++it) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kStages - 2) : "memory");
    __syncthreads();
    if (it + kStages - 1 < steps)
      loader.load(smem + (it + kStages - 1) % kStages * kSlotChunks, loader.step_kb(it + kStages - 1));
    cp_async_commit();
    const uint4* a = smem + (it % kStages) * kSlotChunks;
    const uint4* bm = a + kBM * 8;
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) {
      uint32_t af[4][4], bf[2][4];
#pragma unroll
      for (int i = 0; i < 4; ++i) ldmatrix_x4(af[i], a + swizzle(wm + i * 16 + (lane & 15), kk * 2 + (lane >> 4)));
#pragma unroll
      for (int j = 0; j < 2; ++j)
        ldmatrix_x4(bf[j], bm + swizzle(wn + j * 16 + (lane & 7) + ((lane >> 4) << 3), kk * 2 + ((lane >> 3) & 1)));
#pragma unroll
      for (int i = 0; i < 4; ++i)
#pragma unroll
        for (int j = 0; j < 4; ++j) mma_k16(acc[i][j], af[i], bf[j >> 1][(j & 1) * 2], bf[j >> 1][(j & 1) * 2 + 1]);
    }
  }
  cp_async_wait_all();

  // This slice's sums into its own part of the workspace (sum_slices adds them up in a fixed order: the same
  // bits every call).
  float* out = p.partial + static_cast<int64_t>(blockIdx.z) * p.m * p.n;
#pragma unroll
  for (int i = 0; i < 4; ++i)
#pragma unroll
    for (int j = 0; j < 4; ++j) {
      const int row = m0 + wm + i * 16 + (lane >> 2), col = n0 + wn + j * 8 + (lane & 3) * 2;
      if (row < p.m)
        *reinterpret_cast<float2*>(out + static_cast<int64_t>(row) * p.n + col) = make_float2(acc[i][j][0], acc[i][j][1]);
      if (row + 8 < p.m)
        *reinterpret_cast<float2*>(out + static_cast<int64_t>(row + 8) * p.n + col) =
            make_float2(acc[i][j][2], acc[i][j][3]);
    }
}

// A 128-byte-swizzle K-major shared-memory descriptor (the slots' layout): rows of 128 bytes, 8-row groups 1024
// bytes apart; p 1024-byte aligned but for the K offset within a row.
__device__ __forceinline__ uint64_t sw128_desc(const void* p) {
  return ((smem_addr(p) & 0x3FFFF) >> 4) | (1ull << 16) | (64ull << 32) | (1ull << 62);
}

// D[64×128] += A[64×16] · B[16×128], both K-major in shared memory with the 128-byte swizzle (descriptors a,
// b); D = A·B when accumulate is 0. sm_90a.
__device__ __forceinline__ void wgmma_m64n128_ss(float (&d)[64], uint64_t a, uint64_t b, int accumulate) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %66, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n128k16.f32.f16.f16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31,%32,%33,%34,%35,%36,%37,%38,%39,%40,%41,%42,%43,%44,%45,%46,%47,%48,%49,%50,%51,%52,%53,%54,%55,%56,%57,%58,%59,%60,%61,%62,%63"
      "}, %64, %65, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31]), "+f"(d[32]),
        "+f"(d[33]), "+f"(d[34]), "+f"(d[35]), "+f"(d[36]), "+f"(d[37]), "+f"(d[38]), "+f"(d[39]), "+f"(d[40]),
        "+f"(d[41]), "+f"(d[42]), "+f"(d[43]), "+f"(d[44]), "+f"(d[45]), "+f"(d[46]), "+f"(d[47]), "+f"(d[48]),
        "+f"(d[49]), "+f"(d[50]), "+f"(d[51]), "+f"(d[52]), "+f"(d[53]), "+f"(d[54]), "+f"(d[55]), "+f"(d[56]),
        "+f"(d[57]), "+f"(d[58]), "+f"(d[59]), "+f"(d[60]), "+f"(d[61]), "+f"(d[62]), "+f"(d[63])
      : "l"(a), "l"(b), "r"(accumulate));
#endif
}

// conv3x3_split_k with wgmma (sm_90a; an empty body elsewhere): two warpgroups of 64 pixels × 128 channels,
// A and B read by descriptor straight from the slots, whose swizzle is wgmma's 128-byte one. Dynamic shared
// memory: kSmemBytes + 1024 (the slots aligned to 1024 bytes).
template <bool PREFETCH, bool ROTATE>
__global__ void __launch_bounds__(kThreads, 1) conv3x3_split_k_wgmma(const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(1024) unsigned char raw[];
  uint4* smem = reinterpret_cast<uint4*>(raw + ((1024 - (smem_addr(raw) & 1023)) & 1023));
  const int warp = threadIdx.x >> 5, lane = threadIdx.x & 31, wg = warp >> 2;
  const int n0 = blockIdx.x * kBN, m0 = blockIdx.y * kBM;
  const int kb0 = blockIdx.z * p.per_split, steps = max(0, min(p.kblocks, kb0 + p.per_split) - kb0);
  SliceLoader<PREFETCH, ROTATE> loader(p, m0, n0, kb0, steps);
  float acc[64];
#pragma unroll
  for (int i = 0; i < 64; ++i) acc[i] = 0.f;
#pragma unroll
  for (int s = 0; s < kStages - 1; ++s) {
    if (s < steps) loader.load(smem + s * kSlotChunks, loader.step_kb(s));
    cp_async_commit();
  }
  for (int it = 0; it < steps; ++it) {
    asm volatile("cp.async.wait_group %0;\n" ::"n"(kStages - 2) : "memory");
    fence_async_shared();  // the copies, seen by wgmma
    __syncthreads();
    if (it + kStages - 1 < steps)
      loader.load(smem + (it + kStages - 1) % kStages * kSlotChunks, loader.step_kb(it + kStages - 1));
    cp_async_commit();
    const unsigned char* slot = reinterpret_cast<const unsigned char*>(smem + (it % kStages) * kSlotChunks);
    const uint64_t da = sw128_desc(slot + wg * 64 * 128), db = sw128_desc(slot + kBM * 128);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kBK / 16; ++kk) wgmma_m64n128_ss(acc, da + kk * 2, db + kk * 2, 1);
    wgmma_commit();
    wgmma_wait();
  }
  cp_async_wait_all();
  float* out = p.partial + static_cast<int64_t>(blockIdx.z) * p.m * p.n;
  const int row = m0 + wg * 64 + (warp & 3) * 16 + (lane >> 2);
#pragma unroll
  for (int j = 0; j < kBN / 8; ++j) {
    const int col = n0 + j * 8 + (lane & 3) * 2;
    if (row < p.m)
      *reinterpret_cast<float2*>(out + static_cast<int64_t>(row) * p.n + col) = make_float2(acc[4 * j], acc[4 * j + 1]);
    if (row + 8 < p.m)
      *reinterpret_cast<float2*>(out + static_cast<int64_t>(row + 8) * p.n + col) =
          make_float2(acc[4 * j + 2], acc[4 * j + 3]);
  }
#endif
}

// y[i] = Σ_s partial[s][i] (s in order) in half, 8 elements a thread; count = M·N (a multiple of 8).
__global__ void sum_slices(const float* __restrict__ partial, __half* __restrict__ y, int64_t count, int slices) {
  const int64_t i = (static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x) * 8;
  if (i >= count) return;
  float4 u = __ldg(reinterpret_cast<const float4*>(partial + i)), v = __ldg(reinterpret_cast<const float4*>(partial + i) + 1);
  for (int s = 1; s < slices; ++s) {
    const float4* q = reinterpret_cast<const float4*>(partial + s * count + i);
    const float4 a = __ldg(q), b = __ldg(q + 1);
    u.x += a.x, u.y += a.y, u.z += a.z, u.w += a.w, v.x += b.x, v.y += b.y, v.z += b.z, v.w += b.w;
  }
  __align__(16) __half2 h[4] = {__floats2half2_rn(u.x, u.y), __floats2half2_rn(u.z, u.w), __floats2half2_rn(v.x, v.y),
                                __floats2half2_rn(v.z, v.w)};
  *reinterpret_cast<uint4*>(y + i) = *reinterpret_cast<const uint4*>(h);
}

}  // namespace diffbench::kernels::conv3x3
