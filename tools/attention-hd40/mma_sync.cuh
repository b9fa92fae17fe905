// Softmax attention at head dim 40 (SD 1.x's first level) as one flash-attention kernel of warp-level
// tensor-core products (mma.sync): S = Q·Kᵀ in two k16 steps and one k8 step, so the head is computed as
// 40 and not padded to 64 as LibTorch's fused kernels do; P·V with N = 40 (five n8 tiles). The online
// softmax keeps each row's running maximum and sum in float; the exponentials are taken one at a time in
// float or two at a time in half (ex2.approx.f16x2), the precision P has in the product with V anyway.
// An experiment of issue 21's round 11 (docs/performance.md); launch.cu runs it for bench.py.
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "../../src/kernels/sm90.cuh"

namespace hd40 {

using namespace diffbench::kernels::sm90;  // the library's primitives (cp.async, ldmatrix, wgmma, mbarriers)

constexpr int kHead = 40;    // head dimension
constexpr int kStride = 40;  // shared-memory row stride in halves: 80 bytes, ldmatrix conflict-free
constexpr int kChunks = 5;   // 16-byte chunks per row

struct Params {
  const __half* q;
  const __half* k;
  const __half* v;
  __half* o;
  int64_t q_batch, q_head, q_seq;  // strides in elements; the head dimension is contiguous
  int64_t k_batch, k_head, k_seq;
  int64_t v_batch, v_head, v_seq;
  int64_t o_batch, o_head, o_seq;
  int heads;
  int lq, lk;
  float scale_log2;  // softmax scale · log2(e)
};

template <int N>
__device__ __forceinline__ void cp_async_wait_group() {
  asm volatile("cp.async.wait_group %0;\n" ::"n"(N));
}

__device__ __forceinline__ void mma_k8(float (&c)[4], const uint32_t (&a)[2], uint32_t b0) {
  asm volatile("mma.sync.aligned.m16n8k8.row.col.f32.f16.f16.f32 {%0,%1,%2,%3}, {%4,%5}, {%6}, {%0,%1,%2,%3};\n"
               : "+f"(c[0]), "+f"(c[1]), "+f"(c[2]), "+f"(c[3])
               : "r"(a[0]), "r"(a[1]), "r"(b0));
}

// 2^x of two values, rounded to half first.
__device__ __forceinline__ uint32_t exp2_half2(float x0, float x1) {
  const __half2 h = __floats2half2_rn(x0, x1);
  uint32_t in = *reinterpret_cast<const uint32_t*>(&h), out;
  asm("ex2.approx.f16x2 %0, %1;\n" : "=r"(out) : "r"(in));
  return out;
}
__device__ __forceinline__ float2 half2_to_float2(uint32_t v) {
  return __half22float2(*reinterpret_cast<const __half2*>(&v));
}
__device__ __forceinline__ uint32_t add_half2(uint32_t a, uint32_t b) {
  const __half2 s = __hadd2(*reinterpret_cast<const __half2*>(&a), *reinterpret_cast<const __half2*>(&b));
  return *reinterpret_cast<const uint32_t*>(&s);
}

// The sum of a value over the four lanes that hold one row's fragments (quad_max: sm90.cuh).
__device__ __forceinline__ float quad_sum(float v) {
  v += __shfl_xor_sync(0xffffffffu, v, 1);
  return v + __shfl_xor_sync(0xffffffffu, v, 2);
}

// One n8 tile of a 16-row output fragment (values 0, 1: row r0; 2, 3: row r0 + 8; dims d, d + 1), each row
// divided by its sum, stored where the row exists.
__device__ __forceinline__ void store_row_pair(__half* out, int64_t seq_stride, int lq, int r0, int d, const float* c,
                                               float inv0, float inv1) {
  if (r0 < lq)
    *reinterpret_cast<__half2*>(out + static_cast<int64_t>(r0) * seq_stride + d) =
        __floats2half2_rn(c[0] * inv0, c[1] * inv0);
  if (r0 + 8 < lq)
    *reinterpret_cast<__half2*>(out + static_cast<int64_t>(r0 + 8) * seq_stride + d) =
        __floats2half2_rn(c[2] * inv1, c[3] * inv1);
}

// Grid: (ceil(lq / (16·MT·WARPS)), batch · heads). Each warp owns MT tiles of 16 query rows; KEYS keys a
// tile (a multiple of 32); HALF_EXP: the exponentials two at a time in half, else one at a time in float.
template <int MT, int WARPS, int KEYS = 64, bool HALF_EXP = true>
__global__ void __launch_bounds__(32 * WARPS) attention_kernel(const Params p) {
  constexpr int kRows = 16 * MT * WARPS;
  constexpr int kThreads = 32 * WARPS;
  constexpr int kKeys = KEYS, kN = KEYS / 8;
  __shared__ __align__(128) __half q_s[kRows * kStride];
  __shared__ __align__(128) __half k_s[2][KEYS * kStride];
  __shared__ __align__(128) __half v_s[2][KEYS * kStride];

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int row0 = blockIdx.x * kRows;
  const __half* q = p.q + b * p.q_batch + h * p.q_head;
  const __half* k = p.k + b * p.k_batch + h * p.k_head;
  const __half* v = p.v + b * p.v_batch + h * p.v_head;
  const int tiles = (p.lk + kKeys - 1) / kKeys;

  for (int i = tid; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks, row = row0 + r;
    cp_async16(q_s + r * kStride + c * 8, q + static_cast<int64_t>(row < p.lq ? row : 0) * p.q_seq + c * 8, row < p.lq);
  }
  auto load_kv = [&](int tile, int stage) {
    for (int i = tid; i < kKeys * kChunks; i += kThreads) {
      const int r = i / kChunks, c = i % kChunks, key = tile * kKeys + r;
      const bool valid = key < p.lk;
      const int64_t src = valid ? key : 0;
      cp_async16(k_s[stage] + r * kStride + c * 8, k + src * p.k_seq + c * 8, valid);
      cp_async16(v_s[stage] + r * kStride + c * 8, v + src * p.v_seq + c * 8, valid);
    }
  };
  load_kv(0, 0);
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();

  // Q's A fragments: per m tile, dims 0-15 and 16-31 (x4 each) and 32-39 (x2).
  uint32_t qa[MT][2][4], qa8[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    const int r = (warp * MT + m) * 16 + (lane & 15);
    ldmatrix_x4(qa[m][0], q_s + r * kStride + (lane >> 4) * 8);
    ldmatrix_x4(qa[m][1], q_s + r * kStride + 16 + (lane >> 4) * 8);
    ldmatrix_x2(qa8[m], q_s + r * kStride + 32);
  }

  float o[MT][5][4];
  float row_max[MT][2], row_sum[MT][2];
#pragma unroll
  for (int m = 0; m < MT; ++m) {
#pragma unroll
    for (int n = 0; n < 5; ++n) o[m][n][0] = o[m][n][1] = o[m][n][2] = o[m][n][3] = 0.f;
    row_max[m][0] = row_max[m][1] = -INFINITY;
    row_sum[m][0] = row_sum[m][1] = 0.f;
  }

  for (int t = 0; t < tiles; ++t) {
    const int stage = t & 1;
    if (t + 1 < tiles) load_kv(t + 1, stage ^ 1);
    cp_async_commit();
    const __half* ks = k_s[stage];
    const __half* vs = v_s[stage];

    // S = Q·Kᵀ: n8 tiles of keys.
    float s[MT][kN][4];
#pragma unroll
    for (int g = 0; g < kN / 4; ++g) {  // four n8 tiles at a time
      uint32_t kb8[4];                  // dims 32-39 of the four tiles
      ldmatrix_x4(kb8, ks + ((g * 4 + (lane >> 3)) * 8 + (lane & 7)) * kStride + 32);
#pragma unroll
      for (int j = 0; j < 4; ++j) {
        const int n = g * 4 + j;
        uint32_t kb[4];  // dims 0-7, 8-15, 16-23, 24-31 of keys 8n..8n+7
        ldmatrix_x4(kb, ks + (n * 8 + (lane & 7)) * kStride + (lane >> 3) * 8);
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          s[m][n][0] = s[m][n][1] = s[m][n][2] = s[m][n][3] = 0.f;
          mma_k16(s[m][n], qa[m][0], kb[0], kb[1]);
          mma_k16(s[m][n], qa[m][1], kb[2], kb[3]);
          mma_k8(s[m][n], qa8[m], kb8[j]);
        }
      }
    }
    if ((t + 1) * kKeys > p.lk) {  // the last tile's keys past the end
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        const int key = t * kKeys + n * 8 + (lane & 3) * 2;
#pragma unroll
        for (int m = 0; m < MT; ++m) {
          if (key >= p.lk) s[m][n][0] = s[m][n][2] = -INFINITY;
          if (key + 1 >= p.lk) s[m][n][1] = s[m][n][3] = -INFINITY;
        }
      }
    }

    // Online softmax: rows lane/4 (values 0, 1) and lane/4 + 8 (values 2, 3) of each m tile.
    uint32_t pa[MT][kN / 2][4];  // P as A fragments, k16 steps
#pragma unroll
    for (int m = 0; m < MT; ++m) {
      float mx0 = row_max[m][0], mx1 = row_max[m][1];
      float cur0 = -INFINITY, cur1 = -INFINITY;
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        cur0 = fmaxf(cur0, fmaxf(s[m][n][0], s[m][n][1]));
        cur1 = fmaxf(cur1, fmaxf(s[m][n][2], s[m][n][3]));
      }
      cur0 = quad_max(cur0), cur1 = quad_max(cur1);
      const float new0 = fmaxf(mx0, cur0 * p.scale_log2), new1 = fmaxf(mx1, cur1 * p.scale_log2);
      const float corr0 = exp2_approx(mx0 - new0), corr1 = exp2_approx(mx1 - new1);
      row_max[m][0] = new0;
      row_max[m][1] = new1;
      uint32_t sum0 = 0, sum1 = 0;  // half2 zeros
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        uint32_t p01, p23;
        if constexpr (HALF_EXP) {
          p01 = exp2_half2(s[m][n][0] * p.scale_log2 - new0, s[m][n][1] * p.scale_log2 - new0);
          p23 = exp2_half2(s[m][n][2] * p.scale_log2 - new1, s[m][n][3] * p.scale_log2 - new1);
        } else {
          p01 =
              pack_half2(exp2_approx(s[m][n][0] * p.scale_log2 - new0), exp2_approx(s[m][n][1] * p.scale_log2 - new0));
          p23 =
              pack_half2(exp2_approx(s[m][n][2] * p.scale_log2 - new1), exp2_approx(s[m][n][3] * p.scale_log2 - new1));
        }
        pa[m][n >> 1][(n & 1) * 2 + 0] = p01;
        pa[m][n >> 1][(n & 1) * 2 + 1] = p23;
        sum0 = add_half2(sum0, p01);
        sum1 = add_half2(sum1, p23);
      }
      const float2 f0 = half2_to_float2(sum0), f1 = half2_to_float2(sum1);
      row_sum[m][0] = row_sum[m][0] * corr0 + f0.x + f0.y;
      row_sum[m][1] = row_sum[m][1] * corr1 + f1.x + f1.y;
#pragma unroll
      for (int n = 0; n < 5; ++n) {
        o[m][n][0] *= corr0;
        o[m][n][1] *= corr0;
        o[m][n][2] *= corr1;
        o[m][n][3] *= corr1;
      }
    }

    // O += P·V: k16 steps of 16 keys, five n8 tiles of 8 dims.
#pragma unroll
    for (int kk = 0; kk < kN / 2; ++kk) {
      const int key = kk * 16 + (lane & 7) + ((lane >> 3) & 1) * 8;
      uint32_t vb[4], vb2[4], vb4[2];
      ldmatrix_x4_trans(vb, vs + key * kStride + (lane >> 4) * 8);        // dims 0-15
      ldmatrix_x4_trans(vb2, vs + key * kStride + 16 + (lane >> 4) * 8);  // dims 16-31
      ldmatrix_x2_trans(vb4, vs + key * kStride + 32);                    // dims 32-39
#pragma unroll
      for (int m = 0; m < MT; ++m) {
        mma_k16(o[m][0], pa[m][kk], vb[0], vb[1]);
        mma_k16(o[m][1], pa[m][kk], vb[2], vb[3]);
        mma_k16(o[m][2], pa[m][kk], vb2[0], vb2[1]);
        mma_k16(o[m][3], pa[m][kk], vb2[2], vb2[3]);
        mma_k16(o[m][4], pa[m][kk], vb4[0], vb4[1]);
      }
    }

    cp_async_wait_all();
    __syncthreads();
  }

  // O / l, rows lane/4 and lane/4 + 8, dims 8n + 2·(lane%4).
  __half* out = p.o + b * p.o_batch + h * p.o_head;
#pragma unroll
  for (int m = 0; m < MT; ++m) {
    float l0 = row_sum[m][0], l1 = row_sum[m][1];
    l0 = quad_sum(l0), l1 = quad_sum(l1);
    const float inv0 = 1.f / l0, inv1 = 1.f / l1;
    const int r0 = row0 + (warp * MT + m) * 16 + (lane >> 2);
#pragma unroll
    for (int n = 0; n < 5; ++n) store_row_pair(out, p.o_seq, p.lq, r0, n * 8 + (lane & 3) * 2, o[m][n], inv0, inv1);
  }
}

}  // namespace hd40
