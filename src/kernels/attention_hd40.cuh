// Softmax attention at head dim 40 (SD 1.x's first level) on Hopper (sm_90a), where LibTorch's fused kernels
// compute a head of 40 as one of 64. Two kernels (docs/performance.md, issue 21's rounds 11 and 12):
//   pack_kv_tiles: K and V of each batch·head, 64 keys a tile, in exactly the layout the products read from
//     shared memory (8 × 16-byte core matrices, no swizzle): K as 8 row groups × 6 chunks of 8 dims (the sixth
//     zero: the head padded to 48, the products' K step being 16), then Vᵀ as 6 dim groups × 8 key chunks, the
//     sixth group's first row 1 for every key (so P·V also sums each row's probabilities, in its column 40).
//   attention: 128 query rows a block, two consumer warpgroups of 64 rows and one producer warp. The producer
//     brings tile after tile by the bulk copy engine (one instruction a tile) into kStages slots, each with a
//     "full" and an "empty" mbarrier; the consumers never wait for each other. A consumer warpgroup: S = Q·Kᵀ
//     (wgmma m64n64k16 ×3, Q from registers), the online softmax in float (running maximum; O rescaled only
//     where a row's maximum grew), P in half as the register operand of O += P·[V | 1] (wgmma m64n48k16 ×4).
#pragma once

#include <cuda_fp16.h>

#include <cstdint>

#include "sm90.cuh"

namespace diffbench::kernels::hd40 {

using namespace sm90;  // NOLINT(build/namespaces): the primitives by their short names

constexpr int kHead = 40;                      // head dimension
constexpr int kChunks = 5;                     // 16-byte chunks a row of q, k, v
constexpr int kKeys = 64;                      // keys a tile
constexpr int kKBytes = kKeys * 6 * 16;        // a tile's K: 8 row groups × 6 chunks × 128 bytes
constexpr int kVBytes = 6 * kKeys * 16;        // a tile's Vᵀ and ones row: 6 dim groups × 8 key chunks
constexpr int kTileBytes = kKBytes + kVBytes;  // one packed tile
constexpr int kRows = 128;                     // query rows a block
constexpr int kQStride = 40;                   // Q's row stride in shared memory, halves (ldmatrix)
constexpr int kThreads = 288;                  // two consumer warpgroups and the producer warp
constexpr int kStages = 3;                     // tiles in shared memory
constexpr int kSmemBytes = kStages * kTileBytes + 2 * kStages * 8 + kRows * kQStride * 2;

struct Params {
  const __half* q;
  const __half* k;
  const __half* v;
  __half* o;
  const uint4* packed;             // [batch·heads][tiles][kTileBytes / 16]
  int64_t q_batch, q_head, q_seq;  // strides in elements; the head dimension is contiguous
  int64_t k_batch, k_head, k_seq;
  int64_t v_batch, v_head, v_seq;
  int64_t o_batch, o_head, o_seq;
  int heads;
  int lq, lk, tiles;
  float scale_log2;  // softmax scale · log2(e)
};

// Block: one key tile of one batch·head (grid: tiles, batch·heads), 128 threads. GROUPS: Vᵀ's dim groups, 6
// with the ones row (the attention kernel's), 5 without (tools/attention-hd40's older variants, which also
// bring their own P: any type with Params' k, v, their strides, heads and lk).
template <int GROUPS = 6, typename P>
__global__ void pack_kv_tiles(const P p, uint4* packed, int tiles) {
  constexpr int kK = kKBytes / 16, kV = GROUPS * kKeys / 8 * 8;
  __shared__ __align__(16) __half ks[kKeys][kHead], vs[kKeys][kHead + 2];
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads, tile = blockIdx.x;
  const __half* k = p.k + b * p.k_batch + h * p.k_head;
  const __half* v = p.v + b * p.v_batch + h * p.v_head;
  for (int i = threadIdx.x; i < kKeys * kChunks; i += blockDim.x) {
    const int r = i / kChunks, c = i % kChunks, key = tile * kKeys + r;
    const bool valid = key < p.lk;
    const uint4 kq = valid ? *reinterpret_cast<const uint4*>(k + static_cast<int64_t>(key) * p.k_seq + c * 8)
                           : make_uint4(0, 0, 0, 0);
    const uint4 vq = valid ? *reinterpret_cast<const uint4*>(v + static_cast<int64_t>(key) * p.v_seq + c * 8)
                           : make_uint4(0, 0, 0, 0);
    *reinterpret_cast<uint4*>(&ks[r][c * 8]) = kq;
    const __half* ve = reinterpret_cast<const __half*>(&vq);
#pragma unroll
    for (int n = 0; n < 8; ++n) vs[r][c * 8 + n] = ve[n];
  }
  __syncthreads();
  uint4* out = packed + (static_cast<int64_t>(bh) * tiles + tile) * (kK + kV);
  for (int j = threadIdx.x; j < kK + kV; j += blockDim.x) {
    __align__(16) __half e[8];
    if (j < kK) {  // core matrix (row group, chunk): 8 keys' 16 bytes
      const int core = j / 8, r = (core / 6) * 8 + j % 8, c = core % 6;
      *reinterpret_cast<uint4*>(e) = c < 5 ? *reinterpret_cast<const uint4*>(&ks[r][c * 8]) : make_uint4(0, 0, 0, 0);
    } else {  // core matrix (dim group, key chunk): 8 dims' 8 keys
      const int jj = j - kK, core = jj / 8, d = core / (kKeys / 8) * 8 + jj % 8, kc = core % (kKeys / 8);
#pragma unroll
      for (int n = 0; n < 8; ++n)
        e[n] = d < kHead ? vs[kc * 8 + n][d] : __float2half(d == kHead && tile * kKeys + kc * 8 + n < p.lk ? 1.f : 0.f);
    }
    out[j] = *reinterpret_cast<const uint4*>(e);
  }
}

// One 64-key tile's softmax on S = Q·Kᵀ (this lane's 32 scores of two rows, wgmma's accumulator layout): the
// keys past lk masked, the rows' running maxima (scaled by scale_log2) advanced, P in half as P·V's register
// operand, and the factors O must be rescaled by (corr).
__device__ __forceinline__ void tile_softmax(float (&s)[kKeys / 2], int t, int lk, float scale_log2, int lane,
                                             float& max0, float& max1, float& corr0, float& corr1,
                                             uint32_t (&pa)[kKeys / 16][4]) {
  constexpr int kN = kKeys / 8;
  if ((t + 1) * kKeys > lk) {  // the last tile's keys past lk
#pragma unroll
    for (int n = 0; n < kN; ++n) {
      const int key = t * kKeys + n * 8 + (lane & 3) * 2;
      if (key >= lk) s[4 * n] = s[4 * n + 2] = -INFINITY;
      if (key + 1 >= lk) s[4 * n + 1] = s[4 * n + 3] = -INFINITY;
    }
  }
  float cur0 = -INFINITY, cur1 = -INFINITY;
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    cur0 = fmaxf(cur0, fmaxf(s[4 * n], s[4 * n + 1]));
    cur1 = fmaxf(cur1, fmaxf(s[4 * n + 2], s[4 * n + 3]));
  }
  cur0 = quad_max(cur0), cur1 = quad_max(cur1);
  const float new0 = fmaxf(max0, cur0 * scale_log2), new1 = fmaxf(max1, cur1 * scale_log2);
  corr0 = exp2_approx(max0 - new0), corr1 = exp2_approx(max1 - new1);
  max0 = new0, max1 = new1;
#pragma unroll
  for (int n = 0; n < kN; ++n) {
    const float e0 = exp2_approx(s[4 * n] * scale_log2 - new0), e1 = exp2_approx(s[4 * n + 1] * scale_log2 - new0);
    const float e2 = exp2_approx(s[4 * n + 2] * scale_log2 - new1), e3 = exp2_approx(s[4 * n + 3] * scale_log2 - new1);
    pa[n >> 1][(n & 1) * 2 + 0] = pack_half2(e0, e1);
    pa[n >> 1][(n & 1) * 2 + 1] = pack_half2(e2, e3);
  }
}

// O (N accumulators of this lane's two rows, wgmma's layout) rescaled by corr0, corr1, in a warp where some row
// needs it (its maximum grew).
template <int N>
__device__ __forceinline__ void rescale_rows(float (&o)[N], float corr0, float corr1) {
  if (__any_sync(0xffffffffu, corr0 != 1.f || corr1 != 1.f)) {
#pragma unroll
    for (int i = 0; i < N / 4; ++i)
      o[4 * i] *= corr0, o[4 * i + 1] *= corr0, o[4 * i + 2] *= corr1, o[4 * i + 3] *= corr1;
  }
}

// Q's 48 dims (40 and zeros) of this warp's 16 rows as three k16 register operands, from q_s (row-major, a
// row every kQStride halves).
__device__ __forceinline__ void load_q_fragments(uint32_t (&qa)[3][4], const __half* q_s, int warp, int lane) {
  const int r = warp * 16 + (lane & 15);
  ldmatrix_x4(qa[0], q_s + r * kQStride + (lane >> 4) * 8);
  ldmatrix_x4(qa[1], q_s + r * kQStride + 16 + (lane >> 4) * 8);
  uint32_t a8[2];
  ldmatrix_x2(a8, q_s + r * kQStride + 32);
  qa[2][0] = a8[0], qa[2][1] = a8[1], qa[2][2] = 0, qa[2][3] = 0;
}

// S = Q·Kᵀ of the tile in slot st of TILE bytes (K's k16 steps K_STEP bytes apart from k_desc0), waited for.
template <int TILE, int K_STEP>
__device__ __forceinline__ void tile_scores(float (&s)[kKeys / 2], const uint32_t (&qa)[3][4], uint64_t k_desc0,
                                            int st) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < 3; ++kk) wgmma_n64(s, qa[kk], k_desc0 + (st * TILE + kk * K_STEP) / 16, kk > 0);
  wgmma_commit();
  wgmma_wait();
  reg_fence(s);
}

// O += P·[V | 1] of the tile in slot st of TILE bytes (V's k16 steps 256 bytes apart from v_desc0; V_MN: V as
// the MN-major operand), waited for; then this warp gives the slot back (`empty`).
template <int TILE, bool V_MN>
__device__ __forceinline__ void tile_values(float (&o)[24], const uint32_t (&pa)[kKeys / 16][4], uint64_t v_desc0,
                                            int st, uint64_t* empty, int lane) {
  wgmma_fence();
#pragma unroll
  for (int kk = 0; kk < kKeys / 16; ++kk) wgmma_n48<V_MN>(o, pa[kk], v_desc0 + (st * TILE + kk * 256) / 16);
  wgmma_commit();
  wgmma_wait();
  reg_fence(o);
  __syncwarp();
  if (lane == 0) mbar_arrive(&empty[st]);  // this warp is done with the slot
}

// A consumer warp's loop over the ring of STAGES slots of TILE bytes (one 64-key tile each, filled by the
// producer on `full`, given back on `empty`): S = Q·Kᵀ (tile_scores), the softmax, O += P·[V | 1]
// (tile_values). O ends with the unnormalised output in its first 40 columns and the row sums in column 40.
template <int STAGES, int TILE, int K_STEP, bool V_MN>
__device__ __forceinline__ void consume_tiles(float (&o)[24], const uint32_t (&qa)[3][4], uint64_t k_desc0,
                                              uint64_t v_desc0, uint64_t* full, uint64_t* empty, int tiles, int lk,
                                              float scale_log2, int lane) {
#pragma unroll
  for (int i = 0; i < 24; ++i) o[i] = 0.f;
  float max0 = -INFINITY, max1 = -INFINITY;
  for (int t = 0; t < tiles; ++t) {
    const int st = t % STAGES;
    mbar_wait(&full[st], (t / STAGES) & 1);
    float s[kKeys / 2];
    tile_scores<TILE, K_STEP>(s, qa, k_desc0, st);
    float corr0, corr1;
    uint32_t pa[kKeys / 16][4];
    tile_softmax(s, t, lk, scale_log2, lane, max0, max1, corr0, corr1, pa);
    rescale_rows(o, corr0, corr1);
    tile_values<TILE, V_MN>(o, pa, v_desc0, st, empty, lane);
  }
}

// A block's shared memory: STAGES slots of TILE bytes, their "full" and "empty" mbarriers, then Q's rows.
template <int STAGES, int TILE>
struct SlotLayout {
  uint64_t* full;
  uint64_t* empty;
  __half* q_s;
  __device__ explicit SlotLayout(unsigned char* smem)
      : full(reinterpret_cast<uint64_t*>(smem + STAGES * TILE)),
        empty(full + STAGES),
        q_s(reinterpret_cast<__half*>(smem + STAGES * TILE + 2 * STAGES * 8)) {}
};

// O's 40 columns divided by the row sums in its column 40 (lane 4j's values 20: row r, 22: row r + 8), stored
// to out (a row every o_seq halves) where the rows exist (below lq).
__device__ __forceinline__ void store_o_by_sum_column(const float (&o)[24], __half* out, int64_t o_seq, int lq,
                                                      int row0, int warp, int lane) {
  const float inv0 = 1.f / __shfl_sync(0xffffffffu, o[20], lane & ~3);
  const float inv1 = 1.f / __shfl_sync(0xffffffffu, o[22], lane & ~3);
  const int r0 = row0 + warp * 16 + (lane >> 2);
#pragma unroll
  for (int n = 0; n < 5; ++n) {
    const int d = n * 8 + (lane & 3) * 2;
    if (r0 < lq)
      *reinterpret_cast<__half2*>(out + static_cast<int64_t>(r0) * o_seq + d) =
          __floats2half2_rn(o[4 * n] * inv0, o[4 * n + 1] * inv0);
    if (r0 + 8 < lq)
      *reinterpret_cast<__half2*>(out + static_cast<int64_t>(r0 + 8) * o_seq + d) =
          __floats2half2_rn(o[4 * n + 2] * inv1, o[4 * n + 3] * inv1);
  }
}

// Grid: (ceil(lq / kRows), batch·heads), kThreads threads, kSmemBytes of dynamic shared memory; p.packed
// from pack_kv_tiles.
__global__ void __launch_bounds__(kThreads, 2) attention(const Params p) {
#if defined(__CUDA_ARCH_FEAT_SM90_ALL)
  extern __shared__ __align__(128) unsigned char smem[];
  const SlotLayout<kStages, kTileBytes> slots(smem);
  uint64_t *full = slots.full, *empty = slots.empty;
  __half* q_s = slots.q_s;

  const int tid = threadIdx.x, lane = tid & 31, warp = tid >> 5;
  const int bh = blockIdx.y, b = bh / p.heads, h = bh % p.heads;
  const int row0 = blockIdx.x * kRows;
  const __half* q = p.q + b * p.q_batch + h * p.q_head;

  if (tid == 0) {
    for (int st = 0; st < kStages; ++st) mbar_init(&full[st], 1), mbar_init(&empty[st], 8);
    asm volatile("fence.mbarrier_init.release.cluster;\n" ::: "memory");
  }
  for (int i = tid; i < kRows * kChunks; i += kThreads) {
    const int r = i / kChunks, c = i % kChunks, row = row0 + r;
    cp_async16(q_s + r * kQStride + c * 8, q + static_cast<int64_t>(row < p.lq ? row : 0) * p.q_seq + c * 8,
               row < p.lq);
  }
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();

  if (warp == 8) {  // the producer: a tile into a slot once all eight consumer warps have let go of it
    if (lane == 0) {
      const unsigned char* src =
          reinterpret_cast<const unsigned char*>(p.packed) + static_cast<int64_t>(bh) * p.tiles * kTileBytes;
      for (int t = 0; t < p.tiles; ++t) {
        const int st = t % kStages;
        if (t >= kStages) mbar_wait(&empty[st], (t / kStages - 1) & 1);
        mbar_expect_tx(&full[st], kTileBytes);
        bulk_copy(smem + st * kTileBytes, src + static_cast<int64_t>(t) * kTileBytes, kTileBytes, &full[st]);
      }
    }
    return;
  }

  uint32_t qa[3][4];
  load_q_fragments(qa, q_s, warp, lane);
  const uint64_t k_desc0 = smem_desc(smem, 128, 768), v_desc0 = smem_desc(smem + kKBytes, 128, kKeys * 16);
  float o[24];  // O's 40 columns and the row sums (column 40) of this lane's two rows
  consume_tiles<kStages, kTileBytes, 256, false>(o, qa, k_desc0, v_desc0, full, empty, p.tiles, p.lk, p.scale_log2,
                                                 lane);
  store_o_by_sum_column(o, p.o + b * p.o_batch + h * p.o_head, p.o_seq, p.lq, row0, warp, lane);
#endif  // __CUDA_ARCH_FEAT_SM90_ALL
}

}  // namespace diffbench::kernels::hd40
