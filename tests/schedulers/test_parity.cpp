// Step-level parity with diffusers, without a UNet: each case in data/*.json (written by
// data/make_refs.py with diffusers) runs a scheduler on a fixed [1, 4, 2, 2] sample with the fake
// model 0.1 * scale_model_input(x) + 0.05 * t / 1000 and records the latents after some steps.
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

constexpr double kStepTolerance = 1e-5;

at::Tensor floats_tensor(const nlohmann::json& values, const std::vector<int64_t>& shape) {
  return at::tensor(values.get<std::vector<float>>(), at::kFloat).reshape(shape);
}

// Runs every case of one reference file; `worst` gets the largest difference seen.
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
    EXPECT_EQ(static_cast<float>(s->init_noise_sigma()), static_cast<float>(c.at("init_noise_sigma").get<double>()));

    auto generator = at::make_generator<at::CPUGeneratorImpl>(0);
    NoiseFn noise = [&](const at::Tensor& like) { return at::randn(like.sizes(), generator, like.options()); };
    auto latents = sample0 * s->init_noise_sigma();
    const auto& recorded = c.at("samples");
    size_t checked = 0;
    for (size_t i = 0; i < s->timesteps().size(); ++i) {
      auto x = s->scale_model_input(latents, i);
      auto model_output = x * 0.1 + 0.05 * s->model_timesteps()[i] / 1000;
      latents = s->step(model_output, i, latents, noise);
      if (auto it = recorded.find(std::to_string(i)); it != recorded.end()) {
        SCOPED_TRACE("after step " + std::to_string(i));
        auto expected = floats_tensor(*it, shape);
        EXPECT_TENSOR_NEAR(latents, expected, kStepTolerance);
        worst = std::max(worst, test::max_abs_diff(latents, expected));
        ++checked;
      }
    }
    EXPECT_EQ(checked, recorded.size());
  }
}

void check_file(const std::string& file) {
  double worst = 0;
  run_reference_file(file, worst);
  std::cout << file << ": max abs diff " << worst << "\n";
}

}  // namespace

TEST(SchedulerParity, Pndm) { check_file("pndm.json"); }
TEST(SchedulerParity, Ddim) { check_file("ddim.json"); }
TEST(SchedulerParity, Euler) { check_file("euler.json"); }
TEST(SchedulerParity, EulerAncestral) { check_file("euler_a.json"); }
TEST(SchedulerParity, DpmSolverMultistep) { check_file("dpmpp_2m.json"); }
