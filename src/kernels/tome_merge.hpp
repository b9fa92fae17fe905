// ToMe's bipartite matching, merge and unmerge as a few CUDA kernels (accel/tome_merge.cpp calls
// them for CUDA tensors; its LibTorch code is the reference they are tested against).
#pragma once

#include <cstdint>
#include <utility>

#include <ATen/ATen.h>

namespace diffbench::kernels {

// tome_partition in one kernel: {dst, src} int64 token indices on `device`, each in raster order.
// `cell_choice`: [h/sy, w/sx(, 1)] int64 on `device`, or undefined (top-left of every cell).
std::pair<at::Tensor, at::Tensor> tome_partition(int64_t h, int64_t w, int64_t sx, int64_t sy,
                                                 const at::Tensor& cell_choice, at::Device device);

// The index maps of one block call, equal to TokenMerge's LibTorch ones, plus the merged sources
// grouped by destination (ordered by destination, then token) for the merge kernel.
struct TomeMatch {
  at::Tensor unm_tok;  // [B, Na - r] int64
  at::Tensor src_tok;  // [B, r] int64
  at::Tensor dst_of;   // [B, r] int64
  at::Tensor row_of;   // [B, N] int64
  at::Tensor csr_tok;  // [B, r] int32: merged sources' tokens, by (destination, token)
  at::Tensor csr_dst;  // [B, r] int32: their destinations (ascending)
};

// Whether tome_merge and tome_unmerge take x: [B, N, C] half, bfloat16 or float on CUDA.
bool tome_rows_supported(const at::Tensor& x);

// Whether tome_match takes this metric ([B, N, C] half, bfloat16 or float on CUDA) and partition.
bool tome_match_supported(const at::Tensor& metric, int64_t num_src, int64_t num_dst);

// Cosine similarity of every source to every destination (LibTorch's norm, one kernel for the
// division and the split, one GEMM), each source's best destination (one kernel), the stable
// descending rank of the best scores (one kernel, by counting), and the maps (one kernel).
TomeMatch tome_match(const at::Tensor& metric, const at::Tensor& dst, const at::Tensor& src, int64_t r);

// [B, N, C] -> [B, Na - r + Nb, C]: the unmerged sources, then each destination averaged (in float,
// its own row first, then its sources in token order) with the sources merged into it.
at::Tensor tome_merge(const at::Tensor& x, const at::Tensor& unm_tok, const at::Tensor& dst, const at::Tensor& csr_tok,
                      const at::Tensor& csr_dst);

// [B, N - r, C] -> [B, N, C]: row row_of[b, t] of x for every token t.
at::Tensor tome_unmerge(const at::Tensor& x, const at::Tensor& row_of);

}  // namespace diffbench::kernels
