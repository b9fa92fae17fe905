// Timesteps for 50 and 20 steps against values derived here from diffusers' published spacing
// formulas (num_train_timesteps N = 1000, steps_offset 1 for "leading"):
//   leading:  k * (N // n) + offset, k = n-1 .. 0
//   trailing: round(N - k * N / n) - 1, k = 0 .. n-1
//   linspace: round(k * (N - 1) / (n - 1)), k = n-1 .. 0 (Euler keeps the fractional values)
// PNDM's PLMS repeats the second timestep; DPM-Solver spaces n + 1 points and drops the last.
#include <gtest/gtest.h>

#include <cmath>
#include <string>

#include "diffbench/schedulers/scheduler.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

nlohmann::json sd15(const std::string& spacing = "leading") {
  return {{"_class_name", "PNDMScheduler"}, {"beta_end", 0.012},       {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},          {"num_train_timesteps", 1000}, {"set_alpha_to_one", false},
          {"skip_prk_steps", true},         {"steps_offset", 1},       {"timestep_spacing", spacing}};
}

std::vector<int64_t> timesteps_of(const std::string& name, const std::string& spacing, int n) {
  auto s = make_scheduler(name, sd15(spacing), "test");
  s->set_timesteps(n);
  return s->timesteps();
}

std::vector<int64_t> leading(int n, int64_t offset = 1) {
  std::vector<int64_t> t;
  for (int k = n - 1; k >= 0; --k) t.push_back(k * (1000 / n) + offset);
  return t;
}

std::vector<int64_t> trailing(int n) {
  std::vector<int64_t> t;
  for (int k = 0; k < n; ++k) t.push_back(std::llround(1000.0 - k * 1000.0 / n) - 1);
  return t;
}

std::vector<double> linspace_exact(int n, int points) {  // k * 999 / (points - 1), k = n .. 1 or n-1 .. 0
  std::vector<double> t;
  for (int k = n - 1; k >= 0; --k) t.push_back(999.0 * (k + (points - n)) / (points - 1));
  return t;
}

std::vector<int64_t> rounded(const std::vector<double>& v) {
  std::vector<int64_t> t;
  for (double x : v) t.push_back(static_cast<int64_t>(std::nearbyint(x)));  // half to even, as numpy
  return t;
}

}  // namespace

TEST(SchedulerTimesteps, PndmPlmsRepeatsTheSecondTimestep) {
  // leading, 50 steps, offset 1: [981, 961, 961, 941, ..., 21, 1] (51 UNet calls)
  std::vector<int64_t> expected{981, 961};
  for (int64_t t = 961; t >= 1; t -= 20) expected.push_back(t);
  EXPECT_EQ(expected.size(), 51u);
  EXPECT_EQ(timesteps_of("pndm", "leading", 50), expected);

  for (int n : {20, 50}) {
    for (const char* spacing : {"leading", "trailing", "linspace"}) {
      SCOPED_TRACE(std::to_string(n) + " " + spacing);
      std::vector<int64_t> base = std::string(spacing) == "leading"    ? leading(n)
                                  : std::string(spacing) == "trailing" ? trailing(n)
                                                                       : rounded(linspace_exact(n, n));
      base.insert(base.begin() + 1, base[1]);
      EXPECT_EQ(timesteps_of("pndm", spacing, n), base);
    }
  }
}

TEST(SchedulerTimesteps, PndmRungeKuttaStart) {
  // skip_prk_steps false, 10 steps of 100 ([1, 101, ..., 901]): Runge-Kutta on the four largest
  // timesteps and their midpoints (+50), each point but the ends twice, descending; then PLMS on
  // the rest, [601 .. 1].
  auto cfg = sd15();
  cfg["skip_prk_steps"] = false;
  auto s = make_scheduler("pndm", cfg, "test");
  s->set_timesteps(10);
  const std::vector<int64_t> expected{901, 851, 851, 801, 801, 751, 751, 701, 701, 651,
                                      651, 601, 601, 501, 401, 301, 201, 101, 1};
  EXPECT_EQ(s->timesteps(), expected);
}

TEST(SchedulerTimesteps, DdimAndEulerSpacings) {
  for (int n : {20, 50}) {
    SCOPED_TRACE(n);
    EXPECT_EQ(timesteps_of("ddim", "leading", n), leading(n));
    EXPECT_EQ(timesteps_of("ddim", "trailing", n), trailing(n));
    EXPECT_EQ(timesteps_of("ddim", "linspace", n), rounded(linspace_exact(n, n)));
    EXPECT_EQ(timesteps_of("euler", "leading", n), leading(n));
    EXPECT_EQ(timesteps_of("euler", "trailing", n), trailing(n));
    EXPECT_EQ(timesteps_of("euler_a", "leading", n), leading(n));
    EXPECT_EQ(timesteps_of("euler_a", "trailing", n), trailing(n));
  }
  EXPECT_EQ(timesteps_of("ddim", "leading", 20).front(), 951);
}

TEST(SchedulerTimesteps, EulerLinspaceKeepsFractionalTimesteps) {
  for (const char* name : {"euler", "euler_a"}) {
    for (int n : {20, 50}) {
      SCOPED_TRACE(std::string(name) + " " + std::to_string(n));
      auto s = make_scheduler(name, sd15("linspace"), "test");
      s->set_timesteps(n);
      const auto expected = linspace_exact(n, n);
      ASSERT_EQ(s->model_timesteps().size(), expected.size());
      for (size_t i = 0; i < expected.size(); ++i) {
        EXPECT_EQ(s->model_timesteps()[i], static_cast<double>(static_cast<float>(expected[i]))) << i;
        EXPECT_EQ(s->timesteps()[i], static_cast<int64_t>(expected[i])) << i;  // truncated
      }
    }
  }
  // 20 steps: 999, 946.42..., 893.84..., ..., 52.58..., 0
  auto s = make_scheduler("euler", sd15("linspace"), "test");
  s->set_timesteps(20);
  EXPECT_NEAR(s->model_timesteps()[1], 946.4210815, 1e-4);
}

TEST(SchedulerTimesteps, DpmSolverSpacings) {
  for (int n : {20, 50}) {
    SCOPED_TRACE(n);
    // leading: k * (1000 // (n + 1)) + 1 for k = n .. 1
    std::vector<int64_t> lead;
    for (int k = n; k >= 1; --k) lead.push_back(k * (1000 / (n + 1)) + 1);
    EXPECT_EQ(timesteps_of("dpmpp_2m", "leading", n), lead);
    EXPECT_EQ(timesteps_of("dpmpp_2m", "trailing", n), trailing(n));
    // linspace over n + 1 points, the final 0 dropped
    EXPECT_EQ(timesteps_of("dpmpp_2m", "linspace", n), rounded(linspace_exact(n, n + 1)));
  }
  EXPECT_EQ(timesteps_of("dpmpp_2m", "leading", 20).front(), 941);
  EXPECT_EQ(timesteps_of("dpmpp_2m", "leading", 20).back(), 48);
}

TEST(SchedulerTimesteps, InitNoiseSigma) {
  // Euler "leading": sqrt(sigma_max^2 + 1) with sigma_max the largest sigma of the schedule;
  // "trailing" / "linspace": sigma_max itself. sigma(t) = sqrt((1 - a_t) / a_t).
  for (const char* name : {"euler", "euler_a"}) {
    auto lead = make_scheduler(name, sd15("leading"), "test");
    lead->set_timesteps(20);
    auto trail = make_scheduler(name, sd15("trailing"), "test");
    trail->set_timesteps(20);
    // alphas_cumprod(999) for SD's scaled_linear betas, computed in float64 here
    double ac = 1.0;
    for (int i = 0; i < 1000; ++i) {
      double b = std::sqrt(0.00085) + (std::sqrt(0.012) - std::sqrt(0.00085)) * i / 999.0;
      ac *= 1 - b * b;
    }
    const double sigma_max = std::sqrt((1 - ac) / ac);
    EXPECT_NEAR(trail->init_noise_sigma(), sigma_max, 1e-4 * sigma_max) << name;
    // leading's first timestep is 951: sigma(951) < sigma_max
    EXPECT_LT(lead->init_noise_sigma(), std::sqrt(sigma_max * sigma_max + 1)) << name;
    EXPECT_GT(lead->init_noise_sigma(), 1.0) << name;
  }
  for (const char* name : {"pndm", "ddim", "dpmpp_2m"}) {
    auto s = make_scheduler(name, sd15(), "test");
    s->set_timesteps(20);
    EXPECT_EQ(s->init_noise_sigma(), 1.0) << name;
  }
}
