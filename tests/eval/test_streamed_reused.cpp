// A reused baseline in eval's streamed metrics: each of its batches is decoded once for both uses
// (checking the batch timed again, pairing the candidate's) and, on a GPU run, the next one is
// decoded on a thread meanwhile. Decoding ahead must not change a single score, and must hold at
// most three batches.
#include <gtest/gtest.h>

#include "diffbench/eval/baseline_cache.hpp"
#include "diffbench/eval/timing.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "eval/streamed_quality.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

TEST(StreamedReused, DecodingAheadChangesNoScoreAndHoldsThreeBatches) {
  const fs::path dir = test::temp_dir("streamed-reused");
  const size_t prompts = 11;  // a short last batch
  const int batch = 3;
  at::manual_seed(5);
  const at::Tensor reused_images = at::randint(0, 256, {static_cast<int64_t>(prompts), 3, 16, 20}, at::kByte);
  write_png_sequence(dir / "reused", reused_images);
  BaselineResult reused;
  reused.image_dirs = {dir / "reused"};
  // The batches timed again: the reused images, one batch off by a few levels (a GPU's rounding).
  at::Tensor again = reused_images.clone();
  again.narrow(0, 3, 3).copy_((reused_images.narrow(0, 3, 3).to(at::kInt) + 2).clamp(0, 255).to(at::kByte));
  const at::Tensor candidate = at::randint(0, 256, reused_images.sizes(), at::kByte);

  struct Outcome {
    FidelityScores fidelity;
    Reproduction reproduction;
    int64_t held = 0, bound = 0;
    std::vector<at::Tensor> diff_sums;
  };
  auto run = [&](bool ahead) {
    StreamedQualityInputs in;
    in.metrics.psnr = in.metrics.ssim = true;
    in.prompts = prompts;
    in.batch_size = batch;
    in.reused = &reused;
    in.decode_ahead = ahead;
    StreamedQuality q(in, [](int, size_t, size_t, size_t) -> at::Tensor {
      throw std::runtime_error("nothing is read back beside a reused baseline");
    });
    // eval's interleaved order: B C C B B C ... over the batches.
    for (const TimedBatch& t : timing_order(Schedule::Interleaved, (prompts + batch - 1) / batch, 1)) {
      const size_t first = static_cast<size_t>(t.batch) * batch;
      const int64_t n = static_cast<int64_t>(std::min<size_t>(batch, prompts - first));
      q.add(t.side, 0, first, (t.side == 0 ? again : candidate).narrow(0, static_cast<int64_t>(first), n));
    }
    q.finish();
    return Outcome{q.fidelity(), q.reproduction(), q.max_images_held(), q.bound(), q.channel_abs_diff_sums()};
  };
  const Outcome now = run(false), ahead = run(true);
  ASSERT_EQ(ahead.fidelity.psnr.size(), prompts);
  ASSERT_EQ(ahead.fidelity.ssim.size(), prompts);
  for (size_t i = 0; i < prompts; ++i) {
    EXPECT_EQ(ahead.fidelity.psnr[i].db, now.fidelity.psnr[i].db) << i;
    EXPECT_EQ(ahead.fidelity.ssim[i], now.fidelity.ssim[i]) << i;
  }
  // The pairs are the candidate against the reused images, not against the batches timed again.
  FidelityScores direct;
  MetricSet both;
  both.psnr = both.ssim = true;
  direct.add_batch(reused_images, candidate, both);
  for (size_t i = 0; i < prompts; ++i) EXPECT_EQ(ahead.fidelity.psnr[i].db, direct.psnr[i].db) << i;
  // So are report.html's per-pixel differences.
  ASSERT_EQ(ahead.diff_sums.size(), prompts);
  for (size_t i = 0; i < prompts; ++i) {
    const auto k = static_cast<int64_t>(i);
    ASSERT_TRUE(ahead.diff_sums[i].defined()) << i;
    EXPECT_TRUE(at::equal(ahead.diff_sums[i], channel_abs_diff_sum(reused_images[k], candidate[k]))) << i;
  }
  EXPECT_FALSE(ahead.reproduction.same);
  EXPECT_EQ(ahead.reproduction.max_abs_diff, 2);
  EXPECT_EQ(ahead.reproduction.sse, now.reproduction.sse);
  EXPECT_EQ(now.bound, 2 * batch);
  EXPECT_EQ(ahead.bound, 3 * batch);
  EXPECT_LE(now.held, now.bound);
  EXPECT_LE(ahead.held, ahead.bound);
  EXPECT_GT(ahead.held, now.held) << "the batch decoded ahead is counted";
  fs::remove_all(dir);
}

// Without a reused baseline the pairs meet as the batches finish, in either order, or one is read
// back (sequential schedule): each prompt's per-pixel difference is kept for report.html.
TEST(StreamedQuality, KeepsEachPairsDifferenceForTheReport) {
  const size_t prompts = 5;
  const int batch = 2;
  at::manual_seed(6);
  const at::Tensor base = at::randint(0, 256, {static_cast<int64_t>(prompts), 3, 8, 10}, at::kByte);
  const at::Tensor cand = at::randint(0, 256, base.sizes(), at::kByte);
  for (Schedule schedule : {Schedule::Interleaved, Schedule::Sequential}) {
    StreamedQualityInputs in;
    in.metrics.psnr = true;
    in.prompts = prompts;
    in.batch_size = batch;
    StreamedQuality q(in, [&](int side, size_t, size_t first, size_t count) {
      return (side == 0 ? base : cand).narrow(0, static_cast<int64_t>(first), static_cast<int64_t>(count));
    });
    for (const TimedBatch& t : timing_order(schedule, (prompts + batch - 1) / batch, 1)) {
      const size_t first = static_cast<size_t>(t.batch) * batch;
      const int64_t n = static_cast<int64_t>(std::min<size_t>(batch, prompts - first));
      q.add(t.side, 0, first, (t.side == 0 ? base : cand).narrow(0, static_cast<int64_t>(first), n));
    }
    const std::vector<at::Tensor> sums = q.channel_abs_diff_sums();
    ASSERT_EQ(sums.size(), prompts);
    for (size_t i = 0; i < prompts; ++i) {
      const auto k = static_cast<int64_t>(i);
      ASSERT_TRUE(sums[i].defined()) << i;
      EXPECT_EQ(sums[i].scalar_type(), at::kShort);
      EXPECT_TRUE(at::equal(sums[i], (base[k].to(at::kInt) - cand[k].to(at::kInt)).abs().sum(0).to(at::kShort))) << i;
    }
  }
}
