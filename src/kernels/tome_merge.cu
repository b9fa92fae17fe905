// ToMe's bipartite soft matching (tomesd's merge.py, as accel/tome_merge.cpp does it with LibTorch)
// in a few kernels, all without atomics, host synchronisation or allocations outside the caching
// allocator, so they are the same in every run and can be captured in a CUDA graph:
//  partition   one block per token row: which token of each sy×sx cell is its destination; the
//              destinations above the row counted from the cells, a block-wide scan of the row's
//              own turns that into the raster-order dst and src lists;
//  normalise   metric / ‖metric‖ (LibTorch's norm, then the same float division rounded to the
//              metric's type as LibTorch's), written split into sources and destinations, so the
//              GEMM (at::matmul, as the LibTorch path) sees the same matrices;
//  best match  one warp per source: max and first argmax over the destinations' scores, and a key
//              that orders the best scores descending, ties by source index (a stable sort's order);
//  rank        each source's rank = the number of keys above its own, counted over the batch row
//              (Na is a few thousand: Na² comparisons are cheaper than a sort's passes); the r
//              first are merged;
//  maps        unm_tok, src_tok, dst_of and row_of from the ranks, and the merged sources grouped
//              by destination (ordered by destination, then token: again a count of smaller keys);
//  merge       one warp per output row: a copy for an unmerged source, for a destination its own
//              row plus its sources' rows added in float in that fixed order, divided by the count;
//  unmerge     one warp per token: a copy of row row_of[t].
#include <climits>
#include <cmath>

#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>
#include <cub/block/block_reduce.cuh>
#include <cub/block/block_scan.cuh>

#include "convert.cuh"
#include "tome_merge.hpp"

namespace diffbench::kernels {

namespace {

constexpr int kWarpsPerBlock = 8;  // row kernels: one warp per row, 8 rows per block
constexpr int kCountWarps = 8;     // count kernels: the warps split the keys of a batch row
constexpr int kCountPerLane = 2;   // count kernels: each lane counts for 2 sources
constexpr int kCountTile = 32 * kCountPerLane;  // sources per block

// V values of T in one aligned load (V = 16 / sizeof(T) where the rows allow it, else 1).
template <typename T, int V>
struct alignas(sizeof(T) * V) Pack {
  T v[V];
};

// ---- partition --------------------------------------------------------------------------------

constexpr int kPartitionThreads = 256;
constexpr int kPartitionItems = 4;  // tokens per thread and round, consecutive

// One block per token row y. Every whole sy×sx cell has exactly one destination, so the destinations
// before row y are wsx for every whole cell row above y's, plus, within y's own cell row, one for each
// cell whose chosen row lies above y; a block-wide scan of the row's own flags places the rest.
__global__ void partition_kernel(const int64_t* __restrict__ choice, int64_t h, int64_t w, int64_t sx, int64_t sy,
                                 int64_t* __restrict__ dst, int64_t* __restrict__ src) {
  using Scan = cub::BlockScan<int, kPartitionThreads>;
  using Reduce = cub::BlockReduce<int, kPartitionThreads>;
  __shared__ typename Scan::TempStorage scan;
  __shared__ typename Reduce::TempStorage reduce;
  __shared__ int64_t carry;
  const int64_t y = blockIdx.x, hsy = h / sy, wsx = w / sx;
  const int64_t cell_row = y / sy;
  const bool whole = cell_row < hsy;  // y's cells are whole (rows below the last whole cell row are sources)
  int above = 0;  // cells of y's cell row whose destination is in a row above y
  if (whole)  // without choices every cell's destination is its first token (offset 0)
    for (int64_t cx = threadIdx.x; cx < wsx; cx += kPartitionThreads)
      above += (choice ? choice[cell_row * wsx + cx] : 0) / sx < y % sy;
  const int above_total = Reduce(reduce).Sum(above);
  if (threadIdx.x == 0) carry = whole ? cell_row * wsx + above_total : hsy * wsx;
  __syncthreads();
  for (int64_t base = 0; base < w; base += kPartitionThreads * kPartitionItems) {
    int is_dst[kPartitionItems], before[kPartitionItems];
#pragma unroll
    for (int k = 0; k < kPartitionItems; ++k) {
      const int64_t x = base + threadIdx.x * kPartitionItems + k;
      is_dst[k] = 0;
      if (whole && x < wsx * sx) {
        const int64_t c = choice ? choice[cell_row * wsx + x / sx] : 0;  // offset within the cell, row-major
        is_dst[k] = (y % sy == c / sx) && (x % sx == c % sx);
      }
    }
    int total = 0;
    Scan(scan).ExclusiveSum(is_dst, before, total);
#pragma unroll
    for (int k = 0; k < kPartitionItems; ++k) {
      const int64_t x = base + threadIdx.x * kPartitionItems + k;
      if (x >= w) continue;
      const int64_t t = y * w + x, d = carry + before[k];
      if (is_dst[k])
        dst[d] = t;
      else
        src[t - d] = t;
    }
    __syncthreads();
    if (threadIdx.x == 0) carry += total;
    __syncthreads();
  }
}

// ---- normalise and split ----------------------------------------------------------------------

// Row q < Na of the output is source q, row Na + j destination j; also row_of of destination j.
template <typename T, int V>
__global__ void normalize_split_kernel(const T* __restrict__ metric, const T* __restrict__ norm,
                                       const int64_t* __restrict__ src, const int64_t* __restrict__ dst, int64_t rows,
                                       int64_t n, int64_t na, int64_t nb, int64_t c, int64_t unm_len,
                                       T* __restrict__ m_src, T* __restrict__ m_dst, int64_t* __restrict__ row_of) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t b = row / (na + nb), q = row % (na + nb);
  const int64_t tok = q < na ? src[q] : dst[q - na];
  T* out = q < na ? m_src + (b * na + q) * c : m_dst + (b * nb + q - na) * c;
  const float len = to_float(norm[b * n + tok]);
  const auto* in = reinterpret_cast<const Pack<T, V>*>(metric + (b * n + tok) * c);
  auto* o = reinterpret_cast<Pack<T, V>*>(out);
  for (int64_t p = lane; p < c / V; p += 32) {
    Pack<T, V> v = in[p];
#pragma unroll
    for (int e = 0; e < V; ++e) v.v[e] = from_float<T>(to_float(v.v[e]) / len);  // LibTorch's div
    o[p] = v;
  }
  if (q >= na && lane == 0) row_of[b * n + tok] = unm_len + (q - na);
}

// ---- best match -------------------------------------------------------------------------------

// Does (v, j) come before (best, best_j) in max()'s order: larger, NaN above all, ties to the
// lower index (LibTorch's max over a dimension returns the first maximal index).
__device__ __forceinline__ bool better(float v, int j, float best, int best_j) {
  const bool vn = isnan(v), bn = isnan(best);
  if (vn || bn) return vn && (!bn || j < best_j);
  return v > best || (v == best && j < best_j);
}

// Bits whose unsigned order is the value's order (-0 as +0, every NaN above +inf).
__device__ __forceinline__ uint32_t ordered_bits(float v) {
  if (isnan(v)) return 0xFFFFFFFFu;
  if (v == 0.f) v = 0.f;
  const uint32_t u = __float_as_uint(v);
  return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}
__device__ __forceinline__ uint32_t ordered_bits16(uint32_t u, bool nan, bool zero) {
  if (nan) return 0xFFFFu;
  if (zero) return 0x8000u;
  return (u & 0x8000u) ? (~u & 0xFFFFu) : (u | 0x8000u);
}
__device__ __forceinline__ uint32_t ordered_bits16(__half v) {
  const float f = to_float(v);
  return ordered_bits16(__half_as_ushort(v), isnan(f), f == 0.f);
}
__device__ __forceinline__ uint32_t ordered_bits16(__nv_bfloat16 v) {
  const float f = to_float(v);
  return ordered_bits16(__bfloat16_as_ushort(v), isnan(f), f == 0.f);
}

// A key per source, larger for an earlier place in the stable descending order of the best scores:
// the score's ordered bits above, the complement of the index below. 0 is below every real key.
template <typename K, typename T>
__device__ __forceinline__ K rank_key(T best, int64_t i) {
  if constexpr (sizeof(K) == 4)
    return (ordered_bits16(best) << 16) | (0xFFFFu - static_cast<uint32_t>(i));
  else
    return (static_cast<uint64_t>(ordered_bits(to_float(best))) << 32) | (0xFFFFFFFFull - static_cast<uint64_t>(i));
}

// One warp per source i of a batch row (padded rows get key 0).
template <typename T, int V, typename K>
__global__ void best_match_kernel(const T* __restrict__ scores, int64_t rows, int64_t na, int64_t nb, int64_t padded,
                                  int32_t* __restrict__ node_idx, K* __restrict__ keys) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;  // b·padded + i
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t b = row / padded, i = row % padded;
  if (i >= na) {
    if (lane == 0) keys[row] = 0;
    return;
  }
  const auto* s = reinterpret_cast<const Pack<T, V>*>(scores + (b * na + i) * nb);
  float best = -INFINITY;
  int best_j = INT_MAX;
  for (int64_t p = lane; p < nb / V; p += 32) {
    const Pack<T, V> v = s[p];
#pragma unroll
    for (int e = 0; e < V; ++e) {
      const float f = to_float(v.v[e]);
      const int j = static_cast<int>(p * V + e);
      if (better(f, j, best, best_j)) {
        best = f;
        best_j = j;
      }
    }
  }
#pragma unroll
  for (int off = 16; off > 0; off /= 2) {
    const float ob = __shfl_xor_sync(0xFFFFFFFFu, best, off);
    const int oj = __shfl_xor_sync(0xFFFFFFFFu, best_j, off);
    if (better(ob, oj, best, best_j)) {
      best = ob;
      best_j = oj;
    }
  }
  if (lane == 0) {
    node_idx[b * na + i] = best_j;
    keys[row] = rank_key<K>(from_float<T>(best), i);  // exact: best is one of the T scores
  }
}

// ---- counting ---------------------------------------------------------------------------------

// For the block's kCountTile sources from `base` (lane + 32·t of the tile), the number of keys in
// the batch row's `padded` keys (16-byte aligned, padded % 4 == 0) that are greater (Greater) or
// less than each one's own key (past the row: the largest key). The warps take a share of the keys
// each, summed in a fixed order; the counts are valid in warp 0.
template <typename K, bool Greater>
__device__ __forceinline__ void count_keys(const K* __restrict__ keys, int64_t padded, int64_t base,
                                           int (&count)[kCountPerLane]) {
  __shared__ int partial[kCountWarps][kCountTile];
  constexpr int V = 16 / sizeof(K);
  const int warp = threadIdx.x / 32, lane = threadIdx.x % 32;
  K mine[kCountPerLane];
#pragma unroll
  for (int t = 0; t < kCountPerLane; ++t) {
    const int64_t i = base + t * 32 + lane;
    mine[t] = i < padded ? keys[i] : static_cast<K>(~static_cast<K>(0));
  }
  const int64_t vecs = padded / V, per = (vecs + kCountWarps - 1) / kCountWarps;
  const int64_t v0 = warp * per, v1 = min(vecs, v0 + per);
  const auto* kv = reinterpret_cast<const uint4*>(keys);
  int c[kCountPerLane] = {};
#pragma unroll 4
  for (int64_t v = v0; v < v1; ++v) {
    const uint4 q = __ldg(kv + v);  // the same 16 bytes for the whole warp
    const K* k = reinterpret_cast<const K*>(&q);
#pragma unroll
    for (int e = 0; e < V; ++e)
#pragma unroll
      for (int t = 0; t < kCountPerLane; ++t) c[t] += Greater ? (k[e] > mine[t]) : (k[e] < mine[t]);
  }
#pragma unroll
  for (int t = 0; t < kCountPerLane; ++t) partial[warp][t * 32 + lane] = c[t];
  __syncthreads();
  if (warp == 0) {
#pragma unroll
    for (int t = 0; t < kCountPerLane; ++t) {
      int s = 0;
      for (int w = 0; w < kCountWarps; ++w) s += partial[w][t * 32 + lane];
      count[t] = s;
    }
  }
}

// Rank of every source (its place in the stable descending order of the best scores); the merged
// ones (rank < r) get a second key, destination·Na + i, the others the largest key.
template <typename K>
__global__ void __launch_bounds__(kCountWarps * 32)
    rank_kernel(const K* __restrict__ keys, const int32_t* __restrict__ node_idx, int64_t na, int64_t padded, int64_t r,
                int32_t* __restrict__ rank, uint32_t* __restrict__ group_keys) {
  const int64_t b = blockIdx.y, base = static_cast<int64_t>(blockIdx.x) * kCountTile;
  const K* row = keys + b * padded;
  const int lane = threadIdx.x % 32;
  int count[kCountPerLane];
  count_keys<K, true>(row, padded, base, count);
  if (threadIdx.x >= 32) return;
#pragma unroll
  for (int t = 0; t < kCountPerLane; ++t) {
    const int64_t i = base + t * 32 + lane;
    if (i >= padded) continue;
    uint32_t g = 0xFFFFFFFFu;
    if (i < na) {
      rank[b * na + i] = count[t];
      if (count[t] < r) g = static_cast<uint32_t>(node_idx[b * na + i]) * static_cast<uint32_t>(na) + static_cast<uint32_t>(i);
    }
    group_keys[b * padded + i] = g;
  }
}

// The maps from the ranks: unmerged sources in rank order, merged ones in rank order with their
// destinations, row_of of every source, and the merged ones grouped by destination (their place
// in that order = the number of smaller group keys).
__global__ void __launch_bounds__(kCountWarps * 32)
    maps_kernel(const uint32_t* __restrict__ group_keys, const int32_t* __restrict__ rank,
                const int32_t* __restrict__ node_idx, const int64_t* __restrict__ src, int64_t n, int64_t na,
                int64_t padded, int64_t r, int64_t* __restrict__ unm_tok, int64_t* __restrict__ src_tok,
                int64_t* __restrict__ dst_of, int64_t* __restrict__ row_of, int32_t* __restrict__ csr_tok,
                int32_t* __restrict__ csr_dst) {
  const int64_t b = blockIdx.y, base = static_cast<int64_t>(blockIdx.x) * kCountTile;
  const uint32_t* row = group_keys + b * padded;
  const int lane = threadIdx.x % 32;
  int count[kCountPerLane];
  count_keys<uint32_t, false>(row, padded, base, count);
  if (threadIdx.x >= 32) return;
  const int64_t unm_len = na - r;
#pragma unroll
  for (int t = 0; t < kCountPerLane; ++t) {
    const int64_t i = base + t * 32 + lane;
    if (i >= na) continue;
    const int64_t k = rank[b * na + i], tok = src[i];
    if (k < r) {
      const int32_t d = node_idx[b * na + i];
      src_tok[b * r + k] = tok;
      dst_of[b * r + k] = d;
      row_of[b * n + tok] = unm_len + d;
      csr_tok[b * r + count[t]] = static_cast<int32_t>(tok);
      csr_dst[b * r + count[t]] = d;
    } else {
      unm_tok[b * unm_len + k - r] = tok;
      row_of[b * n + tok] = k - r;
    }
  }
}

// ---- merge and unmerge ------------------------------------------------------------------------

// First index in sorted[0, len) whose value is >= v.
__device__ __forceinline__ int64_t lower_bound(const int32_t* sorted, int64_t len, int32_t v) {
  int64_t lo = 0, hi = len;
  while (lo < hi) {
    const int64_t mid = (lo + hi) / 2;
    if (sorted[mid] < v)
      lo = mid + 1;
    else
      hi = mid;
  }
  return lo;
}

template <typename T, int V>
__global__ void merge_kernel(const T* __restrict__ x, const int64_t* __restrict__ unm_tok, const int64_t* __restrict__ dst,
                             const int32_t* __restrict__ csr_tok, const int32_t* __restrict__ csr_dst, int64_t rows,
                             int64_t n, int64_t c, int64_t unm_len, int64_t nb, int64_t r, T* __restrict__ out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t b = row / (unm_len + nb), q = row % (unm_len + nb);
  using P = Pack<T, V>;
  auto* o = reinterpret_cast<P*>(out + row * c);
  const T* xb = x + b * n * c;
  if (q < unm_len) {
    const auto* in = reinterpret_cast<const P*>(xb + unm_tok[b * unm_len + q] * c);
    for (int64_t p = lane; p < c / V; p += 32) o[p] = in[p];
    return;
  }
  const int32_t d = static_cast<int32_t>(q - unm_len);
  const int32_t* group = csr_dst + b * r;
  const int64_t first = lower_bound(group, r, d), last = lower_bound(group, r, d + 1);
  const auto* self = reinterpret_cast<const P*>(xb + dst[d] * c);
  const float count = static_cast<float>(1 + last - first);
  for (int64_t p = lane; p < c / V; p += 32) {
    P v = self[p];
    if (last > first) {
      float acc[V];
#pragma unroll
      for (int e = 0; e < V; ++e) acc[e] = to_float(v.v[e]);
      for (int64_t s = first; s < last; ++s) {
        const P u = reinterpret_cast<const P*>(xb + static_cast<int64_t>(csr_tok[b * r + s]) * c)[p];
#pragma unroll
        for (int e = 0; e < V; ++e) acc[e] += to_float(u.v[e]);
      }
#pragma unroll
      for (int e = 0; e < V; ++e) v.v[e] = from_float<T>(acc[e] / count);
    }
    o[p] = v;
  }
}

template <typename T, int V>
__global__ void unmerge_kernel(const T* __restrict__ x, const int64_t* __restrict__ row_of, int64_t rows, int64_t n,
                               int64_t m, int64_t c, T* __restrict__ out) {
  const int64_t row = static_cast<int64_t>(blockIdx.x) * kWarpsPerBlock + threadIdx.x / 32;  // b·N + t
  const int lane = threadIdx.x % 32;
  if (row >= rows) return;
  const int64_t b = row / n;
  using P = Pack<T, V>;
  const auto* in = reinterpret_cast<const P*>(x + (b * m + row_of[row]) * c);
  auto* o = reinterpret_cast<P*>(out + row * c);
  for (int64_t p = lane; p < c / V; p += 32) o[p] = in[p];
}

// ---- dispatch ---------------------------------------------------------------------------------

int64_t row_blocks(int64_t rows) { return (rows + kWarpsPerBlock - 1) / kWarpsPerBlock; }

// Calls f(T{}, V) with the CUDA type of `dtype` and the widest vector that `c` and the pointers allow.
template <typename F>
void dispatch(at::ScalarType dtype, int64_t c, std::initializer_list<const void*> ptrs, F&& f) {
  bool aligned = true;
  for (const void* p : ptrs) aligned = aligned && reinterpret_cast<uintptr_t>(p) % 16 == 0;
  auto go = [&](auto zero, auto vec) {
    constexpr int V = decltype(vec)::value;
    if (aligned && c % V == 0)
      f(zero, vec);
    else
      f(zero, std::integral_constant<int, 1>{});
  };
  switch (dtype) {
    case at::kHalf: go(__half{}, std::integral_constant<int, 8>{}); break;
    case at::kBFloat16: go(__nv_bfloat16{}, std::integral_constant<int, 8>{}); break;
    case at::kFloat: go(float{}, std::integral_constant<int, 4>{}); break;
    default: TORCH_CHECK(false, "tome kernels: unsupported dtype ", dtype);
  }
}

bool dtype_supported(at::ScalarType t) { return t == at::kHalf || t == at::kBFloat16 || t == at::kFloat; }

}  // namespace

std::pair<at::Tensor, at::Tensor> tome_partition(int64_t h, int64_t w, int64_t sx, int64_t sy,
                                                 const at::Tensor& cell_choice, at::Device device) {
  const c10::cuda::CUDAGuard guard(device);
  const int64_t n = h * w, num_dst = (h / sy) * (w / sx);
  const auto opt = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor choice = cell_choice.defined() ? cell_choice.to(device, at::kLong).contiguous() : at::Tensor();
  TORCH_CHECK(!choice.defined() || choice.numel() == num_dst, "tome_partition: cell_choice has ", choice.numel(),
              " values for ", num_dst, " cells");
  at::Tensor dst = at::empty({num_dst}, opt), src = at::empty({n - num_dst}, opt);
  if (n == 0) return {dst, src};
  partition_kernel<<<static_cast<unsigned>(h), kPartitionThreads, 0, at::cuda::getCurrentCUDAStream()>>>(
      choice.defined() ? choice.data_ptr<int64_t>() : nullptr, h, w, sx, sy, dst.data_ptr<int64_t>(),
      src.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return {dst, src};
}

bool tome_match_supported(const at::Tensor& metric, int64_t num_src, int64_t num_dst) {
  // Group keys destination·Na + i must fit 32 bits below the "unmerged" key; ranks fit int32.
  return metric.is_cuda() && metric.dim() == 3 && dtype_supported(metric.scalar_type()) && num_src > 0 &&
         num_dst > 0 && static_cast<double>(num_src) * static_cast<double>(num_dst + 1) < 4294967295.0 &&
         num_dst < INT_MAX;
}

TomeMatch tome_match(const at::Tensor& metric_in, const at::Tensor& dst, const at::Tensor& src, int64_t r) {
  const c10::cuda::CUDAGuard guard(metric_in.device());
  const at::Tensor metric = metric_in.contiguous();
  const int64_t B = metric.size(0), n = metric.size(1), c = metric.size(2);
  const int64_t nb = dst.size(0), na = src.size(0), unm_len = na - r;
  const int64_t padded = (na + 3) / 4 * 4;
  TORCH_CHECK(r > 0 && r <= na && na + nb == n, "tome_match: r = ", r, " with ", na, " sources of ", n, " tokens");
  auto stream = at::cuda::getCurrentCUDAStream();
  const auto longs = at::TensorOptions().dtype(at::kLong).device(metric.device());
  const auto ints = longs.dtype(at::kInt);

  TomeMatch m;
  m.row_of = at::empty({B, n}, longs);
  m.unm_tok = at::empty({B, unm_len}, longs);
  m.src_tok = at::empty({B, r}, longs);
  m.dst_of = at::empty({B, r}, longs);
  m.csr_tok = at::empty({B, r}, ints);
  m.csr_dst = at::empty({B, r}, ints);

  // Cosine similarity: the LibTorch path's norm, its division in the same arithmetic, one GEMM.
  const at::Tensor norm = metric_in.norm(2, {-1}, true).contiguous();  // [B, N, 1], as TokenMerge computes it
  at::Tensor m_src = at::empty({B, na, c}, metric.options()), m_dst = at::empty({B, nb, c}, metric.options());
  dispatch(metric.scalar_type(), c, {metric.data_ptr()}, [&](auto zero, auto vec) {
    using T = decltype(zero);
    constexpr int V = decltype(vec)::value;
    const int64_t rows = B * (na + nb);
    normalize_split_kernel<T, V><<<row_blocks(rows), kWarpsPerBlock * 32, 0, stream>>>(
        reinterpret_cast<const T*>(metric.data_ptr()), reinterpret_cast<const T*>(norm.data_ptr()),
        src.data_ptr<int64_t>(), dst.data_ptr<int64_t>(), rows, n, na, nb, c, unm_len,
        reinterpret_cast<T*>(m_src.data_ptr()), reinterpret_cast<T*>(m_dst.data_ptr()), m.row_of.data_ptr<int64_t>());
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  const at::Tensor scores = at::matmul(m_src, m_dst.transpose(-1, -2)).contiguous();  // [B, Na, Nb]

  const at::Tensor node_idx = at::empty({B, na}, ints), rank = at::empty({B, na}, ints);
  const at::Tensor group_keys = at::empty({B, padded}, ints);
  const bool short_keys = metric.scalar_type() != at::kFloat && na <= 0xFFFF;
  const at::Tensor keys = at::empty({B, padded}, short_keys ? ints : longs);
  const dim3 count_grid(static_cast<unsigned>((padded + kCountTile - 1) / kCountTile), static_cast<unsigned>(B));
  dispatch(scores.scalar_type(), nb, {scores.data_ptr()}, [&](auto zero, auto vec) {
    using T = decltype(zero);
    constexpr int V = decltype(vec)::value;
    auto run = [&](auto key) {
      using K = decltype(key);
      const int64_t rows = B * padded;
      best_match_kernel<T, V, K><<<row_blocks(rows), kWarpsPerBlock * 32, 0, stream>>>(
          reinterpret_cast<const T*>(scores.data_ptr()), rows, na, nb, padded, node_idx.data_ptr<int32_t>(),
          reinterpret_cast<K*>(keys.data_ptr()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
      rank_kernel<K><<<count_grid, kCountWarps * 32, 0, stream>>>(
          reinterpret_cast<const K*>(keys.data_ptr()), node_idx.data_ptr<int32_t>(), na, padded, r,
          rank.data_ptr<int32_t>(), reinterpret_cast<uint32_t*>(group_keys.data_ptr()));
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    };
    if constexpr (sizeof(T) == 2) {
      if (short_keys) {
        run(uint32_t{});
        return;
      }
    }
    run(uint64_t{});
  });
  maps_kernel<<<count_grid, kCountWarps * 32, 0, stream>>>(
      reinterpret_cast<const uint32_t*>(group_keys.data_ptr()), rank.data_ptr<int32_t>(), node_idx.data_ptr<int32_t>(),
      src.data_ptr<int64_t>(), n, na, padded, r, m.unm_tok.data_ptr<int64_t>(), m.src_tok.data_ptr<int64_t>(),
      m.dst_of.data_ptr<int64_t>(), m.row_of.data_ptr<int64_t>(), m.csr_tok.data_ptr<int32_t>(),
      m.csr_dst.data_ptr<int32_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return m;
}

bool tome_rows_supported(const at::Tensor& x) { return x.is_cuda() && x.dim() == 3 && dtype_supported(x.scalar_type()); }

at::Tensor tome_merge(const at::Tensor& x_in, const at::Tensor& unm_tok, const at::Tensor& dst, const at::Tensor& csr_tok,
                      const at::Tensor& csr_dst) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  TORCH_CHECK(tome_rows_supported(x), "tome_merge: unsupported input");
  const int64_t B = x.size(0), n = x.size(1), c = x.size(2);
  const int64_t unm_len = unm_tok.size(1), nb = dst.size(0), r = csr_tok.size(1);
  at::Tensor out = at::empty({B, unm_len + nb, c}, x.options());
  if (out.numel() == 0) return out;
  dispatch(x.scalar_type(), c, {x.data_ptr(), out.data_ptr()}, [&](auto zero, auto vec) {
    using T = decltype(zero);
    constexpr int V = decltype(vec)::value;
    const int64_t rows = B * (unm_len + nb);
    merge_kernel<T, V><<<row_blocks(rows), kWarpsPerBlock * 32, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const T*>(x.data_ptr()), unm_tok.data_ptr<int64_t>(), dst.data_ptr<int64_t>(),
        csr_tok.data_ptr<int32_t>(), csr_dst.data_ptr<int32_t>(), rows, n, c, unm_len, nb, r,
        reinterpret_cast<T*>(out.data_ptr()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

at::Tensor tome_unmerge(const at::Tensor& x_in, const at::Tensor& row_of) {
  const c10::cuda::CUDAGuard guard(x_in.device());
  const at::Tensor x = x_in.contiguous();
  TORCH_CHECK(tome_rows_supported(x), "tome_unmerge: unsupported input");
  const int64_t B = x.size(0), m = x.size(1), c = x.size(2), n = row_of.size(1);
  at::Tensor out = at::empty({B, n, c}, x.options());
  if (out.numel() == 0) return out;
  dispatch(x.scalar_type(), c, {x.data_ptr(), out.data_ptr()}, [&](auto zero, auto vec) {
    using T = decltype(zero);
    constexpr int V = decltype(vec)::value;
    const int64_t rows = B * n;
    unmerge_kernel<T, V><<<row_blocks(rows), kWarpsPerBlock * 32, 0, at::cuda::getCurrentCUDAStream()>>>(
        reinterpret_cast<const T*>(x.data_ptr()), row_of.data_ptr<int64_t>(), rows, n, m, c,
        reinterpret_cast<T*>(out.data_ptr()));
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  return out;
}

}  // namespace diffbench::kernels
