// Pieces shared by the schedulers: config reading like diffusers' from_config, the training
// beta schedule, numpy's linspace / arange / round / interp as diffusers' set_timesteps uses
// them, and float32 helpers that match torch's 0-d tensor arithmetic.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <type_traits>
#include <vector>

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/schedulers/scheduler.hpp"

namespace diffbench::sched {

// Takes the keys a scheduler class knows from a base config, like diffusers' from_config: keys
// listed in base["_use_default_values"] are ignored, absent keys use the class default, and the
// resolved values are recorded for config().
class ConfigReader {
 public:
  ConfigReader(const nlohmann::json& base, std::string class_name, std::string source);

  // The value of `key`, or `fallback` when absent (or null). A wrong type is an InputError.
  template <typename T>
  T get(const std::string& key, const T& fallback) {
    known_.insert(key);
    auto it = base_.find(key);
    if (it == base_.end() || it->is_null()) {
      defaulted_.push_back(key);
      resolved_[key] = fallback;
      return fallback;
    }
    if constexpr (std::is_integral_v<T> && !std::is_same_v<T, bool>) {
      if (!it->is_number_integer()) fail(key, "must be an integer, not " + it->dump());
    }
    T value;
    try {
      value = it->get<T>();
    } catch (const nlohmann::json::exception&) {
      fail(key, "has the wrong type (" + std::string(it->type_name()) + ")");
    }
    resolved_[key] = value;
    return value;
  }
  // A string that must be one of `allowed`.
  std::string choice(const std::string& key, const std::string& fallback, const std::vector<std::string>& allowed);
  // Keys whose diffusers default is None: present-and-null stays None (and is not "defaulted").
  // optional_double also reads Python's -Infinity / Infinity (as strings) and takes a fallback
  // for absent or null keys.
  std::optional<double> optional_double(const std::string& key, std::optional<double> fallback = std::nullopt);
  std::optional<std::string> optional_string(const std::string& key);
  std::optional<std::vector<double>> optional_double_list(const std::string& key);

  // Replaces a resolved value (diffusers' register_to_config after a mapping, e.g. "deis").
  void set_resolved(const std::string& key, const nlohmann::json& value) { resolved_[key] = value; }

  // InputError "<key> <message>" with where() = source.
  [[noreturn]] void fail(const std::string& key, const std::string& message) const;

  // The resolved config: known keys, _class_name, _use_default_values, other base keys.
  nlohmann::json resolved() const;
  const std::string& source() const { return source_; }

 private:
  nlohmann::json base_;
  std::string class_name_;
  std::string source_;
  nlohmann::json resolved_ = nlohmann::json::object();
  std::vector<std::string> defaulted_;
  std::set<std::string> known_;
};

// The training noise schedule (the keys every class shares).
struct TrainSchedule {
  int64_t num_train_timesteps = 1000;
  double beta_start = 0.0001;
  double beta_end = 0.02;
  std::string beta_schedule = "linear";
  std::optional<std::vector<double>> trained_betas;
  bool rescale_betas_zero_snr = false;  // not a PNDM key

  // Reads num_train_timesteps, beta_start, beta_end, beta_schedule, trained_betas.
  static TrainSchedule read(ConfigReader& cfg);
  // Betas (float32, CPU) as diffusers builds them: torch.linspace in float32, squared for
  // scaled_linear, betas_for_alpha_bar in float64 for squaredcos_cap_v2, then optionally
  // rescale_zero_terminal_snr.
  at::Tensor betas() const;
  // cumprod(1 - betas) in float32 (torch's CPU cumprod).
  at::Tensor alphas_cumprod() const;
};

enum class Spacing { Linspace, Leading, Trailing };
enum class Prediction { Epsilon, Sample, V };

// prediction_type, one of `allowed` ("epsilon", "sample", "original_sample", "v_prediction").
Prediction read_prediction(ConfigReader& cfg, const std::vector<std::string>& allowed);
Spacing read_spacing(ConfigReader& cfg, const std::string& fallback);

// The Euler schedulers' timesteps (float32 values, fractional for "linspace"), descending.
std::vector<float> euler_timesteps(Spacing spacing, int64_t num_train_timesteps, int n, int64_t steps_offset);

// numpy.linspace(start, stop, num) in float64 (endpoint included).
std::vector<double> np_linspace(double start, double stop, int64_t num);
// numpy.arange(start, stop, step) for a float step: start + i * ((start + step) - start).
std::vector<double> np_arange(double start, double stop, double step);
// numpy.round: half to even.
double np_round(double x);
// numpy.interp(x, arange(len(fp)), fp) in float64.
std::vector<double> np_interp(const std::vector<double>& x, const std::vector<float>& fp);

// A float32 CPU tensor's values.
std::vector<float> to_floats(const at::Tensor& t);
// x ** 0.5, log and exp of a float32 value through torch's own CPU kernels, so that host-side
// coefficients equal diffusers' 0-d tensor arithmetic bit for bit (torch's float32 sqrt is
// SLEEF's, which is not always the correctly rounded std::sqrt). Host only: used in
// set_timesteps(), never in step().
float torch_sqrt(float x);
float torch_log(float x);
float torch_exp(float x);
inline float sq(float x) { return x * x; }  // torch's x**2

// Per-step float32 coefficients of the Euler schedulers for sigma = sigmas[i]:
//   scale_model_input: x / in_scale, in_scale = sqrt(sigma^2 + 1)
//   v_prediction:      x0 = v * v_out + x / v_div, v_out = -sigma / in_scale, v_div = sigma^2 + 1
struct EulerCoeffs {
  float sigma = 0, in_scale = 1, v_out = 0, v_div = 1;
  float dt = 0;        // Euler: sigmas[i + 1] - sigma; ancestral: sigma_down - sigma
  float sigma_up = 0;  // ancestral only
};
EulerCoeffs euler_coeffs(float sigma, float sigma_next, bool ancestral);
// diffusers' init_noise_sigma: max(sigmas), or sqrt(max^2 + 1) for "leading" spacing.
float euler_init_noise_sigma(const std::vector<float>& sigmas, Spacing spacing);

// The Euler schedulers' training sigmas sqrt((1 - ᾱ) / ᾱ) in float32 (ᾱ's last entry 2^-24 with
// rescale_betas_zero_snr), ascending with t, and the init noise sigma diffusers reports before
// set_timesteps (from those sigmas descending, then 0).
struct EulerTrainSigmas {
  std::vector<float> sigmas;
  float init_noise_sigma = 1.0f;
};
EulerTrainSigmas euler_train_sigmas(const TrainSchedule& train, Spacing spacing);

// v[idx] with Python's negative indexing (diffusers indexes alphas_cumprod with a timestep that
// can be -1 for some "trailing" step counts). UsageError when out of range (e.g. "leading" with
// steps_offset 1 and as many steps as training timesteps).
float py_at(const std::vector<float>& v, int64_t idx, const char* what);

// Common state and checks: the resolved config, timesteps, and the step-order check.
class SchedulerBase : public Scheduler {
 public:
  const std::vector<int64_t>& timesteps() const override { return timesteps_; }
  const std::vector<double>& model_timesteps() const override { return model_timesteps_; }
  nlohmann::json config() const override { return config_; }

 protected:
  SchedulerBase(nlohmann::json config, std::string source)
      : config_(std::move(config)), source_(std::move(source)) {}
  // UsageError when n is not in [1, num_train_timesteps].
  void check_num_steps(int n, int64_t num_train_timesteps) const;
  // UsageError unless set_timesteps() was called, i < timesteps().size() and i == next_step_.
  void begin_step(size_t i) const;
  void check_index(size_t i) const;
  // Integer timesteps; model_timesteps() equal to them.
  void set_integer_timesteps(std::vector<int64_t> ts);

  nlohmann::json config_;
  std::string source_;
  std::vector<int64_t> timesteps_;
  std::vector<double> model_timesteps_;
  bool ready_ = false;
  size_t next_step_ = 0;
};

std::unique_ptr<Scheduler> make_pndm(const nlohmann::json& base, const std::string& source);
std::unique_ptr<Scheduler> make_ddim(const nlohmann::json& base, const std::string& source);
std::unique_ptr<Scheduler> make_euler(const nlohmann::json& base, const std::string& source);
std::unique_ptr<Scheduler> make_euler_ancestral(const nlohmann::json& base, const std::string& source);
std::unique_ptr<Scheduler> make_dpm_solver_multistep(const nlohmann::json& base, const std::string& source);

}  // namespace diffbench::sched
