// The head-dim-40 attention of wgmma.cuh with fewer instructions a score (issue 21, round 12;
// docs/performance.md): K and Vᵀ, packed tile by tile (pack_kv_tiles), arrive by the bulk copy engine
// (cp.async.bulk, one instruction a tile, issued by a producer warp of its own) into STAGES slots, each with
// a "full" and an "empty" mbarrier, so that the two consumer warpgroups never wait for each other (no
// __syncthreads in the loop). SUM_MMA: Vᵀ carries a sixth dim group whose first row is 1 for every key,
// so P·V (N = 48) also sums each row's probabilities in its column 40, and the softmax loses its additions.
// Needs sm_90a.
#pragma once

#include <cuda.h>  // CUtensorMap

#include "wgmma.cuh"

namespace hd40 {

using diffbench::kernels::hd40::load_q_fragments;
using diffbench::kernels::hd40::SlotLayout;
using diffbench::kernels::hd40::tile_scores;
using diffbench::kernels::hd40::tile_values;
using diffbench::kernels::hd40::rescale_rows;

// A box of a 4-d tensor (its map's box) global -> shared by the copy engine at coordinates c0..c3 (innermost
// first), completed on `bar`; elements outside the tensor are zeros.
__device__ __forceinline__ void tensor_copy_4d(void* dst, const CUtensorMap* map, int c0, int c1, int c2, int c3,
                                               uint64_t* bar) {
  asm volatile(
      "cp.async.bulk.tensor.4d.shared::cluster.global.mbarrier::complete_tx::bytes [%0], [%1, {%2, %3, %4, %5}], "
      "[%6];\n" ::"r"(smem_addr(dst)),
      "l"(reinterpret_cast<uint64_t>(map)), "r"(c0), "r"(c1), "r"(c2), "r"(c3), "r"(smem_addr(bar))
      : "memory");
}

// 2^x (x <= 0, -inf included) on the FMA units: x rounded to an integer j by the 1.5·2^23 trick, 2^(x - j)
// by a degree-3 polynomial (relative error 7.5e-5 on [-0.5, 0.5], below half's rounding), j added to its
// exponent. Some of a tile's exponentials taken this way leave the MUFU units (16 a clock and SM) fewer.
__device__ __forceinline__ float exp2_poly(float x) {
  x = fmaxf(x, -126.f);  // (-127 would make 2^-127·p of a p just below 1 a NaN)
  const float r = x + 12582912.f;
  const float f = x - (r - 12582912.f);
  const float p = fmaf(fmaf(fmaf(0.0551714076f, f, 0.242610746f), f, 0.69326099f), f, 0.999928097f);
  return __int_as_float(__float_as_int(p) + (__float_as_int(r) << 23));
}

// D[64×64] (+)= A[64×16] (shared memory, descriptor a) · B[16×64] (shared memory, descriptor b).
__device__ __forceinline__ void wgmma_n64_ss(float (&d)[32], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %34, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n64k16.f32.f16.f16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15,"
      "%16,%17,%18,%19,%20,%21,%22,%23,%24,%25,%26,%27,%28,%29,%30,%31"
      "}, %32, %33, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15]), "+f"(d[16]),
        "+f"(d[17]), "+f"(d[18]), "+f"(d[19]), "+f"(d[20]), "+f"(d[21]), "+f"(d[22]), "+f"(d[23]), "+f"(d[24]),
        "+f"(d[25]), "+f"(d[26]), "+f"(d[27]), "+f"(d[28]), "+f"(d[29]), "+f"(d[30]), "+f"(d[31])
      : "l"(a), "l"(b), "r"(accumulate));
}

constexpr int kTmaThreads = 288;  // two consumer warpgroups and the producer warp

template <int STAGES, bool SUM_MMA>
__host__ __device__ constexpr int tma_smem_bytes(int rows = 128) {
  constexpr int kGroups = SUM_MMA ? 6 : 5;  // (Q: 48 halves a row, the core-matrix layout's room)
  return STAGES * packed_tile_bytes<kGroups>() + 2 * STAGES * 8 + rows * 48 * 2;
}

// Every tma kernel's start, in a block of CWG consumer warpgroups (64 query rows each) and one producer
// warp: the slots' mbarriers (full: the copy's bytes; empty: the 4·CWG consumer warps), the block's Q rows in
// q_s (row-major for ldmatrix, or with Q_SMEM in K's core-matrix layout, dims 40-47 zero), and the
// producer's loop: a packed tile of TILE bytes into a slot once every consumer warp has let go of it.
// False in the producer warp, which is then done.
// With k_map and v_map (tma_tensor_kernel): no packed tiles; each slot's K chunk 5 (dims 40-47) zeros and
// Vᵀ's dim group 5 the ones row, written once, and a tile's five 16-byte chunks of K and of V each one box
// copy (64 keys × 16 bytes) straight from the projection's rows.
template <int STAGES, int CWG, bool Q_SMEM, int TILE>
__device__ __forceinline__ bool tma_start(const WgParams& wp, unsigned char* smem, uint64_t* full, uint64_t* empty,
                                          __half* q_s, int row0, int tiles, const CUtensorMap* k_map = nullptr,
                                          const CUtensorMap* v_map = nullptr) {
  const Params& p = wp.p;
  constexpr int kThreadsHere = 128 * CWG + 32, kRowsHere = 64 * CWG;
  const int tid = threadIdx.x, bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const __half* q = p.q + b * p.q_batch + h * p.q_head;
  if (tid == 0) {
    for (int st = 0; st < STAGES; ++st) mbar_init(&full[st], 1), mbar_init(&empty[st], 4 * CWG);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  unsigned char* q_bytes = reinterpret_cast<unsigned char*>(q_s);
  for (int i = tid; i < kRowsHere * kChunks; i += kThreadsHere) {
    const int r = i / kChunks, c = i % kChunks, row = row0 + r;
    void* dst = Q_SMEM ? static_cast<void*>(q_bytes + ((r / 8) * 6 + c) * 128 + (r % 8) * 16)
                       : static_cast<void*>(q_s + r * kStride + c * 8);
    cp_async16(dst, q + static_cast<int64_t>(row < p.lq ? row : 0) * p.q_seq + c * 8, row < p.lq);
  }
  if constexpr (Q_SMEM) {
    for (int r = tid; r < kRowsHere; r += kThreadsHere)
      *reinterpret_cast<uint4*>(q_bytes + ((r / 8) * 6 + 5) * 128 + (r % 8) * 16) = make_uint4(0, 0, 0, 0);
  }
  if (k_map) {
    constexpr int kHalfTile = TILE / 2;
    for (int i = tid; i < STAGES * kWgKeys; i += kThreadsHere) {
      unsigned char* slot = smem + (i / kWgKeys) * TILE;
      const int r = i % kWgKeys;
      *reinterpret_cast<uint4*>(slot + 5 * kWgKeys * 16 + r * 16) = make_uint4(0, 0, 0, 0);
      *reinterpret_cast<uint4*>(slot + kHalfTile + 5 * kWgKeys * 16 + r * 16) = make_uint4(0x3C00u, 0, 0, 0);
    }
  }
  cp_async_commit();
  cp_async_wait_all();
  fence_async_shared();
  __syncthreads();
  if (tid >> 5 != 4 * CWG) return true;
  if (k_map && (tid & 31) == 0) {
    constexpr int kHalfTile = TILE / 2;
    for (int t = 0; t < tiles; ++t) {
      const int st = t % STAGES;
      if (t >= STAGES) mbar_wait(&empty[st], (t / STAGES - 1) & 1);
      mbar_expect_tx(&full[st], 10 * kWgKeys * 16);
      for (int c = 0; c < kChunks; ++c) {
        tensor_copy_4d(smem + st * TILE + c * kWgKeys * 16, k_map, 8 * c, h, t * kWgKeys, b, &full[st]);
        tensor_copy_4d(smem + st * TILE + kHalfTile + c * kWgKeys * 16, v_map, 8 * c, h, t * kWgKeys, b, &full[st]);
      }
    }
  } else if ((tid & 31) == 0) {
    const unsigned char* src =
        reinterpret_cast<const unsigned char*>(wp.packed) + static_cast<int64_t>(bh) * tiles * TILE;
    for (int t = 0; t < tiles; ++t) {
      const int st = t % STAGES;
      if (t >= STAGES) mbar_wait(&empty[st], (t / STAGES - 1) & 1);
      mbar_expect_tx(&full[st], TILE);
      bulk_copy(smem + st * TILE, src + static_cast<int64_t>(t) * TILE, TILE, &full[st]);
    }
  }
  return false;
}

// The library's store_o_by_sum_column for this block's batch·head.
__device__ __forceinline__ void store_o_by_sum_column(const float (&o)[24], const Params& p, int row0, int warp,
                                                      int lane) {
  const int b = blockIdx.y / p.heads, h = blockIdx.y % p.heads;
  diffbench::kernels::hd40::store_o_by_sum_column(o, p.o + b * p.o_batch + h * p.o_head, p.o_seq, p.lq, row0, warp,
                                                  lane);
}

// Grid: (ceil(lq / (64 · CWG)), batch · heads), 128 · CWG + 32 threads (CWG consumer warpgroups of 64 query
// rows and the producer warp). wp.packed: pack_kv_tiles<SUM_MMA ? 6 : 5>. POLY: that many of a lane's
// eight 4-score groups a tile take their exponentials by exp2_poly. MINB: blocks an SM the registers must
// allow. Q_SMEM: Q stays in shared memory in K's core-matrix layout, Q·Kᵀ's A operand by descriptor (12
// registers fewer).
template <int STAGES, bool SUM_MMA, int POLY = 0, int CWG = 2, int MINB = 2, bool Q_SMEM = false>
__global__ void __launch_bounds__(128 * CWG + 32, MINB) tma_attention_kernel(const WgParams wp) {
  const Params& p = wp.p;
  constexpr int kRowsHere = 64 * CWG;
  constexpr int kGroups = SUM_MMA ? 6 : 5, kTile = packed_tile_bytes<kGroups>(), kKBytes = kWgKeys * 6 * 16;
  constexpr int kN = kWgKeys / 8, kO = 4 * kGroups;
  extern __shared__ __align__(128) unsigned char smem[];
  const SlotLayout<STAGES, kTile> slots(smem);
  uint64_t *full = slots.full, *empty = slots.empty;
  __half* q_s = slots.q_s;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int row0 = blockIdx.x * kRowsHere;
  const int tiles = (p.lk + kWgKeys - 1) / kWgKeys;

  if (!tma_start<STAGES, CWG, Q_SMEM, kTile>(wp, smem, full, empty, q_s, row0, tiles)) return;

  uint32_t qa[3][4];
  if constexpr (!Q_SMEM) load_q_fragments(qa, q_s, warp, lane);
  const uint64_t k_desc0 = smem_desc(smem, 128, 768), v_desc0 = smem_desc(smem + kKBytes, 128, kWgKeys * 16);
  const uint64_t q_desc0 = smem_desc(reinterpret_cast<unsigned char*>(q_s) + (warp / 4) * 8 * 768, 128, 768);

  float o[kO];
#pragma unroll
  for (int i = 0; i < kO; ++i) o[i] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY, sum0 = 0.f, sum1 = 0.f;

  for (int t = 0; t < tiles; ++t) {
    const int st = t % STAGES;
    mbar_wait(&full[st], (t / STAGES) & 1);
    float s[kWgKeys / 2];
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < 3; ++kk) {
      const uint64_t kd = k_desc0 + (st * kTile + kk * 256) / 16;
      if constexpr (Q_SMEM)
        wgmma_n64_ss(s, q_desc0 + kk * 256 / 16, kd, kk > 0);
      else
        wgmma_n64(s, qa[kk], kd, kk > 0);
    }
    wgmma_commit();
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
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      auto ex = [&](float x) { return n < POLY ? exp2_poly(x) : exp2_approx(x); };
      const float e0 = ex(s[4 * n] * p.scale_log2 - new0), e1 = ex(s[4 * n + 1] * p.scale_log2 - new0);
      const float e2 = ex(s[4 * n + 2] * p.scale_log2 - new1), e3 = ex(s[4 * n + 3] * p.scale_log2 - new1);
      if constexpr (!SUM_MMA) add0 += e0 + e1, add1 += e2 + e3;
      pa[n >> 1][(n & 1) * 2 + 0] = pack_half2(e0, e1);
      pa[n >> 1][(n & 1) * 2 + 1] = pack_half2(e2, e3);
    }
    if constexpr (!SUM_MMA) sum0 = sum0 * corr0 + add0, sum1 = sum1 * corr1 + add1;
    rescale_rows(o, corr0, corr1);
    wgmma_fence();
#pragma unroll
    for (int kk = 0; kk < kN / 2; ++kk) {
      const uint64_t desc = v_desc0 + (st * kTile + kk * 256) / 16;
      if constexpr (SUM_MMA)
        wgmma_n48(o, pa[kk], desc);
      else
        wgmma_n40(o, pa[kk], desc, 1);
    }
    wgmma_commit();
    wgmma_wait();
    reg_fence(o);
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[st]);  // this warp is done with the slot
  }

  if constexpr (SUM_MMA) {
    store_o_by_sum_column(o, p, row0, warp, lane);
  } else {
    sum0 = quad_sum(sum0), sum1 = quad_sum(sum1);
    __half* out = p.o + b * p.o_batch + h * p.o_head;
    const float inv0 = 1.f / sum0, inv1 = 1.f / sum1;
    const int r0 = row0 + warp * 16 + (lane >> 2);
#pragma unroll
    for (int n = 0; n < 5; ++n) store_row_pair(out, p.o_seq, p.lq, r0, n * 8 + (lane & 3) * 2, &o[4 * n], inv0, inv1);
  }
}

// tma_attention_kernel<STAGES, true> with FlashAttention-3's overlap inside a warpgroup: tile t + 1's
// S = Q·Kᵀ and tile t's P·V are issued together, t + 1's softmax runs while P·V is in flight (two P
// buffers), and O is rescaled once P·V is done. MINB: blocks an SM the registers must allow; CWG consumer
// warpgroups (64 query rows each) and the producer warp a block.
template <int STAGES, int MINB, int CWG = 2>
__global__ void __launch_bounds__(128 * CWG + 32, MINB) tma_pipelined_kernel(const WgParams wp) {
  const Params& p = wp.p;
  constexpr int kRowsHere = 64 * CWG;
  constexpr int kTile = packed_tile_bytes<6>(), kKBytes = kWgKeys * 6 * 16;
  extern __shared__ __align__(128) unsigned char smem[];
  const SlotLayout<STAGES, kTile> slots(smem);
  uint64_t *full = slots.full, *empty = slots.empty;
  __half* q_s = slots.q_s;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int row0 = blockIdx.x * kRowsHere;
  const int tiles = (p.lk + kWgKeys - 1) / kWgKeys;

  if (!tma_start<STAGES, CWG, false, kTile>(wp, smem, full, empty, q_s, row0, tiles)) return;

  uint32_t qa[3][4];
  load_q_fragments(qa, q_s, warp, lane);
  const uint64_t k_desc0 = smem_desc(smem, 128, 768), v_desc0 = smem_desc(smem + kKBytes, 128, kWgKeys * 16);
  auto issue_s = [&](float(&s)[kWgKeys / 2], int t) {
    const int st = t % STAGES;
    mbar_wait(&full[st], (t / STAGES) & 1);
#pragma unroll
    for (int kk = 0; kk < 3; ++kk) wgmma_n64(s, qa[kk], k_desc0 + (st * kTile + kk * 256) / 16, kk > 0);
  };

  float o[24];
#pragma unroll
  for (int i = 0; i < 24; ++i) o[i] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY, corr0, corr1;
  float s[kWgKeys / 2];
  uint32_t pa0[kWgKeys / 16][4], pa1[kWgKeys / 16][4];  // P of tiles t and t + 1, in turn
  wgmma_fence();
  issue_s(s, 0);
  wgmma_commit();
  wgmma_wait();
  reg_fence(s);
  diffbench::kernels::hd40::tile_softmax(s, 0, p.lk, p.scale_log2, lane, max0, max1, corr0, corr1, pa0);

  auto step = [&](int t, const uint32_t(&cur)[kWgKeys / 16][4], uint32_t(&next)[kWgKeys / 16][4]) {
    const bool more = t + 1 < tiles;
    wgmma_fence();
    if (more) issue_s(s, t + 1);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < kWgKeys / 16; ++kk) wgmma_n48(o, cur[kk], v_desc0 + ((t % STAGES) * kTile + kk * 256) / 16);
    wgmma_commit();
    float c0 = 1.f, c1 = 1.f;
    if (more) {
      asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
      reg_fence(s);
      diffbench::kernels::hd40::tile_softmax(s, t + 1, p.lk, p.scale_log2, lane, max0, max1, c0, c1, next);
    }
    wgmma_wait();
    reg_fence(o);
    __syncwarp();
    if (lane == 0) mbar_arrive(&empty[t % STAGES]);
    rescale_rows(o, c0, c1);
  };
  for (int t = 0; t < tiles; t += 2) {
    step(t, pa0, pa1);
    if (t + 1 < tiles) step(t + 1, pa1, pa0);
  }

  store_o_by_sum_column(o, p, row0, warp, lane);
}

// D[64×32] (+)= A[64×16] (registers) · B[16×32] (shared memory, descriptor b); D = A·B when accumulate is 0.
__device__ __forceinline__ void wgmma_n32(float (&d)[16], const uint32_t (&a)[4], uint64_t b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %21, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15"
      "}, {%16,%17,%18,%19}, %20, p, 1, 1, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "l"(b), "r"(accumulate));
}

// D[64×32] (+)= A[64×16] (shared memory, descriptor a) · B[16×32] (shared memory, descriptor b).
__device__ __forceinline__ void wgmma_n32_ss(float (&d)[16], uint64_t a, uint64_t b, int accumulate) {
  asm volatile(
      "{\n.reg .pred p;\nsetp.ne.b32 p, %18, 0;\n"
      "wgmma.mma_async.sync.aligned.m64n32k16.f32.f16.f16 {"
      "%0,%1,%2,%3,%4,%5,%6,%7,%8,%9,%10,%11,%12,%13,%14,%15"
      "}, %16, %17, p, 1, 1, 0, 0;\n}\n"
      : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3]), "+f"(d[4]), "+f"(d[5]), "+f"(d[6]), "+f"(d[7]), "+f"(d[8]),
        "+f"(d[9]), "+f"(d[10]), "+f"(d[11]), "+f"(d[12]), "+f"(d[13]), "+f"(d[14]), "+f"(d[15])
      : "l"(a), "l"(b), "r"(accumulate));
}

// A half tile's (32 keys') softmax for tma_half_pipelined_kernel: the library's tile_softmax's, and the factors O
// must be rescaled by taken only in a warp where a row's maximum grew (1 otherwise: fewer exponentials).
__device__ __forceinline__ void half_softmax(float (&s)[16], int h, const Params& p, int lane, float& max0, float& max1,
                                             float& corr0, float& corr1, uint32_t (&pa)[2][4]) {
  if ((h + 1) * 32 > p.lk) {
#pragma unroll
    for (int n = 0; n < 4; ++n) {
      const int key = h * 32 + n * 8 + (lane & 3) * 2;
      if (key >= p.lk) s[4 * n] = s[4 * n + 2] = -INFINITY;
      if (key + 1 >= p.lk) s[4 * n + 1] = s[4 * n + 3] = -INFINITY;
    }
  }
  float cur0 = -INFINITY, cur1 = -INFINITY;
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    cur0 = fmaxf(cur0, fmaxf(s[4 * n], s[4 * n + 1]));
    cur1 = fmaxf(cur1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
  }
  cur0 = quad_max(cur0), cur1 = quad_max(cur1);
  const float new0 = fmaxf(max0, cur0 * p.scale_log2), new1 = fmaxf(max1, cur1 * p.scale_log2);
  corr0 = corr1 = 1.f;
  if (__any_sync(0xffffffffu, new0 != max0 || new1 != max1))
    corr0 = exp2_approx(max0 - new0), corr1 = exp2_approx(max1 - new1);
  max0 = new0, max1 = new1;
#pragma unroll
  for (int n = 0; n < 4; ++n) {
    pa[n >> 1][(n & 1) * 2 + 0] =
        pack_half2(exp2_approx(s[4 * n] * p.scale_log2 - new0), exp2_approx(s[4 * n + 1] * p.scale_log2 - new0));
    pa[n >> 1][(n & 1) * 2 + 1] =
        pack_half2(exp2_approx(s[4 * n + 2] * p.scale_log2 - new1), exp2_approx(s[4 * n + 3] * p.scale_log2 - new1));
  }
}

// tma_attention_kernel<STAGES, true>'s slots and producer, the consumers pipelined by half tiles (32 keys)
// in the registers one whole tile took: half h + 1's S = Q·Kᵀ (N = 32) and half h's P·V (two k16 steps) are
// issued together, h + 1's softmax runs while P·V is in flight, O is rescaled once it is done; two S and
// two P buffers of half the size, so two blocks still fit an SM. Q_SMEM: Q stays in shared memory in the
// K-major core-matrix layout (K's), the product's A operand by descriptor, which frees its 12 registers.
template <int STAGES, bool Q_SMEM = false>
__global__ void __launch_bounds__(kTmaThreads, 2) tma_half_pipelined_kernel(const WgParams wp) {
  const Params& p = wp.p;
  constexpr int kTile = packed_tile_bytes<6>(), kKBytes = kWgKeys * 6 * 16;
  extern __shared__ __align__(128) unsigned char smem[];
  const SlotLayout<STAGES, kTile> slots(smem);
  uint64_t *full = slots.full, *empty = slots.empty;
  __half* q_s = slots.q_s;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int row0 = blockIdx.x * 128;
  const int tiles = (p.lk + kWgKeys - 1) / kWgKeys, halves = (p.lk + 31) / 32;

  if (!tma_start<STAGES, 2, Q_SMEM, kTile>(wp, smem, full, empty, q_s, row0, tiles)) return;

  uint32_t qa[3][4];
  if constexpr (!Q_SMEM) load_q_fragments(qa, q_s, warp, lane);
  const uint64_t k_desc0 = smem_desc(smem, 128, 768), v_desc0 = smem_desc(smem + kKBytes, 128, kWgKeys * 16);
  const uint64_t q_desc0 = smem_desc(reinterpret_cast<unsigned char*>(q_s) + (warp / 4) * 8 * 768, 128, 768);
  // half hh: tile hh / 2 in slot (hh / 2) % STAGES; its K rows are row groups 4·(hh & 1)..+3 (768 bytes
  // each), its keys Vᵀ's key chunks 4·(hh & 1)..+3 (128 bytes each)
  auto issue_s = [&](float(&s)[16], int hh) {
    const int t = hh >> 1, st = t % STAGES;
    if ((hh & 1) == 0) mbar_wait(&full[st], (t / STAGES) & 1);
#pragma unroll
    for (int kk = 0; kk < 3; ++kk) {
      const uint64_t kd = k_desc0 + (st * kTile + (hh & 1) * 3072 + kk * 256) / 16;
      if constexpr (Q_SMEM)
        wgmma_n32_ss(s, q_desc0 + kk * 256 / 16, kd, kk > 0);
      else
        wgmma_n32(s, qa[kk], kd, kk > 0);
    }
  };

  float o[24];
#pragma unroll
  for (int i = 0; i < 24; ++i) o[i] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY, c0, c1;
  float s_a[16], s_b[16];
  uint32_t pa_a[2][4], pa_b[2][4];
  wgmma_fence();
  issue_s(s_a, 0);
  wgmma_commit();
  wgmma_wait();
  reg_fence(s_a);
  half_softmax(s_a, 0, p, lane, max0, max1, c0, c1, pa_a);

  auto step = [&](int hh, float(&s_next)[16], const uint32_t(&cur)[2][4], uint32_t(&next)[2][4]) {
    const bool more = hh + 1 < halves;
    const int st = (hh >> 1) % STAGES;
    wgmma_fence();
    if (more) issue_s(s_next, hh + 1);
    wgmma_commit();
#pragma unroll
    for (int kk = 0; kk < 2; ++kk) wgmma_n48(o, cur[kk], v_desc0 + (st * kTile + (hh & 1) * 512 + kk * 256) / 16);
    wgmma_commit();
    float d0 = 1.f, d1 = 1.f;
    if (more) {
      asm volatile("wgmma.wait_group.sync.aligned 1;\n" ::: "memory");
      reg_fence(s_next);
      half_softmax(s_next, hh + 1, p, lane, max0, max1, d0, d1, next);
    }
    wgmma_wait();
    reg_fence(o);
    if ((hh & 1) || !more) {  // the tile's second half (or the last) is done with its slot
      __syncwarp();
      if (lane == 0) mbar_arrive(&empty[st]);
    }
    rescale_rows(o, d0, d1);
  };
  for (int hh = 0; hh < halves; hh += 2) {
    step(hh, s_b, pa_a, pa_b);
    if (hh + 1 < halves) step(hh + 1, s_a, pa_b, pa_a);
  }

  store_o_by_sum_column(o, p, row0, warp, lane);
}

// The library's consume_tiles with fewer instructions a tile (variants 60-64; round 13, not kept: no faster):
// unrolled by the slot, so each slot's descriptors are constants added to the loop's start values (no modulo,
// no descriptor arithmetic a tile); a tile's maximum started from its own scores; O's factors computed (two
// exponentials) and applied only in a warp where some row's maximum moved. LAZY: a row's running maximum moves
// only when a tile's exceeds it by more than kLazySlack (log2 units), so P is at most 2^kLazySlack in half
// (FlashAttention-4's way): the factors are then rare.
constexpr float kLazySlack = 8.f;

template <bool LAZY>
__device__ __forceinline__ bool lean_softmax(float (&s)[kWgKeys / 2], bool last, int t, int lk, float scale_log2,
                                             int lane, float& max0, float& max1, float& corr0, float& corr1,
                                             uint32_t (&pa)[kWgKeys / 16][4]) {
  constexpr int kN = kWgKeys / 8;
  if (last) {  // the keys past lk
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      const int key = t * kWgKeys + n * 8 + (lane & 3) * 2;
      if (key >= lk) s[4 * n] = s[4 * n + 2] = -INFINITY;
      if (key + 1 >= lk) s[4 * n + 1] = s[4 * n + 3] = -INFINITY;
    }
  }
  float cur0 = fmaxf(s[0], s[1]), cur1 = fmaxf(s[2], s[3]);
#pragma unroll
  for (int n = 1; n < kN; ++n) {
    cur0 = fmaxf(cur0, fmaxf(s[4 * n], s[4 * n + 1]));
    cur1 = fmaxf(cur1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
  }
  cur0 = quad_max(cur0) * scale_log2, cur1 = quad_max(cur1) * scale_log2;
  const bool up0 = LAZY ? cur0 > max0 + kLazySlack : cur0 > max0;
  const bool up1 = LAZY ? cur1 > max1 + kLazySlack : cur1 > max1;
  const float new0 = up0 ? cur0 : max0, new1 = up1 ? cur1 : max1;
  const bool moved = __any_sync(0xffffffffu, up0 || up1);
  if (moved) {
    corr0 = up0 ? exp2_approx(max0 - new0) : 1.f;
    corr1 = up1 ? exp2_approx(max1 - new1) : 1.f;
  }
  max0 = new0, max1 = new1;
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    const float e0 = exp2_approx(s[4 * n] * scale_log2 - new0), e1 = exp2_approx(s[4 * n + 1] * scale_log2 - new0);
    const float e2 = exp2_approx(s[4 * n + 2] * scale_log2 - new1), e3 = exp2_approx(s[4 * n + 3] * scale_log2 - new1);
    pa[n >> 1][(n & 1) * 2 + 0] = pack_half2(e0, e1);
    pa[n >> 1][(n & 1) * 2 + 1] = pack_half2(e2, e3);
  }
  return moved;
}

template <int STAGES, int TILE, int K_STEP, bool V_MN, bool LAZY>
__device__ __forceinline__ void consume_tiles_lean(float (&o)[24], const uint32_t (&qa)[3][4], uint64_t k_desc0,
                                                   uint64_t v_desc0, uint64_t* full, uint64_t* empty, int tiles,
                                                   int lk, float scale_log2, int lane) {
  constexpr int kN = kWgKeys / 8;
#pragma unroll
  for (int i = 0; i < 24; ++i) o[i] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY;
  uint32_t parity = 0;
  for (int t0 = 0; t0 < tiles; t0 += STAGES, parity ^= 1) {
#pragma unroll
    for (int st = 0; st < STAGES; ++st) {
      const int t = t0 + st;
      if (t >= tiles) break;
      mbar_wait(&full[st], parity);
      float s[kWgKeys / 2];
      tile_scores<TILE, K_STEP>(s, qa, k_desc0, st);
      float corr0, corr1;
      uint32_t pa[kN / 2][4];
      if (lean_softmax<LAZY>(s, (t + 1) * kWgKeys > lk, t, lk, scale_log2, lane, max0, max1, corr0, corr1, pa)) {
#pragma unroll
        for (int i = 0; i < 6; ++i)
          o[4 * i] *= corr0, o[4 * i + 1] *= corr0, o[4 * i + 2] *= corr1, o[4 * i + 3] *= corr1;
      }
      tile_values<TILE, V_MN>(o, pa, v_desc0, st, empty, lane);
    }
  }
}

// Variant 41 (packed tiles) with consume_tiles_lean: 60 (STAGES 3), 61 (LAZY), 62 (LAZY, 4 slots).
template <int STAGES, bool LAZY>
__global__ void __launch_bounds__(kTmaThreads, 2) tma_lean_kernel(const WgParams wp) {
  const Params& p = wp.p;
  constexpr int kTile = packed_tile_bytes<6>(), kKBytes = kWgKeys * 6 * 16;
  extern __shared__ __align__(128) unsigned char smem[];
  const SlotLayout<STAGES, kTile> slots(smem);
  uint64_t *full = slots.full, *empty = slots.empty;
  __half* q_s = slots.q_s;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row0 = blockIdx.x * 128, tiles = (p.lk + kWgKeys - 1) / kWgKeys;
  if (!tma_start<STAGES, 2, false, kTile>(wp, smem, full, empty, q_s, row0, tiles)) return;
  uint32_t qa[3][4];
  load_q_fragments(qa, q_s, warp, lane);
  const uint64_t k_desc0 = smem_desc(smem, 128, 768), v_desc0 = smem_desc(smem + kKBytes, 128, kWgKeys * 16);
  float o[24];
  consume_tiles_lean<STAGES, kTile, 256, false, LAZY>(o, qa, k_desc0, v_desc0, full, empty, tiles, p.lk,
                                                      p.scale_log2, lane);
  store_o_by_sum_column(o, p, row0, warp, lane);
}

// tma_attention_kernel<3, true> without the packing kernel: K and V come by box copies of the tensor maps
// k_map, v_map ([b][key][head][dim], tma_start) into a slot as 6 chunks × 64 keys × 16 bytes each: K's a
// K-major operand (leading offset 1024 bytes between dim chunks, stride offset 128 between key groups), V's
// an MN-major one (dims contiguous: wgmma's transposed B), whose two offsets SWAP_V orders (the probe of
// which is right: the wrong one gives a large error). LEAN: consume_tiles_lean<..., LAZY> (63, 64).
template <bool SWAP_V, bool LEAN = false>
__global__ void __launch_bounds__(kTmaThreads, 2)
    tma_tensor_kernel(const WgParams wp, const __grid_constant__ CUtensorMap k_map,
                      const __grid_constant__ CUtensorMap v_map) {
  const Params& p = wp.p;
  constexpr int kStages = 3, kTile = packed_tile_bytes<6>();
  extern __shared__ __align__(128) unsigned char smem[];
  const SlotLayout<kStages, kTile> slots(smem);
  uint64_t *full = slots.full, *empty = slots.empty;
  __half* q_s = slots.q_s;
  const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5;
  const int row0 = blockIdx.x * 128, tiles = (p.lk + kWgKeys - 1) / kWgKeys;
  if (!tma_start<kStages, 2, false, kTile>(wp, smem, full, empty, q_s, row0, tiles, &k_map, &v_map)) return;

  uint32_t qa[3][4];
  load_q_fragments(qa, q_s, warp, lane);
  const uint64_t k_desc0 = smem_desc(smem, 1024, 128);
  const uint64_t v_desc0 = smem_desc(smem + kTile / 2, SWAP_V ? 128 : 1024, SWAP_V ? 1024 : 128);
  float o[24];
  if constexpr (LEAN)
    consume_tiles_lean<kStages, kTile, 2048, true, true>(o, qa, k_desc0, v_desc0, full, empty, tiles, p.lk,
                                                         p.scale_log2, lane);
  else
    diffbench::kernels::hd40::consume_tiles<kStages, kTile, 2048, true>(o, qa, k_desc0, v_desc0, full, empty, tiles,
                                                                        p.lk, p.scale_log2, lane);
  store_o_by_sum_column(o, p, row0, warp, lane);
}

}  // namespace hd40
