// Token Merging for Stable Diffusion (ToMe, Bolya & Hoffman 2023), as the `tomesd` package does it:
// at the start of every BasicTransformerBlock whose level is downsampled at most `max_downsample`
// times, the tokens are split into a strided grid of destinations (one per sy×sx cell) and sources,
// the `ratio`·N sources most similar (cosine) to some destination are averaged into it, and the
// block's self-attention (and optionally cross-attention and feed-forward) runs on the merged
// tokens; the outputs are copied back to every token afterwards.
//
// Difference from tomesd: with use_rand, tomesd picks each cell's destination from a generator it
// forks once from the process's global RNG state (torch.get_rng_state()) on first use and keeps for
// the life of the patch, so its picks depend on whatever consumed the global RNG before. Here the
// generator is created on the tokens' device and seeded from the run's seed and the batch index at
// the start of every generation, so a run is reproducible and batches do not depend on each other.
// The draws themselves follow tomesd: one randint(sy·sx, [h/sy, w/sx, 1]) per merging block call.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>

#include <ATen/ATen.h>

#include "diffbench/accel/method.hpp"

namespace diffbench {

// tomesd.apply_patch's arguments, with its defaults.
struct TomeOptions {
  double ratio = 0.5;          // fraction of a level's tokens to remove, 0 <= ratio < 1
  int64_t max_downsample = 1;  // merge in levels downsampled at most this much (1, 2, 4 or 8)
  int64_t sx = 2;              // destination stride in x and y
  int64_t sy = 2;
  bool use_rand = true;        // random destination within each cell (else its top-left token)
  bool merge_attn = true;      // merge around self-attention
  bool merge_crossattn = false;
  bool merge_mlp = false;
};

// The split into destinations and sources of an h×w token grid: tomesd's argsort of its index
// buffer (destinations first, then sources, each in raster order).
struct TomePartition {
  at::Tensor dst;  // [num_dst] int64 token indices (tomesd's b_idx)
  at::Tensor src;  // [N - num_dst] int64 token indices (tomesd's a_idx)
};

// How tome_partition and TokenMerge compute on CUDA tensors: with diffbench's own kernels where the
// build has them (-DDIFFBENCH_CUDA_KERNELS=ON) and the tensors fit (Auto), or with LibTorch's ops
// (the reference the kernels are tested against; always so on the CPU). Both give the same
// partition and index maps; merged means differ only by their rounding (the kernels add in float
// in a fixed order, LibTorch's scatter_reduce in the tensor's type in arrival order). The
// environment variable DIFFBENCH_TOME_KERNELS=0 makes Auto the LibTorch path (for timing both).
enum class TomeImpl { Auto, LibTorch };
bool tome_kernels_built();

// `cell_choice`: [h/sy, w/sx] int64 in [0, sy·sx), the destination's index within each cell
// (row-major within the cell), or undefined for the top-left token of every cell.
TomePartition tome_partition(int64_t h, int64_t w, int64_t sx, int64_t sy, const at::Tensor& cell_choice,
                             at::Device device, TomeImpl impl = TomeImpl::Auto);

// The merge and unmerge of one block call (tomesd's closures), built from the metric tokens.
class TokenMerge {
 public:
  TokenMerge(const TomePartition& partition, const at::Tensor& metric, int64_t r, TomeImpl impl = TomeImpl::Auto);

  // [B, N, C] -> [B, N - r, C]: unmerged sources (most similar first), then every destination
  // averaged with the sources merged into it.
  at::Tensor merge(const at::Tensor& x) const;
  // [B, N - r, C] -> [B, N, C]: each token takes the row it was merged into.
  at::Tensor unmerge(const at::Tensor& x) const;

  int64_t removed() const { return r_; }
  int64_t tokens() const { return n_; }
  bool fused() const { return fused_; }  // built and merging with the CUDA kernels

  // The index maps, as int64 tensors on the metric's device (for tests).
  struct Maps {
    at::Tensor unm_tok, src_tok, dst_of, row_of;
  };
  Maps maps() const { return {unm_tok_, src_tok_, dst_of_, row_of_}; }

 private:
  int64_t n_ = 0;
  int64_t r_ = 0;
  bool fused_ = false;
  at::Tensor dst_;      // [num_dst] token indices of the destinations
  at::Tensor unm_tok_;  // [B, Na - r] token indices of the unmerged sources, in merged order
  at::Tensor src_tok_;  // [B, r] token indices of the merged sources
  at::Tensor dst_of_;   // [B, r] destination (0..num_dst) each merged source goes into
  at::Tensor row_of_;   // [B, N] row of the merged sequence each token is restored from
  at::Tensor csr_tok_;  // fused: [B, r] int32 merged sources' tokens, by destination, then token
  at::Tensor csr_dst_;  // fused: [B, r] int32 their destinations, ascending
};

// tomesd.merge.bipartite_soft_matching_random2d: metric [B, N, C] on an h×w grid (h·w = N), r tokens
// to remove. Returns nothing where tomesd returns do_nothing (r <= 0, or no source token to merge).
// `generator` is used only when !no_rand.
std::optional<TokenMerge> bipartite_soft_matching_random2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                                           int64_t sy, int64_t r, bool no_rand,
                                                           std::optional<at::Generator> generator = std::nullopt);

// The same with the random destination choice drawn beforehand ([h/sy, w/sx, 1] int64 in [0, sy·sx);
// undefined: no randomness). tome_draws_choice says whether the function above would draw one
// (and so consume the generator) for these arguments.
std::optional<TokenMerge> bipartite_soft_matching_random2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                                           int64_t sy, int64_t r, const at::Tensor& cell_choice);
bool tome_draws_choice(int64_t w, int64_t h, int64_t sx, int64_t sy, int64_t r);

// The same on a partition made beforehand by tome_partition(h, w, sx, sy, ...): without a random
// choice it depends only on the grid, so the method makes it once per grid.
std::optional<TokenMerge> bipartite_soft_matching_random2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                                           int64_t sy, int64_t r, const TomePartition& partition);

// The "tome" acceleration method (registered as "tome" by register_tome in accel/builtins.hpp).
// Options out of range are InputErrors naming the parameter.
std::unique_ptr<Method> make_tome(const TomeOptions& options);

}  // namespace diffbench
