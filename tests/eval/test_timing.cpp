// Timing verdicts without pipelines: the ABBA order, the schedule choice, and the speedup interval
// against a deterministic fake timer whose true cost ratio is known.
#include <random>

#include "diffbench/error.hpp"
#include "diffbench/eval/timing.hpp"
#include "eval/device_timer.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

std::string letters(const std::vector<TimedBatch>& order) {
  std::string s;
  for (const auto& t : order) s += t.side == 0 ? 'B' : 'C';
  return s;
}

// A fake machine: a batch of side s costs cost[s] seconds times a log-normal noise factor (sigma
// `noise`) times a slow drift of the machine's speed (1 + drift per batch already run).
struct FakeTimer {
  double cost[2] = {2.0, 1.0};  // true speedup 2
  double noise = 0.0;
  double drift = 0.0;
  std::mt19937_64 rng{0};
  // Both sides' batch times, in pair order, as the evaluator collects them.
  std::pair<std::vector<double>, std::vector<double>> run(const std::vector<TimedBatch>& order, size_t batches) {
    std::normal_distribution<double> z(0.0, 1.0);
    std::vector<double> t[2];
    for (auto& v : t) v.assign(order.size() / 2, 0.0);
    size_t clock = 0;
    for (const auto& b : order) {
      const double seconds = cost[b.side] * std::exp(noise * z(rng)) * (1.0 + drift * double(clock++));
      t[b.side][static_cast<size_t>(b.pass) * batches + b.batch] = seconds;
    }
    return {t[0], t[1]};
  }
};

}  // namespace

TEST(TimingOrder, InterleavedIsAbbaOverAllPasses) {
  EXPECT_EQ(letters(timing_order(Schedule::Interleaved, 4, 1)), "BCCBBCCB");
  // Pairs continue across passes: 3 batches × 2 passes = 6 pairs.
  const auto order = timing_order(Schedule::Interleaved, 3, 2);
  EXPECT_EQ(letters(order), "BCCBBCCBBCCB");
  // Each pair is the same batch of the same pass on both sides, in prompt order within a pass.
  for (size_t k = 0; k < order.size(); k += 2) {
    EXPECT_EQ(order[k].pass, order[k + 1].pass);
    EXPECT_EQ(order[k].batch, order[k + 1].batch);
    EXPECT_EQ(order[k].pass * 3 + static_cast<int>(order[k].batch), static_cast<int>(k / 2));
  }
  EXPECT_EQ(letters(timing_order(Schedule::Interleaved, 1, 1)), "BC");
}

TEST(TimingOrder, SequentialRunsEachSideWhole) {
  const auto order = timing_order(Schedule::Sequential, 2, 3);
  EXPECT_EQ(letters(order), "BBBBBBCCCCCC");
  EXPECT_EQ(order[0], (TimedBatch{0, 0, 0}));
  EXPECT_EQ(order[1], (TimedBatch{0, 0, 1}));
  EXPECT_EQ(order[2], (TimedBatch{0, 1, 0}));
  EXPECT_EQ(order[11], (TimedBatch{1, 2, 1}));
}

TEST(ScheduleChoice, FallsBackToSequentialWhenMemoryIsShort) {
  const int64_t mib = 1024 * 1024;
  auto fits = choose_schedule(std::nullopt, 700 * mib, 1000 * mib);
  EXPECT_EQ(fits.schedule, Schedule::Interleaved);
  EXPECT_FALSE(fits.asked);
  EXPECT_NE(fits.reason.find("700 MiB"), std::string::npos) << fits.reason;
  EXPECT_NE(fits.reason.find("1000 MiB"), std::string::npos) << fits.reason;
  auto short_ = choose_schedule(std::nullopt, 900 * mib, 1000 * mib);  // over 80 % of what is free
  EXPECT_EQ(short_.schedule, Schedule::Sequential);
  EXPECT_NE(short_.reason.find("do not fit"), std::string::npos) << short_.reason;
  // Asked for: honoured either way, and the reason says so.
  auto asked = choose_schedule(Schedule::Sequential, 1 * mib, 1000 * mib);
  EXPECT_EQ(asked.schedule, Schedule::Sequential);
  EXPECT_TRUE(asked.asked);
  EXPECT_NE(asked.reason.find("--schedule sequential"), std::string::npos) << asked.reason;
  EXPECT_EQ(choose_schedule(Schedule::Interleaved, 900 * mib, 1000 * mib).schedule, Schedule::Interleaved);
  EXPECT_EQ(parse_schedule("sequential"), Schedule::Sequential);
  EXPECT_THROW(parse_schedule("abba"), UsageError);
}

TEST(SpeedupStats, RatioOfTotalsWithPairedRatiosAndCv) {
  const std::vector<double> base = {2.0, 4.0, 3.0}, cand = {1.0, 1.0, 2.0};
  const auto s = speedup_stats(base, cand, {4, 4, 2}, 1, 2000);
  EXPECT_DOUBLE_EQ(s.speedup, 9.0 / 4.0);
  EXPECT_EQ(s.batch_ratios, (std::vector<double>{2.0, 4.0, 1.5}));
  EXPECT_LE(s.ci_low, s.speedup);
  EXPECT_GE(s.ci_high, s.speedup);
  // Per image: baseline 0.5, 1.0, 1.5 -> mean 1, sample sd 0.5.
  EXPECT_NEAR(s.cv_baseline, 0.5, 1e-12);
  // Candidate 0.25, 0.25, 1.0 -> mean 0.5, sd sqrt(0.1875).
  EXPECT_NEAR(s.cv_candidate, std::sqrt(0.1875) / 0.5, 1e-12);
  EXPECT_TRUE(s.noisy());
  EXPECT_THROW(speedup_stats({1.0}, {1.0, 2.0}, {1}, 0), UsageError);
  EXPECT_THROW(speedup_stats({1.0}, {0.0}, {1}, 0), UsageError);
  EXPECT_THROW(speedup_stats({NAN}, {1.0}, {1}, 0), UsageError);
}

TEST(SpeedupStats, QuietFakeTimerGivesATightIntervalAroundTheTruthAndNoWarning) {
  FakeTimer timer;
  timer.noise = 0.01;
  const auto [b, c] = timer.run(timing_order(Schedule::Interleaved, 8, 1), 8);
  const auto s = speedup_stats(b, c, std::vector<size_t>(8, 4), 42);
  EXPECT_LE(s.ci_low, 2.0);
  EXPECT_GE(s.ci_high, 2.0);
  EXPECT_FALSE(s.noisy()) << s.to_json().dump();
  EXPECT_EQ(check_min_speedup(s, 1.5).message, "");
  EXPECT_FALSE(check_min_speedup(s, 1.5).failed);
  EXPECT_TRUE(check_min_speedup(s, 2.5).failed);
}

TEST(SpeedupStats, IntervalCoversTheTruthOrWarnsUnderInjectedNoise) {
  // Many simulated evaluations at three noise levels: the 95 % interval covers the true ratio in
  // most of them, and a confident (unflagged) result more than 10 % off the truth is rare: at most
  // 1 % of runs (a 95 % interval misses now and then by design; at noise 0.1 one run in 200 does).
  for (double noise : {0.02, 0.1, 0.4}) {
    FakeTimer timer;
    timer.noise = noise;
    timer.rng.seed(static_cast<uint64_t>(noise * 1000));
    int covered = 0, flagged = 0, confident_misses = 0;
    const int runs = 200;
    for (int i = 0; i < runs; ++i) {
      const auto [b, c] = timer.run(timing_order(Schedule::Interleaved, 8, 2), 8);
      const auto s = speedup_stats(b, c, std::vector<size_t>(16, 4), static_cast<uint64_t>(i), 1000);
      const bool covers = s.ci_low <= 2.0 && 2.0 <= s.ci_high;
      covered += covers;
      flagged += s.noisy();
      if (!covers && !s.noisy() && std::abs(s.speedup / 2.0 - 1.0) > 0.1) ++confident_misses;
    }
    EXPECT_GE(covered, runs * 85 / 100) << "noise " << noise;
    EXPECT_LE(confident_misses, runs / 100) << "noise " << noise;
    if (noise >= 0.4) EXPECT_EQ(flagged, runs) << "large noise must always be flagged";
    if (noise <= 0.02) EXPECT_EQ(flagged, 0) << "small noise must not be flagged";
  }
}

TEST(SpeedupStats, InterleavingCancelsADriftThatBiasesTheSequentialSchedule) {
  // The machine slows down by 3 % per batch (another job ramping up); no random noise.
  FakeTimer timer;
  timer.drift = 0.03;
  const auto [bi, ci] = timer.run(timing_order(Schedule::Interleaved, 8, 1), 8);
  const auto inter = speedup_stats(bi, ci, std::vector<size_t>(8, 4), 1);
  FakeTimer timer2;
  timer2.drift = 0.03;
  const auto [bs, cs] = timer2.run(timing_order(Schedule::Sequential, 8, 1), 8);
  const auto seq = speedup_stats(bs, cs, std::vector<size_t>(8, 4), 1);
  EXPECT_NEAR(inter.speedup, 2.0, 0.02) << "ABBA";
  EXPECT_LT(seq.speedup, 2.0 * 0.85) << "sequential: the candidate ran on the slower machine";
}

TEST(SpeedupCheck, FailsOnlyWhenTheWholeIntervalIsBelow) {
  SpeedupStats s;
  s.speedup = 1.4;
  s.ci_low = 1.2;
  s.ci_high = 1.6;
  auto below = check_min_speedup(s, 1.7);
  EXPECT_TRUE(below.failed);
  EXPECT_NE(below.message.find("--min-speedup 1.70×"), std::string::npos) << below.message;
  auto straddles = check_min_speedup(s, 1.5);  // point estimate below, upper end above
  EXPECT_FALSE(straddles.failed);
  EXPECT_TRUE(straddles.uncertain);
  auto low_end = check_min_speedup(s, 1.3);
  EXPECT_FALSE(low_end.failed);
  EXPECT_TRUE(low_end.uncertain);
  auto clear = check_min_speedup(s, 1.1);
  EXPECT_FALSE(clear.failed);
  EXPECT_FALSE(clear.uncertain);
  s.noise.push_back("noisy");
  EXPECT_TRUE(check_min_speedup(s, 1.1).uncertain);
}

// Without --repeats the evaluator adds interleaved passes while the interval is wider than ±10 % or
// fewer than 5 pairs were timed, at most 4; the fake timer stands in for the pipelines.
namespace {

struct AutomaticRun {
  FakeTimer timer;
  size_t batches = 8;
  int passes = 1;
  std::vector<double> base, cand;
  size_t clock = 0;
  void time_passes(int from, int to) {  // passes [from, to), the ABBA order continued
    std::normal_distribution<double> z(0.0, 1.0);
    base.resize(static_cast<size_t>(to) * batches);
    cand.resize(static_cast<size_t>(to) * batches);
    for (const auto& t : timing_order(Schedule::Interleaved, batches, to)) {
      if (t.pass < from) continue;
      const double seconds = timer.cost[t.side] * std::exp(timer.noise * z(timer.rng)) * (1.0 + timer.drift * double(clock++));
      (t.side == 0 ? base : cand)[static_cast<size_t>(t.pass) * batches + t.batch] = seconds;
    }
  }
  AutomaticPasses run() {
    time_passes(0, passes);
    return run_automatic_passes(
        [&] { return speedup_stats(base, cand, std::vector<size_t>(base.size(), 4), 7, 2000); },
        [&](const std::string&) {
          time_passes(passes, passes + 1);
          ++passes;
        });
  }
};

}  // namespace

TEST(AutomaticPasses, NoneWhenTheTimingIsTightAlready) {
  AutomaticRun r;
  r.timer.noise = 0.01;
  const auto a = r.run();
  EXPECT_TRUE(a.enabled);
  EXPECT_EQ(a.passes, 0);
  EXPECT_EQ(a.note(), "");
  EXPECT_EQ(r.base.size(), 8u);
}

TEST(AutomaticPasses, UntilFivePairs) {
  AutomaticRun r;
  r.timer.noise = 0.01;
  r.batches = 2;  // 2 pairs a pass: 2, 4, 6
  const auto a = r.run();
  EXPECT_EQ(a.passes, 2);
  EXPECT_EQ(r.base.size(), 6u);
  ASSERT_EQ(a.reasons.size(), 2u);
  EXPECT_NE(a.reasons[0].find("only 2 timed batch pair(s)"), std::string::npos) << a.reasons[0];
  EXPECT_NE(a.reasons[1].find("only 4 timed batch pair(s)"), std::string::npos) << a.reasons[1];
  EXPECT_NE(a.note().find("2 more timed pass(es)"), std::string::npos) << a.note();
  EXPECT_EQ(a.to_json()["passes"], 2);
  const auto s = speedup_stats(r.base, r.cand, std::vector<size_t>(6, 4), 7);
  EXPECT_LE(s.ci_low, 2.0);
  EXPECT_GE(s.ci_high, 2.0);
}

TEST(AutomaticPasses, AtMostFourUnderLargeNoiseAndTheyNarrowTheInterval) {
  AutomaticRun r;
  r.timer.noise = 0.3;
  r.timer.rng.seed(3);
  r.time_passes(0, 1);
  const auto before = speedup_stats(r.base, r.cand, std::vector<size_t>(8, 4), 7);
  r.base.clear();
  r.cand.clear();
  r.clock = 0;
  r.timer.rng.seed(3);
  const auto a = r.run();
  EXPECT_EQ(a.passes, kMaxAutomaticPasses);
  EXPECT_EQ(r.base.size(), 8u * (1 + kMaxAutomaticPasses));
  for (const auto& why : a.reasons) EXPECT_NE(why.find("reaches further than ±10 %"), std::string::npos) << why;
  const auto after = speedup_stats(r.base, r.cand, std::vector<size_t>(r.base.size(), 4), 7);
  EXPECT_LT(after.ci_high - after.ci_low, before.ci_high - before.ci_low);
  EXPECT_LE(after.ci_low, 2.0);
  EXPECT_GE(after.ci_high, 2.0);
}

// The device clock (CUDA events) against the host clock: a side whose totals differ by more than 5 %
// is named; nothing without device times (the CPU).
TEST(ClockDisagreement, OverFivePercentOfTheHostTotal) {
  const std::vector<double> host = {1.0, 1.0, 2.0};
  EXPECT_FALSE(clock_disagreement("baseline", host, {}));
  EXPECT_FALSE(clock_disagreement("baseline", host, {1.0, 1.0}));                // not the same batches
  EXPECT_FALSE(clock_disagreement("baseline", host, {1.05, 1.05, 2.05}));        // +3.75 %
  EXPECT_FALSE(clock_disagreement("baseline", host, {0.955, 0.955, 1.91}));      // -4.5 %
  const auto slow = clock_disagreement("candidate", host, {1.1, 1.1, 2.1});      // +7.5 %
  ASSERT_TRUE(slow);
  EXPECT_NE(slow->find("candidate"), std::string::npos) << *slow;
  EXPECT_NE(slow->find("4.300 s"), std::string::npos) << *slow;
  EXPECT_NE(slow->find("4.000 s"), std::string::npos) << *slow;
  EXPECT_NE(slow->find("7.5 %"), std::string::npos) << *slow;
  const auto fast = clock_disagreement("baseline", host, {0.5, 0.5, 1.0});
  ASSERT_TRUE(fast);
  EXPECT_NE(fast->find("-50.0 %"), std::string::npos) << *fast;
}

TEST(DeviceTimer, DoesNothingOnTheCpu) {
  DeviceTimer timer(at::kCPU);
  EXPECT_FALSE(timer.active());
  timer.start();
  EXPECT_FALSE(timer.stop());
}
