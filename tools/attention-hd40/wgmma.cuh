// The head-dim-40 attention with Hopper's warpgroup products (wgmma), an experiment of issue 21's round 11
// (docs/performance.md): Q and P are the products' register operands, K and Vᵀ (V transposed by its own
// small kernel first) lie in shared memory in the no-swizzle K-major layout of 8 × 16-byte core matrices,
// the descriptor's leading offset the step between core matrices along K, its stride offset the step
// along M/N. S = Q·Kᵀ takes three k16 steps (the head padded to 48 with zeros), P·V has N = 40; one tile's
// products and softmax in turn, K and V (or K and Vᵀ packed tile by tile first) loading STAGES - 1 tiles
// ahead. (A pipelined version, the next tile's S and this tile's P·V in flight during the next tile's
// softmax, measured slower and was not kept: docs/performance.md.) Needs sm_90a.
#pragma once

#include "../../src/kernels/attention_hd40.cuh"
#include "mma_sync.cuh"

namespace hd40 {

// D[64×40] (+)= A[64×16] (registers) · B[16×40] (shared memory, K-major, descriptor b); D = A·B when
// accumulate is 0.
__device__ __forceinline__ void wgmma_n40(float (&d)[20], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %25, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n40k16.f32.f16.f16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19"
      "}, {%20,%21,%22,%23}, %24, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}

// Named barrier `id` of `count` threads: wait for it, or only count this warp in.
// (The ids are immediates: a register id makes ptxas reserve all 16 of a block's barriers.)
template <int ID>
__device__ __forceinline__ void named_barrier_sync(int count) {
  asm volatile("bar.sync %0, %1;\n" ::"n"(ID), "r"(count) : "memory");
}
template <int ID>
__device__ __forceinline__ void named_barrier_arrive(int count) {
  asm volatile("bar.arrive %0, %1;\n" ::"n"(ID), "r"(count) : "memory");
}
// Warpgroup 0 waits on barrier 1 and signals 2, warpgroup 1 the other way round.
__device__ __forceinline__ void pingpong_wait(int warpgroup) {
  if (warpgroup == 0)
    named_barrier_sync<1>(256);
  else
    named_barrier_sync<2>(256);
}
__device__ __forceinline__ void pingpong_signal(int warpgroup) {
  if (warpgroup == 0)
    named_barrier_arrive<2>(256);
  else
    named_barrier_arrive<1>(256);
}

constexpr int kWgKeys = 64;  // keys a tile (128 measured slower: docs/performance.md)

struct WgParams {
  Params p;
  const __half* vt;     // [batch·heads, 40, lk_pad]
  int lk_pad;           // a whole number of key tiles
  int swap;             // 1: the descriptors' two offsets swapped (the probe that the layout is read right)
  const uint4* packed;  // PACKED kernels: per batch·head and key tile, K then Vᵀ in shared memory's layout
};

// vt[bh][d][key] = v[b, h, key, d], zero for key >= lk (key < lk_pad). Block: 64 keys of one bh.
__global__ void transpose_v_kernel(const Params p, __half* vt, int lk_pad) {
  __shared__ __half tile[64][kHead + 2];
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads, key0 = blockIdx.x * 64;
  const __half* v = p.v + b * p.v_batch + h * p.v_head;
  for (int i = threadIdx.x; i < 64 * kHead; i += blockDim.x) {
    const int r = i / kHead, d = i % kHead, key = key0 + r;
    tile[r][d] = key < p.lk ? v[static_cast<int64_t>(key) * p.v_seq + d] : __float2half(0.f);
  }
  __syncthreads();
  for (int i = threadIdx.x; i < 64 * kHead; i += blockDim.x) {
    const int d = i / 64, r = i % 64;
    if (key0 + r < lk_pad) vt[(static_cast<int64_t>(bh) * kHead + d) * lk_pad + key0 + r] = tile[r][d];
  }
}

template <int WG, int STAGES = 2>
constexpr int wgmma_smem_bytes() {
  return STAGES * (kWgKeys * 6 * 16 + 5 * kWgKeys * 16) + 64 * WG * kStride * 2;
}

// A packed tile: K (kWgKeys/8 row groups × 6 chunks × 128 B, chunk 5 zero) then Vᵀ (GROUPS dim groups ×
// kWgKeys/8 key chunks × 128 B; group 5, where there is one, holds dim 40 = 1 for every key < lk).
template <int GROUPS>
__host__ __device__ constexpr int packed_tile_bytes() {
  return kWgKeys * 6 * 16 + GROUPS * kWgKeys * 16;
}

// K and Vᵀ are packed tile by tile in that layout by the library's pack_kv_tiles<GROUPS>
// (src/kernels/attention_hd40.cuh: 5 dim groups for these kernels, 6 with the ones row for tma.cuh's).

// STAGES key tiles in shared memory, STAGES - 1 of them loading while one is used. MODE (timing only, wrong
// results), a bit set: 1 no softmax, 2 no P·V; 4 the loads alone; 5 no loads after the first tiles and
// (its lowest bit) no softmax: the products alone.
// LEAN: the descriptors made once and stepped by adding offsets, half exponentials summed in half (8 a
// lane and tile) instead of each converted back to float, O rescaled only where a row's maximum grew.
// MINB: blocks an SM the registers must allow. PINGPONG (two warpgroups, MODE 0): their S = Q·Kᵀ issued
// in turn (named barriers 1 and 2), so that one's softmax runs while the other's product does.
template <int WG, bool HALF_EXP, int MODE = 0, int STAGES = 2, bool PACKED = false, bool LEAN = false, int MINB = 1,
          bool PINGPONG = false>
__global__ void __launch_bounds__(128 * WG, MINB) wgmma_attention_kernel(const WgParams wp) {
  const Params& p = wp.p;
  constexpr int kRows = 64 * WG, kThreads = 128 * WG, kN = kWgKeys / 8;
  constexpr int kKBytes = kWgKeys * 6 * 16;  // K tile: kWgKeys/8 row groups × 6 chunks × 128 B (chunk 5 zero)
  constexpr int kVBytes = 5 * kWgKeys * 16;  // Vᵀ tile: 5 dim groups × kWgKeys/8 key chunks × 128 B
  extern __shared__ __align__(128) unsigned char smem[];
  auto k_s = [&](int st) { return smem + st * kKBytes; };
  auto v_s = [&](int st) { return smem + STAGES * kKBytes + st * kVBytes; };
  __half* q_s = reinterpret_cast<__half*>(smem + STAGES * (kKBytes + kVBytes));

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;  // warp: 0..4·WG-1, 16 rows each
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int row0 = blockIdx.x * kRows;
  const __half* q = p.q + b * p.q_batch + h * p.q_head;
  const __half* k = p.k + b * p.k_batch + h * p.k_head;
  const __half* vt = wp.vt + static_cast<int64_t>(bh) * kHead * wp.lk_pad;
  const int tiles = (p.lk + kWgKeys - 1) / kWgKeys;

  if constexpr (!PACKED) {  // the K tiles' sixth chunk (dims 40-47): zeros (packed tiles bring their own)
    for (int i = tid; i < STAGES * kWgKeys; i += kThreads) {
      const int st = i / kWgKeys, r = i % kWgKeys;
      *reinterpret_cast<uint4*>(k_s(st) + ((r / 8) * 6 + 5) * 128 + (r % 8) * 16) = make_uint4(0, 0, 0, 0);
    }
  }
  for (int i = tid; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks, row = row0 + r;
    cp_async16(q_s + r * kStride + c * 8, q + static_cast<int64_t>(row < p.lq ? row : 0) * p.q_seq + c * 8, row < p.lq);
  }
  auto load_kv = [&](int tile, int stage) {
    if constexpr (PACKED) {  // K then Vᵀ, one contiguous run (pack_kv_tiles)
      const uint4* src = wp.packed + (static_cast<int64_t>(bh) * tiles + tile) * ((kKBytes + kVBytes) / 16);
      for (int i = tid; i < (kKBytes + kVBytes) / 16; i += kThreads)
        cp_async16(i < kKBytes / 16 ? k_s(stage) + i * 16 : v_s(stage) + (i - kKBytes / 16) * 16, src + i, true);
    } else {  // K's rows from the projection, Vᵀ's (transpose_v_kernel)
      for (int i = tid; i < kWgKeys * kChunks; i += kThreads) {
        const int r = i / kChunks, c = i % kChunks, key = tile * kWgKeys + r;
        const bool valid = key < p.lk;
        cp_async16(k_s(stage) + ((r / 8) * 6 + c) * 128 + (r % 8) * 16,
                   k + static_cast<int64_t>(valid ? key : 0) * p.k_seq + c * 8, valid);
      }
      for (int i = tid; i < kHead * (kWgKeys / 8); i += kThreads) {
        const int d = i / (kWgKeys / 8), kc = i % (kWgKeys / 8);
        cp_async16(v_s(stage) + ((d / 8) * (kWgKeys / 8) + kc) * 128 + (d % 8) * 16,
                   vt + static_cast<int64_t>(d) * wp.lk_pad + tile * kWgKeys + kc * 8, true);
      }
    }
  };
  for (int st = 0; st < STAGES - 1; ++st) {  // Q with the first tile
    if (st < tiles) load_kv(st, st);
    cp_async_commit();
  }
  cp_async_wait_group<STAGES - 2>();
  fence_async_shared();
  __syncthreads();

  uint32_t qa[3][4];
  {
    const int r = warp * 16 + (lane & 15);
    ldmatrix_x4(qa[0], q_s + r * kStride + (lane >> 4) * 8);
    ldmatrix_x4(qa[1], q_s + r * kStride + 16 + (lane >> 4) * 8);
    uint32_t a8[2];
    ldmatrix_x2(a8, q_s + r * kStride + 32);
    qa[2][0] = a8[0], qa[2][1] = a8[1], qa[2][2] = 0, qa[2][3] = 0;
  }
  const uint32_t k_lbo = wp.swap ? 768 : 128, k_sbo = wp.swap ? 128 : 768;
  const uint32_t v_lbo = wp.swap ? kWgKeys * 16 : 128, v_sbo = wp.swap ? 128 : kWgKeys * 16;
  const uint64_t k_desc0 = smem_desc(k_s(0), k_lbo, k_sbo), v_desc0 = smem_desc(v_s(0), v_lbo, v_sbo);

  float o[20];
#pragma unroll
  for (int i = 0; i < 20; ++i) o[i] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY, sum0 = 0.f, sum1 = 0.f;
  const int warpgroup = warp / 4;
  static_assert(!PINGPONG || (WG == 2 && MODE == 0), "ping-pong: two warpgroups, the whole kernel");
  if constexpr (PINGPONG) {
    if (warpgroup == 1) named_barrier_arrive<1>(256);  // warpgroup 0 goes first
  }

  for (int t = 0; t < tiles; ++t) {
    if (t > 0) {  // tile t has landed, and every warp is done with tile t - 1, whose slot is loaded next
      cp_async_wait_group<STAGES - 2>();
      fence_async_shared();
      __syncthreads();
    }
    const int stage = MODE == 5 ? 0 : t % STAGES;
    if (MODE != 5 && t + STAGES - 1 < tiles) load_kv(t + STAGES - 1, (t + STAGES - 1) % STAGES);
    cp_async_commit();

    if constexpr (MODE == 4) {  // the loads alone
      o[t % 20] += __half2float(reinterpret_cast<const __half*>(k_s(stage))[lane]);
      continue;
    }
    float s[kWgKeys / 2];
    if constexpr (PINGPONG) pingpong_wait(warpgroup);  // the other's S is issued
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 3; ++kk)
      wgmma_n64(s, qa[kk],
                LEAN ? k_desc0 + (stage * kKBytes + kk * 256) / 16 : smem_desc(k_s(stage) + kk * 256, k_lbo, k_sbo),
                kk > 0);
    wgmma_commit();
    if constexpr (PINGPONG) pingpong_signal(warpgroup);  // the other's turn
    wgmma_wait();
    reg_fence(s);

    if ((t + 1) * kWgKeys > p.lk) {
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        const int key = t * kWgKeys + n * 8 + (lane & 3) * 2;
        if (key >= p.lk) s[4 * n] = s[4 * n + 2] = -INFINITY;
        if (key + 1 >= p.lk) s[4 * n + 1] = s[4 * n + 3] = -INFINITY;
      }
    }
    if constexpr (MODE & 1) {
      uint32_t pa[kN / 2][4];
#pragma unroll
      for (int n = 0; n < kN; ++n) {
        pa[n >> 1][(n & 1) * 2 + 0] = pack_half2(s[4 * n], s[4 * n + 1]);
        pa[n >> 1][(n & 1) * 2 + 1] = pack_half2(s[4 * n + 2], s[4 * n + 3]);
      }
      if constexpr (!(MODE & 2)) {
        wgmma_fence();
#pragma unroll
        for (int kk = 0; kk < kN / 2; ++kk) wgmma_n40(o, pa[kk], smem_desc(v_s(stage) + kk * 256, v_lbo, v_sbo), 1);
        wgmma_commit();
        wgmma_wait();
        reg_fence(o);
      } else {
#pragma unroll
        for (int kk = 0; kk < kN / 2; ++kk) o[kk % 20] += __uint_as_float(pa[kk][0] ^ pa[kk][3]);
      }
      continue;
    }
    float cur0 = -INFINITY, cur1 = -INFINITY;
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      cur0 = fmaxf(cur0, fmaxf(s[4 * n], s[4 * n + 1]));
      cur1 = fmaxf(cur1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
    }
    cur0 = quad_max(cur0), cur1 = quad_max(cur1);
    const float new0 = fmaxf(max0, cur0 * p.scale_log2), new1 = fmaxf(max1, cur1 * p.scale_log2);
    const float corr0 = exp2_approx(max0 - new0), corr1 = exp2_approx(max1 - new1);
    max0 = new0, max1 = new1;
    uint32_t pa[kN / 2][4];
    float add0 = 0.f, add1 = 0.f;
    uint32_t half_sum0 = 0, half_sum1 = 0;  // LEAN: two half sums a lane and row
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      uint32_t p01, p23;
      if constexpr (HALF_EXP) {
        p01 = exp2_half2(s[4 * n] * p.scale_log2 - new0, s[4 * n + 1] * p.scale_log2 - new0);
        p23 = exp2_half2(s[4 * n + 2] * p.scale_log2 - new1, s[4 * n + 3] * p.scale_log2 - new1);
        if constexpr (LEAN) {
          half_sum0 = add_half2(half_sum0, p01), half_sum1 = add_half2(half_sum1, p23);
        } else {
          const float2 f01 = half2_to_float2(p01), f23 = half2_to_float2(p23);
          add0 += f01.x + f01.y, add1 += f23.x + f23.y;
        }
      } else {
        const float e0 = exp2_approx(s[4 * n] * p.scale_log2 - new0),
                    e1 = exp2_approx(s[4 * n + 1] * p.scale_log2 - new0);
        const float e2 = exp2_approx(s[4 * n + 2] * p.scale_log2 - new1),
                    e3 = exp2_approx(s[4 * n + 3] * p.scale_log2 - new1);
        add0 += e0 + e1, add1 += e2 + e3;
        p01 = pack_half2(e0, e1), p23 = pack_half2(e2, e3);
      }
      pa[n >> 1][(n & 1) * 2 + 0] = p01;
      pa[n >> 1][(n & 1) * 2 + 1] = p23;
    }
    if constexpr (LEAN && HALF_EXP) {
      const float2 f0 = half2_to_float2(half_sum0), f1 = half2_to_float2(half_sum1);
      add0 = f0.x + f0.y, add1 = f1.x + f1.y;
    }
    sum0 = sum0 * corr0 + add0, sum1 = sum1 * corr1 + add1;
    if (!LEAN || __any_sync(0xffffffffu, corr0 != 1.f || corr1 != 1.f)) {
#pragma unroll
      for (int i = 0; i < 5; ++i)
        o[4 * i] *= corr0, o[4 * i + 1] *= corr0, o[4 * i + 2] *= corr1, o[4 * i + 3] *= corr1;
    }

    if constexpr (!(MODE & 2)) {
      wgmma_fence();
#pragma unroll
      for (int kk = 0; kk < kN / 2; ++kk)
        wgmma_n40(o, pa[kk],
                  LEAN ? v_desc0 + (stage * kVBytes + kk * 256) / 16 : smem_desc(v_s(stage) + kk * 256, v_lbo, v_sbo),
                  1);
      wgmma_commit();
      wgmma_wait();
      reg_fence(o);
    } else {
#pragma unroll
      for (int kk = 0; kk < kN / 2; ++kk) o[kk % 20] += __uint_as_float(pa[kk][0] ^ pa[kk][3]);
    }
  }

  if constexpr (PINGPONG) {
    if (warpgroup == 0) named_barrier_sync<1>(256);  // the other's last arrival
  }
  __half* out = p.o + b * p.o_batch + h * p.o_head;
  sum0 = quad_sum(sum0), sum1 = quad_sum(sum1);
  const float inv0 = 1.f / sum0, inv1 = 1.f / sum1;
  const int r0 = row0 + warp * 16 + (lane >> 2);
#pragma unroll
  for (int n = 0; n < 5; ++n) store_row_pair(out, p.o_seq, p.lq, r0, n * 8 + (lane & 3) * 2, &o[4 * n], inv0, inv1);
}

}  // namespace hd40
