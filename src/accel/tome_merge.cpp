// tomesd's bipartite soft matching (merge.py), on the device and without host synchronisation.
//
// Same results as tomesd, with cheaper index work:
//  - the partition comes from a rank computed with cumsum instead of an argsort of the index buffer
//    (tomesd's argsort is unstable, so its order within destinations and sources is an artefact of
//    the sort; any order gives the same merged tokens up to a permutation, which attention ignores);
//  - merge gathers the unmerged and merged sources straight from x (tomesd gathers the sources, then
//    gathers again), and unmerge is a single gather through a precomputed row index where tomesd
//    scatters three times into a zero tensor. Every value is the same copy or the same
//    scatter_reduce("mean") as tomesd's.
// On CUDA, with the own kernels built (kernels/tome_merge.cu), the same partition and maps come
// from a few kernels instead of about 35 LibTorch ops per block call; this file's LibTorch code is
// their reference (and the CPU's path).
#include <algorithm>
#include <cstdlib>
#include <string>

#include "diffbench/accel/tome.hpp"
#include "diffbench/error.hpp"
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
#include "kernels/tome_merge.hpp"
#include "util/ab_switch.hpp"
#endif

namespace diffbench {

bool tome_kernels_built() {
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  return true;
#else
  return false;
#endif
}

#ifdef DIFFBENCH_WITH_CUDA_KERNELS
namespace {

// Auto: the kernels, unless the environment says DIFFBENCH_TOME_KERNELS=0 (to time both paths in one build).
bool kernels_wanted(TomeImpl impl) {
  return impl == TomeImpl::Auto && ab_switch_on("DIFFBENCH_TOME_KERNELS");
}

}  // namespace
#endif

TomePartition tome_partition(int64_t h, int64_t w, int64_t sx, int64_t sy, const at::Tensor& cell_choice,
                             at::Device device, TomeImpl impl) {
  const int64_t n = h * w;
  const int64_t hsy = h / sy, wsx = w / sx;
  const int64_t num_dst = hsy * wsx;
  const auto opt = at::TensorOptions().dtype(at::kLong).device(device);
  if (num_dst == 0) return {at::empty({0}, opt), at::arange(n, opt)};
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (kernels_wanted(impl) && device.is_cuda()) {
    auto [dst, src] = kernels::tome_partition(h, w, sx, sy, cell_choice, device);
    return {dst, src};
  }
#else
  (void)impl;
#endif

  // Destination of each cell: row-major offset k within the sy×sx cell.
  at::Tensor k = cell_choice.defined() ? cell_choice.to(device, at::kLong).reshape({hsy, wsx})
                                       : at::zeros({hsy, wsx}, opt);
  at::Tensor rows = at::arange(hsy, opt).mul_(sy).view({hsy, 1}) + k.div(sx, "floor");  // [hsy, wsx]
  at::Tensor cols = at::arange(wsx, opt).mul_(sx).view({1, wsx}) + k.remainder(sx);     // [hsy, wsx]
  at::Tensor dst_tokens = (rows * w + cols).reshape({-1});                               // [num_dst]
  at::Tensor is_dst = at::zeros({n}, opt).index_fill_(0, dst_tokens, 1);                 // [N]

  // Rank of every token in "destinations, then sources", each in raster order.
  at::Tensor token = at::arange(n, opt);
  at::Tensor dst_upto = is_dst.cumsum(0);  // destinations at or before each token
  at::Tensor rank = at::where(is_dst.to(at::kBool), dst_upto - 1, token - dst_upto + num_dst);
  at::Tensor order = at::empty({n}, opt).scatter_(0, rank, token);
  return {order.slice(0, 0, num_dst), order.slice(0, num_dst)};
}

TokenMerge::TokenMerge(const TomePartition& partition, const at::Tensor& metric, int64_t r, TomeImpl impl) {
  // metric: [B, N, C]
  const int64_t b = metric.size(0);
  n_ = metric.size(1);
  dst_ = partition.dst;
  const at::Tensor& src = partition.src;
  const int64_t num_dst = dst_.size(0), num_src = src.size(0);
  r_ = std::min(r, num_src);
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (kernels_wanted(impl) && r_ > 0 && kernels::tome_match_supported(metric, num_src, num_dst)) {
    at::NoGradGuard no_grad;
    kernels::TomeMatch m = kernels::tome_match(metric, dst_, src, r_);
    unm_tok_ = m.unm_tok;
    src_tok_ = m.src_tok;
    dst_of_ = m.dst_of;
    row_of_ = m.row_of;
    csr_tok_ = m.csr_tok;
    csr_dst_ = m.csr_dst;
    fused_ = true;
    return;
  }
#else
  (void)impl;
#endif

  at::Tensor scores;
  {
    at::NoGradGuard no_grad;
    // Cosine similarity of every source to every destination.
    at::Tensor m = metric / metric.norm(2, {-1}, true);
    scores = m.index_select(1, src).matmul(m.index_select(1, dst_).transpose(-1, -2));  // [B, Na, Nb]
  }
  // Greedy: each source's best destination; the r best-matched sources merge.
  auto [node_max, node_idx] = scores.max(-1);                        // [B, Na]
  at::Tensor edge = node_max.argsort(/*stable=*/true, -1, /*descending=*/true);  // [B, Na]
  at::Tensor unm_idx = edge.slice(1, r_);                            // [B, Na - r]
  at::Tensor src_idx = edge.slice(1, 0, r_);                         // [B, r]
  dst_of_ = node_idx.gather(1, src_idx);                             // [B, r]
  unm_tok_ = src.index_select(0, unm_idx.reshape({-1})).view(unm_idx.sizes());  // [B, Na - r]
  src_tok_ = src.index_select(0, src_idx.reshape({-1})).view(src_idx.sizes());  // [B, r]

  // Row of the merged sequence [unm | dst] that each token takes back in unmerge.
  const int64_t unm_len = num_src - r_;
  const auto opt = at::TensorOptions().dtype(at::kLong).device(metric.device());
  row_of_ = at::empty({b, n_}, opt);
  row_of_.scatter_(1, dst_.unsqueeze(0).expand({b, num_dst}), at::arange(unm_len, unm_len + num_dst, opt).expand({b, num_dst}));
  row_of_.scatter_(1, unm_tok_, at::arange(unm_len, opt).expand({b, unm_len}));
  row_of_.scatter_(1, src_tok_, dst_of_ + unm_len);
}

at::Tensor TokenMerge::merge(const at::Tensor& x) const {
  // x: [B, N, C]
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (fused_ && kernels::tome_rows_supported(x)) return kernels::tome_merge(x, unm_tok_, dst_, csr_tok_, csr_dst_);
#endif
  const int64_t b = x.size(0), c = x.size(2);
  at::Tensor unm = x.gather(1, unm_tok_.unsqueeze(-1).expand({b, unm_tok_.size(1), c}));  // [B, Na - r, C]
  at::Tensor src = x.gather(1, src_tok_.unsqueeze(-1).expand({b, r_, c}));                // [B, r, C]
  at::Tensor dst = x.index_select(1, dst_);                                               // [B, Nb, C]
  dst = dst.scatter_reduce(1, dst_of_.unsqueeze(-1).expand({b, r_, c}), src, "mean");     // include_self
  return at::cat({unm, dst}, 1);                                                          // [B, N - r, C]
}

at::Tensor TokenMerge::unmerge(const at::Tensor& x) const {
  // x: [B, N - r, C]
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  if (fused_ && kernels::tome_rows_supported(x)) return kernels::tome_unmerge(x, row_of_);
#endif
  const int64_t b = x.size(0), c = x.size(2);
  return x.gather(1, row_of_.unsqueeze(-1).expand({b, n_, c}));  // [B, N, C]
}

bool tome_draws_choice(int64_t w, int64_t h, int64_t sx, int64_t sy, int64_t r) {
  const int64_t cells = (h / sy) * (w / sx);
  return r > 0 && cells < h * w && cells > 0;
}

namespace {

// Whether a merge does anything (tomesd's do_nothing otherwise); a metric that is not [B, h·w, C]
// is a UsageError.
bool merges_anything(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx, int64_t sy, int64_t r) {
  if (r <= 0) return false;
  if (metric.dim() != 3 || metric.size(1) != h * w)
    throw UsageError("ToMe: metric of shape " + std::string(c10::str(metric.sizes())) + " is not [B, h*w, C] for h=" +
                         std::to_string(h) + ", w=" + std::to_string(w),
                     "tome");
  return (h / sy) * (w / sx) < h * w;  // every token a destination: nothing to merge
}

}  // namespace

std::optional<TokenMerge> bipartite_soft_matching_random2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                                           int64_t sy, int64_t r, const at::Tensor& cell_choice) {
  if (!merges_anything(metric, w, h, sx, sy, r)) return std::nullopt;
  return TokenMerge(tome_partition(h, w, sx, sy, cell_choice, metric.device()), metric, r);
}

std::optional<TokenMerge> bipartite_soft_matching_random2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                                           int64_t sy, int64_t r, const TomePartition& partition) {
  if (!merges_anything(metric, w, h, sx, sy, r)) return std::nullopt;
  if (partition.dst.size(0) + partition.src.size(0) != h * w)
    throw UsageError("ToMe: a partition of " + std::to_string(partition.dst.size(0) + partition.src.size(0)) +
                         " tokens for h=" + std::to_string(h) + ", w=" + std::to_string(w),
                     "tome");
  return TokenMerge(partition, metric, r);
}

std::optional<TokenMerge> bipartite_soft_matching_random2d(const at::Tensor& metric, int64_t w, int64_t h, int64_t sx,
                                                           int64_t sy, int64_t r, bool no_rand,
                                                           std::optional<at::Generator> generator) {
  at::Tensor choice;
  if (!no_rand && tome_draws_choice(w, h, sx, sy, r) && metric.dim() == 3 && metric.size(1) == h * w) {
    const at::Device gen_device = generator ? generator->device() : metric.device();
    choice = at::randint(sy * sx, {h / sy, w / sx, 1}, generator, at::TensorOptions().dtype(at::kLong).device(gen_device));
  }
  return bipartite_soft_matching_random2d(metric, w, h, sx, sy, r, choice);
}

}  // namespace diffbench
