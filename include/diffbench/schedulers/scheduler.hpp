// Noise schedulers that reproduce diffusers' PNDM, DDIM, Euler, Euler ancestral and DPM-Solver++
// step for step, on LibTorch tensors. The sampling loop is:
//
//   auto s = make_scheduler("ddim", scheduler_config_json, "scheduler/scheduler_config.json");
//   s->set_timesteps(20);
//   latents = latents * s->init_noise_sigma();
//   for (size_t i = 0; i < s->timesteps().size(); ++i) {
//     auto x = s->scale_model_input(latents, i);
//     auto eps = unet(x, s->model_timesteps()[i], ...);
//     latents = s->step(eps, i, latents, noise);
//   }
//
// Per-step coefficients are computed on the host in set_timesteps() with the same float32 /
// float64 arithmetic diffusers uses; step() only does tensor arithmetic with scalars (no reads
// of tensor values, so it never synchronises a GPU).
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"

namespace diffbench {

// Returns standard-normal noise shaped like `like`, already on like's device and dtype (drawn by
// the pipeline from its CPU generator(s), as diffusers' randn_tensor does).
using NoiseFn = std::function<at::Tensor(const at::Tensor& like)>;

class Scheduler {
 public:
  virtual ~Scheduler();

  // "pndm", "ddim", "euler", "euler_a" or "dpmpp_2m".
  virtual std::string name() const = 0;

  // Must be called before a run; resets all state (PNDM's ets, DPM-Solver's model outputs).
  // UsageError when num_inference_steps < 1 or > num_train_timesteps.
  virtual void set_timesteps(int num_inference_steps) = 0;

  // One entry per UNet call, in order (PNDM with skip_prk_steps: n + 1 entries, the second
  // timestep repeated, as in diffusers). Integer timesteps; where diffusers' timesteps are
  // fractional (Euler and Euler ancestral with "linspace" spacing) this holds them truncated
  // toward zero and model_timesteps() holds the exact values.
  virtual const std::vector<int64_t>& timesteps() const = 0;

  // The timestep values the UNet receives, as diffusers passes them (float32 values stored as
  // double). Equal to timesteps() except for fractional Euler timesteps.
  virtual const std::vector<double>& model_timesteps() const = 0;

  // Factor for the initial noise (latents = noise * init_noise_sigma()); a float32 value.
  virtual double init_noise_sigma() const = 0;

  // The UNet input for call i (i indexes timesteps()). Identity except for the Euler schedulers.
  virtual at::Tensor scale_model_input(const at::Tensor& sample, size_t i) = 0;

  // One denoising step after UNet call i. Steps must be taken in order 0, 1, 2, ... after
  // set_timesteps(); `noise` is called only by schedulers that add noise (Euler ancestral: every
  // step; DDIM: every step when eta > 0).
  virtual at::Tensor step(const at::Tensor& model_output, size_t i, const at::Tensor& sample,
                          const NoiseFn& noise) = 0;

  // DDIM's eta (diffusers passes it to step(); 0 by default). Other schedulers ignore it, as
  // diffusers' pipelines do.
  virtual void set_eta(double eta) { (void)eta; }

  // The resolved config with diffusers' key names: every __init__ argument of the class,
  // "_class_name", "_use_default_values" (keys not taken from the base config) and the base
  // config's other keys passed through, as diffusers' from_config records them. A non-finite
  // lambda_min_clipped is stored as a double (nlohmann dumps it as null, which reads back as
  // the default -inf).
  virtual nlohmann::json config() const = 0;

  // A scheduler with the same config (and eta) and no state; set_timesteps() must be called.
  virtual std::unique_ptr<Scheduler> clone_fresh() const = 0;
};

// name: "" or "default" = the class named by base_config["_class_name"]; otherwise one of
// scheduler_names(). Like diffusers' Scheduler.from_config(base): keys the class knows are taken
// from base (except those listed in base["_use_default_values"]), the others use the class's
// defaults. Unknown name -> UsageError listing the valid names; a config value the class cannot
// use (unknown beta_schedule, prediction_type, timestep_spacing, algorithm_type, or an option
// this implementation does not support such as thresholding) -> InputError naming the key, with
// `source` (e.g. the config file's path) as where().
std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const nlohmann::json& base_config,
                                          const std::string& source);

// The valid names for make_scheduler, in a fixed order.
std::vector<std::string> scheduler_names();

}  // namespace diffbench
