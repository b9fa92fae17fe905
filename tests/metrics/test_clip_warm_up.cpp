// eval's CLIP scorer lives on a worker thread: loaded there, warmed up there on CUDA (every prompt's
// text features made ahead, one pass of the image tower) and scoring there. Neither the warm-up nor
// the thread may change a score: against a scorer loaded and used on the calling thread, batch by
// batch as eval scores them.
#include <gtest/gtest.h>

#include "diffbench/error.hpp"
#include "diffbench/metrics/clip_score.hpp"
#include "test_support.hpp"
#include "util/worker_thread.hpp"

using namespace diffbench;

TEST(ClipScorerWarmUp, WarmUpAndWorkerThreadChangeNoScore) {
  const auto dir = test::fixture("tiny-clip");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const std::vector<std::string> prompts = {"a cat on a sofa", "a red bus", "two dogs in the snow", "a red bus",
                                            "a bowl of soup"};
  at::manual_seed(7);
  const at::Tensor images = at::randint(0, 256, {5, 3, 40, 48}, at::kByte);
  auto batches = [&](const ClipScorer& s, const std::function<std::vector<double>(std::function<std::vector<double>()>)>& on) {
    std::vector<double> out;
    for (int64_t first = 0; first < 5; first += 2) {
      const int64_t n = std::min<int64_t>(2, 5 - first);
      const std::vector<std::string> texts(prompts.begin() + first, prompts.begin() + first + n);
      const auto got = on([&] { return s.score(images.narrow(0, first, n), texts); });
      out.insert(out.end(), got.begin(), got.end());
    }
    return out;
  };
  const auto plain = ClipScorer::load(dir);
  const std::vector<double> expected = batches(*plain, [](auto f) { return f(); });

  WorkerThread worker;
  const auto warmed = worker.run([&] {
    auto s = ClipScorer::load(dir);
    s->warm_up(prompts, 2);
    return s;
  });
  const std::vector<double> got = batches(*warmed, [&](auto f) { return worker.run(f); });
  ASSERT_EQ(got.size(), expected.size());
  for (size_t i = 0; i < got.size(); ++i) EXPECT_NEAR(got[i], expected[i], 1e-4) << i;
  // A task's exception comes out of its future; the worker goes on.
  EXPECT_THROW(worker.run([&] { return warmed->score(images, {"too few prompts"}); }), InputError);
  EXPECT_EQ(worker.run([] { return 3; }), 3);
}
