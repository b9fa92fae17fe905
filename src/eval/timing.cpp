#include "diffbench/eval/timing.hpp"

#include <cmath>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <unistd.h>

#include "diffbench/error.hpp"
#include "diffbench/metrics/stats.hpp"
#include "util/format.hpp"

namespace diffbench {

double process_age_s() {
  std::ifstream stat("/proc/self/stat"), uptime("/proc/uptime");
  std::string line;
  double up = 0;
  if (!std::getline(stat, line) || !(uptime >> up)) return 0;
  const size_t close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string field;
  for (int i = 3; i <= 22 && fields >> field; ++i)
    if (i == 22) return std::max(0.0, up - std::stod(field) / static_cast<double>(::sysconf(_SC_CLK_TCK)));
  return 0;
}

namespace {

std::string mib(int64_t bytes) { return fixed(static_cast<double>(bytes) / (1024.0 * 1024.0), 0) + " MiB"; }

std::string interval_text(const SpeedupStats& s) {
  return fixed(s.speedup, 2) + "× [" + fixed(s.ci_low, 2) + ", " + fixed(s.ci_high, 2) + "]";
}

}  // namespace

Schedule parse_schedule(const std::string& name) {
  if (name == "interleaved") return Schedule::Interleaved;
  if (name == "sequential") return Schedule::Sequential;
  throw UsageError("unknown schedule '" + name + "' (interleaved or sequential)", "--schedule");
}

std::string to_string(Schedule schedule) { return schedule == Schedule::Interleaved ? "interleaved" : "sequential"; }

std::vector<TimedBatch> timing_order(Schedule schedule, size_t batches_per_pass, int repeats) {
  std::vector<TimedBatch> order;
  if (schedule == Schedule::Sequential) {
    for (int side = 0; side < 2; ++side)
      for (int pass = 0; pass < repeats; ++pass)
        for (size_t b = 0; b < batches_per_pass; ++b) order.push_back({side, pass, b});
    return order;
  }
  size_t k = 0;  // pair index over all passes
  for (int pass = 0; pass < repeats; ++pass)
    for (size_t b = 0; b < batches_per_pass; ++b, ++k) {
      const int first = k % 2 == 0 ? 0 : 1;
      order.push_back({first, pass, b});
      order.push_back({1 - first, pass, b});
    }
  return order;
}

nlohmann::json ScheduleChoice::to_json() const {
  return {{"schedule", to_string(schedule)},
          {"asked", asked},
          {"estimated_bytes", estimated_bytes},
          {"free_bytes", free_bytes},
          {"reason", reason}};
}

ScheduleChoice choose_schedule(std::optional<Schedule> asked, int64_t estimated_bytes, int64_t free_bytes) {
  ScheduleChoice c;
  c.estimated_bytes = estimated_bytes;
  c.free_bytes = free_bytes;
  const bool fits = static_cast<double>(estimated_bytes) <= kInterleaveMemoryFraction * static_cast<double>(free_bytes);
  const std::string numbers = "both pipelines' weights need about " + mib(estimated_bytes) + ", " + mib(free_bytes) +
                              " free; interleaving uses at most " +
                              std::to_string(static_cast<int>(kInterleaveMemoryFraction * 100)) + " % of it";
  if (asked) {
    c.schedule = *asked;
    c.asked = true;
    c.reason = "--schedule " + to_string(*asked) + " (" + numbers + ")";
    if (*asked == Schedule::Interleaved && !fits) c.reason += "; asked for although it may not fit";
  } else {
    c.schedule = fits ? Schedule::Interleaved : Schedule::Sequential;
    c.reason = std::string(fits ? "interleaved: both pipelines fit in memory (" : "sequential: both pipelines do not fit in memory (") +
               numbers + ")";
  }
  return c;
}

nlohmann::json SpeedupStats::to_json() const {
  return {{"speedup", speedup},       {"ci95", {ci_low, ci_high}},      {"pairs", pairs},
          {"batch_ratios", batch_ratios}, {"cv_baseline", cv_baseline}, {"cv_candidate", cv_candidate},
          {"noisy", noisy()},         {"noise", noise}};
}

SpeedupStats speedup_stats(const std::vector<double>& base, const std::vector<double>& cand,
                           const std::vector<size_t>& images, uint64_t seed, size_t resamples) {
  if (base.size() != cand.size() || base.size() != images.size())
    throw UsageError("speedup_stats: " + std::to_string(base.size()) + " baseline and " + std::to_string(cand.size()) +
                     " candidate batch times for " + std::to_string(images.size()) + " batches");
  for (size_t k = 0; k < base.size(); ++k)
    if (!(base[k] > 0) || !(cand[k] > 0) || !std::isfinite(base[k]) || !std::isfinite(cand[k]) || images[k] == 0)
      throw UsageError("speedup_stats: batch " + std::to_string(k) + " has a time that is not a positive number");
  const RatioStats r = ratio_bootstrap(base, cand, resamples, seed);
  SpeedupStats s;
  s.speedup = r.ratio;
  s.ci_low = r.ci_low;
  s.ci_high = r.ci_high;
  s.pairs = r.n;
  std::vector<double> base_per_image, cand_per_image;
  for (size_t k = 0; k < base.size(); ++k) {
    s.batch_ratios.push_back(base[k] / cand[k]);
    base_per_image.push_back(base[k] / double(images[k]));
    cand_per_image.push_back(cand[k] / double(images[k]));
  }
  s.cv_baseline = coefficient_of_variation(base_per_image);
  s.cv_candidate = coefficient_of_variation(cand_per_image);

  const double lo = s.speedup * (1 - kNoisyIntervalFraction), hi = s.speedup * (1 + kNoisyIntervalFraction);
  if (s.ci_low < lo || s.ci_high > hi)
    s.noise.push_back("the speedup's 95 % interval " + interval_text(s) + " reaches further than ±" +
                      fixed(kNoisyIntervalFraction * 100, 0) + " % from it");
  for (auto [name, cv] : {std::pair{"baseline", s.cv_baseline}, std::pair{"candidate", s.cv_candidate}})
    if (cv > kNoisyBatchCv)
      s.noise.push_back(std::string("the ") + name + "'s batch times vary by " + fixed(cv * 100, 1) +
                        " % (coefficient of variation, over " + fixed(kNoisyBatchCv * 100, 0) + " %)");
  if (s.pairs < kFewPairs)
    s.noise.push_back("only " + std::to_string(s.pairs) + " timed batch pair(s): too few for a reliable interval");
  return s;
}

std::string automatic_pass_reason(const SpeedupStats& s) {
  if (s.pairs < kFewPairs)
    return "only " + std::to_string(s.pairs) + " timed batch pair(s), fewer than " + std::to_string(kFewPairs);
  const double lo = s.speedup * (1 - kNoisyIntervalFraction), hi = s.speedup * (1 + kNoisyIntervalFraction);
  if (s.ci_low < lo || s.ci_high > hi)
    return "the speedup's 95 % interval " + interval_text(s) + " reaches further than ±" +
           fixed(kNoisyIntervalFraction * 100, 0) + " % from it";
  return "";
}

std::string AutomaticPasses::note() const {
  if (passes == 0) return "";
  std::string why;
  for (const auto& r : reasons) why += (why.empty() ? "" : "; then ") + r;
  return std::to_string(passes) + " more timed pass(es) over the prompts ran automatically (--repeats not given): " +
         why;
}

nlohmann::json AutomaticPasses::to_json() const {
  return {{"enabled", enabled},
          {"passes", passes},
          {"max_passes", kMaxAutomaticPasses},
          {"rule", "without --repeats, more interleaved passes while the speedup's 95 % interval reaches further than "
                   "±" + fixed(kNoisyIntervalFraction * 100, 0) + " % from it or fewer than " +
                       std::to_string(kFewPairs) + " batch pairs were timed"},
          {"reasons", reasons}};
}

AutomaticPasses run_automatic_passes(const std::function<SpeedupStats()>& stats,
                                     const std::function<void(const std::string&)>& run_pass, int max_passes) {
  AutomaticPasses out;
  out.enabled = true;
  while (out.passes < max_passes) {
    std::string why = automatic_pass_reason(stats());
    if (why.empty()) break;
    run_pass(why);
    out.reasons.push_back(std::move(why));
    ++out.passes;
  }
  return out;
}

SpeedupCheck check_min_speedup(const SpeedupStats& s, double min_speedup) {
  SpeedupCheck c;
  const std::string x = fixed(min_speedup, 2) + "×";
  if (s.ci_high < min_speedup) {
    c.failed = true;
    c.message = "speedup " + interval_text(s) + " is below --min-speedup " + x + " (the whole 95 % interval)";
    return c;
  }
  if (s.speedup < min_speedup || s.ci_low < min_speedup) {
    c.uncertain = true;
    c.message = "speedup " + interval_text(s) + ": the interval reaches below --min-speedup " + x +
                "; passed because its upper end does not";
  } else if (s.noisy()) {
    c.uncertain = true;
    c.message = "speedup " + interval_text(s) + " is above --min-speedup " + x + " but the timing is noisy";
  }
  return c;
}

}  // namespace diffbench
