// Step-level parity with diffusers, without a UNet: each case in data/*.json (written by
// data/make_refs.py with diffusers) runs a scheduler on a fixed [1, 4, 2, 2] sample with the fake
// model 0.1 * scale_model_input(x) + 0.05 * t / 1000 and records the latents after every step.
// Each step is teacher-forced: it starts from the reference's latents after the previous step, so a
// difference is that step's own and does not accumulate over the run.
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <string>

#include "diffbench/io/json_config.hpp"
#include "diffbench/schedulers/scheduler.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

// One teacher-forced step of float32 elementwise arithmetic (scale, fake model, step update) differs
// from diffusers' only by rounding: LibTorch and the reference pick different vectorised kernels
// (AVX2 vs AVX-512, other CPUs) for exp/pow/sqrt and fused multiply-adds, so results move by a few
// ulps of the operands. The operands are at most as large as the step's input latents (4096 with
// zero-terminal-SNR sigmas, where the first step's output is a difference of such values), so the
// bound is 16 float32 ulps of (|value| + max |input|). References made on the CI CPU match exactly;
// the previous references, made on another CPU with an older diffusers, were 1 ulp off in a derived
// sigma (4095.9998 vs 4096) and within 1e-6 relative free-running over 50 PNDM steps.
constexpr double kUlp = 1.1920928955078125e-07;  // 2^-23
constexpr double kStepUlps = 16;

at::Tensor floats_tensor(const nlohmann::json& values, const std::vector<int64_t>& shape) {
  return at::tensor(values.get<std::vector<float>>(), at::kFloat).reshape(shape);
}

// max over elements of |got - want| / (16 ulps × (|want| + max |input|)): <= 1 passes.
double tolerance_ratio(const at::Tensor& got, const at::Tensor& want, const at::Tensor& input) {
  const auto g = got.to(at::kDouble), w = want.to(at::kDouble);
  const double scale = input.abs().max().item<double>();
  return ((g - w).abs() / (kStepUlps * kUlp * (w.abs() + scale) + 1e-30)).max().item<double>();
}

// Runs every case of one reference file; `worst` gets the largest tolerance ratio seen.
void run_reference_file(const std::string& file, double& worst) {
  const auto path = std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "tests/schedulers/data" / file;
  const auto ref = read_json_file(path);
  const auto shape = ref.at("shape").get<std::vector<int64_t>>();
  const auto sample0 = floats_tensor(ref.at("sample0"), shape);
  worst = 0;
  for (const auto& c : ref.at("cases")) {
    const std::string id = c.at("id");
    SCOPED_TRACE(id);
    auto s = make_scheduler(c.at("name"), c.at("config"), id);
    s->set_eta(c.at("eta").get<double>());
    s->set_timesteps(c.at("steps").get<int>());

    // timesteps: exact, the integer list truncating fractional (Euler linspace) values
    // (Karras timesteps come from numpy's float32 log, which may differ from libm's by an ulp.)
    const auto expected_t = c.at("timesteps").get<std::vector<double>>();
    ASSERT_EQ(s->timesteps().size(), expected_t.size());
    ASSERT_EQ(s->model_timesteps().size(), expected_t.size());
    for (size_t i = 0; i < expected_t.size(); ++i) {
      EXPECT_NEAR(s->model_timesteps()[i], expected_t[i], 1e-4 * std::max(1.0, expected_t[i])) << "timestep " << i;
      EXPECT_EQ(s->timesteps()[i], static_cast<int64_t>(expected_t[i])) << "timestep " << i;
    }
    // A derived float32 scalar (sqrt(sigma_max^2 + 1) or sigma_max): equal within 4 ulps, as float
    // results of the same formula are on any CPU.
    EXPECT_FLOAT_EQ(static_cast<float>(s->init_noise_sigma()), static_cast<float>(c.at("init_noise_sigma").get<double>()));

    auto generator = at::make_generator<at::CPUGeneratorImpl>(0);
    NoiseFn noise = [&](const at::Tensor& like) { return at::randn(like.sizes(), generator, like.options()); };
    const auto& recorded = c.at("samples");
    ASSERT_EQ(recorded.size(), s->timesteps().size()) << "the reference records every step";
    auto latents = sample0 * s->init_noise_sigma();
    for (size_t i = 0; i < s->timesteps().size(); ++i) {
      auto x = s->scale_model_input(latents, i);
      auto model_output = x * 0.1 + 0.05 * s->model_timesteps()[i] / 1000;
      auto stepped = s->step(model_output, i, latents, noise);
      const auto expected = floats_tensor(recorded.at(std::to_string(i)), shape);
      const double ratio = tolerance_ratio(stepped, expected, latents);
      EXPECT_LE(ratio, 1.0) << "step " << i << ": max abs diff " << test::max_abs_diff(stepped, expected)
                            << " is more than 16 ulps of (|value| + max |input|)";
      worst = std::max(worst, ratio);
      latents = expected;  // teacher forcing: the next step starts where the reference's did
    }
  }
}

void check_file(const std::string& file) {
  double worst = 0;
  run_reference_file(file, worst);
  std::cout << file << ": worst step at " << worst << " of its tolerance\n";
}

}  // namespace

TEST(SchedulerParity, Pndm) { check_file("pndm.json"); }
TEST(SchedulerParity, Ddim) { check_file("ddim.json"); }
TEST(SchedulerParity, Euler) { check_file("euler.json"); }
TEST(SchedulerParity, EulerAncestral) { check_file("euler_a.json"); }
TEST(SchedulerParity, DpmSolverMultistep) { check_file("dpmpp_2m.json"); }
