// Scheduler state: set_timesteps() restarts a run, clone_fresh() copies the config (and eta) but
// no state, and step() never reads tensor values (it runs on meta tensors, which have none).
#include <ATen/CPUGeneratorImpl.h>
#include <gtest/gtest.h>

#include <string>

#include "diffbench/schedulers/scheduler.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

nlohmann::json sd15() {
  return {{"_class_name", "PNDMScheduler"}, {"beta_end", 0.012},       {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},          {"num_train_timesteps", 1000}, {"set_alpha_to_one", false},
          {"skip_prk_steps", true},         {"steps_offset", 1},       {"timestep_spacing", "leading"}};
}

// A full run with a fake model; returns the final latents.
at::Tensor run(Scheduler& s, int steps, const at::Tensor& sample0) {
  s.set_timesteps(steps);
  auto generator = at::make_generator<at::CPUGeneratorImpl>(7);
  NoiseFn noise = [&](const at::Tensor& like) { return at::randn(like.sizes(), generator, like.options()); };
  auto latents = sample0 * s.init_noise_sigma();
  for (size_t i = 0; i < s.timesteps().size(); ++i) {
    auto x = s.scale_model_input(latents, i);
    auto model_output = at::sin(x) * 0.3 + 0.05 * s.model_timesteps()[i] / 1000;
    latents = s.step(model_output, i, latents, noise);
  }
  return latents;
}

}  // namespace

TEST(SchedulerState, SetTimestepsRestartsAndCloneFreshHasNoState) {
  const auto sample0 = at::randn({2, 4, 3, 3}, at::make_generator<at::CPUGeneratorImpl>(3));
  for (const auto& name : scheduler_names()) {
    SCOPED_TRACE(name);
    auto s = make_scheduler(name, sd15(), "test");
    s->set_eta(0.3);
    const auto first = run(*s, 12, sample0);
    EXPECT_TRUE(at::isfinite(first).all().item<bool>());
    // half a run, then a restart
    s->set_timesteps(12);
    auto x = sample0 * s->init_noise_sigma();
    NoiseFn noise = [](const at::Tensor& like) { return at::ones_like(like); };
    for (size_t i = 0; i < 5; ++i) x = s->step(s->scale_model_input(x, i) * 0.2, i, x, noise);
    EXPECT_TRUE(at::equal(run(*s, 12, sample0), first));
    auto clone = s->clone_fresh();
    EXPECT_THROW(clone->step(sample0, 0, sample0, noise), UsageError);  // needs set_timesteps
    EXPECT_TRUE(at::equal(run(*clone, 12, sample0), first));  // same config, same eta
    // a different step count is a different run
    EXPECT_FALSE(at::equal(run(*s, 13, sample0), first));
  }
}

TEST(SchedulerState, DdimEtaAddsNoiseScaledBySigma) {
  const auto sample0 = at::randn({1, 4, 2, 2}, at::make_generator<at::CPUGeneratorImpl>(5));
  auto s = make_scheduler("ddim", sd15(), "test");
  const auto deterministic = run(*s, 10, sample0);
  s->set_eta(1.0);
  const auto noisy = run(*s, 10, sample0);
  EXPECT_FALSE(at::equal(deterministic, noisy));
  s->set_eta(0.0);
  EXPECT_TRUE(at::equal(run(*s, 10, sample0), deterministic));
  EXPECT_THROW(s->set_eta(-1), UsageError);
}

TEST(SchedulerState, StepReadsNoTensorValues) {
  // Meta tensors carry shapes but no data: any .item() / copy to host in scale_model_input or
  // step would throw here.
  auto variants = std::vector<std::pair<std::string, nlohmann::json>>{};
  for (const auto& name : scheduler_names()) variants.emplace_back(name, sd15());
  auto prk = sd15();
  prk["skip_prk_steps"] = false;
  variants.emplace_back("pndm", prk);
  auto v = sd15();
  v["prediction_type"] = "v_prediction";
  for (const auto& name : scheduler_names()) variants.emplace_back(name, v);
  auto order3 = sd15();
  order3["solver_order"] = 3;
  variants.emplace_back("dpmpp_2m", order3);

  const auto meta = at::TensorOptions().device(at::kMeta).dtype(at::kFloat);
  NoiseFn noise = [](const at::Tensor& like) { return at::empty_like(like); };
  for (const auto& [name, cfg] : variants) {
    SCOPED_TRACE(name + " " + cfg.dump());
    auto s = make_scheduler(name, cfg, "test");
    s->set_eta(0.5);
    s->set_timesteps(8);
    auto latents = at::empty({2, 4, 8, 8}, meta) * s->init_noise_sigma();
    for (size_t i = 0; i < s->timesteps().size(); ++i) {
      auto x = s->scale_model_input(latents, i);
      latents = s->step(x * 0.5, i, latents, noise);
    }
    EXPECT_EQ(latents.device().type(), at::kMeta);
    EXPECT_EQ(latents.sizes(), at::IntArrayRef({2, 4, 8, 8}));
  }
}
