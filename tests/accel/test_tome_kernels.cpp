// ToMe's merge on the own CUDA kernels (kernels/tome_merge.cu) against TokenMerge's LibTorch path on
// the same GPU, for SD 1.5's levels at 512² and 1024² (64² to 8² and 128² to 16² tokens, 320 to 1280
// channels), UNet batches 1, 2 and 8, ratios 0.5 and 0.75, fp16 and fp32, random and patchy
// metrics (many equal scores: the ties decide the order): the partition and every index map are
// equal, unmerged rows and unmerge are the same copies, and each merged destination is within the
// rounding of a float sum in a fixed order of the exact mean; a second call is bit-identical.
// Skipped without a CUDA device or without the kernels.
#include <cmath>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "diffbench/accel/tome.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

bool skip_reason(std::string& why) {
  why = test::cuda_kernels_unavailable(tome_kernels_built());
  return !why.empty();
}

// [B, h·w, C] metric: 0 random, 1 patchy (8×8 patches of one random vector plus 5 % noise), 2 patchy
// without noise (exactly equal tokens: equal scores everywhere).
at::Tensor make_metric(int kind, int64_t b, int64_t h, int64_t w, int64_t c, at::ScalarType dtype) {
  const auto cuda = at::TensorOptions().device(at::kCUDA);
  if (kind == 0) return at::randn({b, h * w, c}, cuda).to(dtype);
  at::Tensor coarse = at::randn({b, c, (h + 7) / 8, (w + 7) / 8}, cuda);
  at::Tensor fine = coarse.repeat_interleave(8, 2).repeat_interleave(8, 3).slice(2, 0, h).slice(3, 0, w);
  at::Tensor m = fine.permute({0, 2, 3, 1}).reshape({b, h * w, c});
  if (kind == 1) m = m + 0.05 * at::randn_like(m);
  return m.to(dtype).contiguous();
}

}  // namespace

TEST(TomeKernels, PartitionMatchesLibTorch) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  struct Grid {
    int64_t h, w, sx, sy;
  };
  at::manual_seed(1);
  for (const Grid& g : {Grid{64, 64, 2, 2}, Grid{128, 128, 2, 2}, Grid{8, 8, 2, 2}, Grid{7, 9, 2, 3}, Grid{33, 40, 3, 2},
                        Grid{5, 5, 4, 4}, Grid{5, 2600, 2, 2}, Grid{3, 1030, 3, 2}}) {
    for (bool rand : {false, true}) {
      SCOPED_TRACE(std::to_string(g.h) + "x" + std::to_string(g.w) + " sx=" + std::to_string(g.sx) +
                   " sy=" + std::to_string(g.sy) + (rand ? " rand" : ""));
      at::Tensor choice;
      if (rand) choice = at::randint(g.sx * g.sy, {g.h / g.sy, g.w / g.sx, 1}, at::TensorOptions().dtype(at::kLong).device(at::kCUDA));
      const auto ours = tome_partition(g.h, g.w, g.sx, g.sy, choice, at::kCUDA);
      const auto ref = tome_partition(g.h, g.w, g.sx, g.sy, choice, at::kCUDA, TomeImpl::LibTorch);
      EXPECT_TRUE(at::equal(ours.dst, ref.dst));
      EXPECT_TRUE(at::equal(ours.src, ref.src));
    }
  }
}

TEST(TomeKernels, MergeMatchesLibTorchAndRepeatsBitForBit) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  struct Level {
    int64_t h, w, c;
  };
  // SD 1.5's transformer levels at 512² (64² … 8² tokens) and 1024² (128² … 16²).
  const Level levels[] = {{64, 64, 320},  {32, 32, 640},  {16, 16, 1280}, {8, 8, 1280},
                          {128, 128, 320}, {64, 64, 640}, {32, 32, 1280}, {16, 16, 1280}};
  at::manual_seed(0);
  int kind = 0;
  for (const Level& L : levels)
    for (int64_t b : {1, 2, 8})
      for (double ratio : {0.5, 0.75})
        for (at::ScalarType dtype : {at::kHalf, at::kFloat}) {
          kind = (kind + 1) % 3;
          const int64_t n = L.h * L.w, r = static_cast<int64_t>(static_cast<double>(n) * ratio);
          SCOPED_TRACE(std::to_string(L.h) + "x" + std::to_string(L.w) + "x" + std::to_string(L.c) + " batch " +
                       std::to_string(b) + " ratio " + std::to_string(ratio) + (dtype == at::kHalf ? " fp16" : " fp32") +
                       " metric kind " + std::to_string(kind));
          const at::Tensor metric = make_metric(kind, b, L.h, L.w, L.c, dtype);
          at::Tensor choice;  // the method's: a random destination per cell for an even UNet batch
          if (b % 2 == 0) choice = at::randint(4, {L.h / 2, L.w / 2, 1}, metric.options().dtype(at::kLong));
          const TomePartition part = tome_partition(L.h, L.w, 2, 2, choice, at::kCUDA);
          const TokenMerge fused(part, metric, r), again(part, metric, r);
          const TokenMerge ref(part, metric, r, TomeImpl::LibTorch);
          ASSERT_TRUE(fused.fused());
          ASSERT_FALSE(ref.fused());
          const auto fm = fused.maps(), am = again.maps(), rm = ref.maps();
          EXPECT_TRUE(at::equal(fm.unm_tok, rm.unm_tok)) << "unmerged sources differ from LibTorch's";
          EXPECT_TRUE(at::equal(fm.src_tok, rm.src_tok)) << "merged sources differ from LibTorch's";
          EXPECT_TRUE(at::equal(fm.dst_of, rm.dst_of)) << "destinations differ from LibTorch's";
          EXPECT_TRUE(at::equal(fm.row_of, rm.row_of)) << "unmerge rows differ from LibTorch's";
          for (const auto& [x1, x2] : {std::pair{fm.unm_tok, am.unm_tok}, std::pair{fm.src_tok, am.src_tok},
                                       std::pair{fm.dst_of, am.dst_of}, std::pair{fm.row_of, am.row_of}})
            EXPECT_TRUE(at::equal(x1, x2)) << "two calls give different maps";

          // Merge: unmerged rows are copies; destinations against the exact (double) mean.
          const at::Tensor x = at::randn({b, n, L.c}, metric.options());
          const at::Tensor merged = fused.merge(x), merged_ref = ref.merge(x);
          ASSERT_EQ(merged.sizes(), merged_ref.sizes());
          EXPECT_TRUE(at::equal(merged, again.merge(x))) << "two merges differ";
          const int64_t unm_len = fm.unm_tok.size(1), nb = part.dst.size(0);
          EXPECT_TRUE(at::equal(merged.slice(1, 0, unm_len), merged_ref.slice(1, 0, unm_len)));
          const at::Tensor xd = x.to(at::kDouble);
          const auto expand = [&](const at::Tensor& idx) { return idx.unsqueeze(-1).expand({b, idx.size(1), L.c}); };
          const at::Tensor srcs = xd.gather(1, expand(fm.src_tok));
          const at::Tensor sum = xd.index_select(1, part.dst).scatter_add(1, expand(fm.dst_of), srcs);
          const at::Tensor abs_sum = xd.abs().index_select(1, part.dst).scatter_add(1, expand(fm.dst_of), srcs.abs());
          const at::Tensor count = at::ones({b, nb}, xd.options())
                                       .scatter_add(1, fm.dst_of, at::ones({b, r}, xd.options()))
                                       .unsqueeze(-1);
          const at::Tensor mean = sum / count;
          // A float sum of k terms in any fixed order is within 2^-24·Σ|x| of the exact sum (first order,
          // k·2^-24 ≪ 1), the division adds 2^-24 of the mean, and the result's rounding to the output
          // type half its spacing: 2^-11 of the value for fp16 (at least 2^-25, its subnormal spacing's
          // half), nothing more for fp32.
          const double u = std::ldexp(1.0, -24);
          const double u_out = dtype == at::kHalf ? std::ldexp(1.0, -11) : 0.0;
          const double floor_out = dtype == at::kHalf ? std::ldexp(1.0, -25) : 0.0;
          const at::Tensor bound = abs_sum * u + mean.abs() * (1.001 * (u + u_out)) + floor_out;
          const at::Tensor err = (merged.slice(1, unm_len).to(at::kDouble) - mean).abs();
          const at::Tensor err_ref = (merged_ref.slice(1, unm_len).to(at::kDouble) - mean).abs();
          EXPECT_TRUE((err <= bound).all().item<bool>())
              << "merged means off by up to " << (err / bound).max().item<double>()
              << " of the fp rounding bound (LibTorch's scatter_reduce: " << (err_ref / bound).max().item<double>() << ")";

          // Unmerge: the same rows as LibTorch's gather, and bit-identical twice.
          const at::Tensor y = at::randn({b, n - r, L.c}, metric.options());
          const at::Tensor restored = fused.unmerge(y);
          EXPECT_TRUE(at::equal(restored, ref.unmerge(y)));
          EXPECT_TRUE(at::equal(restored, again.unmerge(y)));
        }
}
