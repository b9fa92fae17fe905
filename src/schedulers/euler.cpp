// diffusers' EulerDiscreteScheduler: Euler's method on the probability-flow ODE in the sigma
// parameterisation of Karras et al. (arXiv:2206.00364, Algorithm 2 with s_churn = 0).
#include <cmath>

#include "schedulers/common.hpp"

namespace diffbench::sched {
namespace {

struct EulerSettings {
  TrainSchedule train;
  Prediction prediction = Prediction::Epsilon;
  bool use_karras_sigmas = false;
  std::optional<double> sigma_min, sigma_max;
  Spacing spacing = Spacing::Linspace;
  int64_t steps_offset = 0;
  bool final_sigma_min = false;  // final_sigmas_type "sigma_min" (else "zero")
};

// Karras et al. (2022) sigmas, rho = 7, in float64 (diffusers' _convert_to_karras).
std::vector<double> karras_sigmas(double sigma_min, double sigma_max, int n) {
  const double rho = 7.0;
  const double min_inv_rho = std::pow(sigma_min, 1 / rho);
  const double max_inv_rho = std::pow(sigma_max, 1 / rho);
  std::vector<double> out;
  for (double r : np_linspace(0, 1, n)) out.push_back(std::pow(max_inv_rho + r * (min_inv_rho - max_inv_rho), rho));
  return out;
}

// diffusers' _sigma_to_t: the fractional timestep whose log-sigma interpolates to log(sigma).
// log_sigmas is numpy's float32 log of the training sigmas; low - high stays float32 there.
double sigma_to_t(double sigma, const std::vector<float>& log_sigmas) {
  const double log_sigma = std::log(std::max(sigma, 1e-10));
  const auto n = static_cast<int64_t>(log_sigmas.size());
  // low_idx = cumsum(log_sigma - log_sigmas >= 0).argmax(), clipped to n - 2
  int64_t count = 0, best = 0, arg = 0;
  for (int64_t k = 0; k < n; ++k) {
    count += (log_sigma - static_cast<double>(log_sigmas[static_cast<size_t>(k)]) >= 0) ? 1 : 0;
    if (count > best) {
      best = count;
      arg = k;
    }
  }
  const int64_t low_idx = std::min(arg, n - 2);
  const int64_t high_idx = low_idx + 1;
  const float low = log_sigmas[static_cast<size_t>(low_idx)];
  const float high = log_sigmas[static_cast<size_t>(high_idx)];
  double w = (static_cast<double>(low) - log_sigma) / static_cast<double>(low - high);
  w = std::clamp(w, 0.0, 1.0);
  return (1 - w) * static_cast<double>(low_idx) + w * static_cast<double>(high_idx);
}

class EulerScheduler final : public SchedulerBase {
 public:
  EulerScheduler(EulerSettings s, nlohmann::json config, std::string source)
      : SchedulerBase(std::move(config), std::move(source)), s_(std::move(s)) {
    const auto train = euler_train_sigmas(s_.train, s_.spacing);
    train_sigmas_ = train.sigmas;
    init_noise_sigma_ = train.init_noise_sigma;
  }

  std::string name() const override { return "euler"; }

  double init_noise_sigma() const override { return init_noise_sigma_; }

  void set_timesteps(int n) override {
    const int64_t N = s_.train.num_train_timesteps;
    check_num_steps(n, N);
    std::vector<float> ts = euler_timesteps(s_.spacing, N, n, s_.steps_offset);
    std::vector<double> ts64(ts.begin(), ts.end());
    std::vector<double> sig = np_interp(ts64, train_sigmas_);
    if (s_.use_karras_sigmas) {
      const double smin = s_.sigma_min.value_or(sig.back());
      const double smax = s_.sigma_max.value_or(sig.front());
      sig = karras_sigmas(smin, smax, n);
      std::vector<float> log_sigmas;
      for (float v : train_sigmas_) log_sigmas.push_back(std::log(v));
      ts.clear();
      for (double v : sig) ts.push_back(static_cast<float>(sigma_to_t(v, log_sigmas)));
    }
    std::vector<float> sigmas;
    for (double v : sig) sigmas.push_back(static_cast<float>(v));
    sigmas.push_back(s_.final_sigma_min ? train_sigmas_[0] : 0.0f);
    init_noise_sigma_ = euler_init_noise_sigma(sigmas, s_.spacing);
    coeffs_.clear();
    for (size_t i = 0; i + 1 < sigmas.size(); ++i) coeffs_.push_back(euler_coeffs(sigmas[i], sigmas[i + 1], false));
    std::vector<int64_t> ints;
    for (float t : ts) ints.push_back(static_cast<int64_t>(t));
    timesteps_ = std::move(ints);
    model_timesteps_.assign(ts.begin(), ts.end());
    ready_ = true;
    next_step_ = 0;
  }

  at::Tensor scale_model_input(const at::Tensor& sample, size_t i) override {
    check_index(i);
    return sample / double(coeffs_[i].in_scale);
  }

  at::Tensor step(const at::Tensor& model_output, size_t i, const at::Tensor& sample_in, const NoiseFn&) override {
    begin_step(i);
    const EulerCoeffs& c = coeffs_[i];
    const auto sample = sample_in.to(at::kFloat);
    const double sigma_hat = c.sigma;  // s_churn = 0: gamma = 0, sigma_hat = sigma
    at::Tensor x0;
    if (s_.prediction == Prediction::Epsilon) {
      x0 = sample - model_output * sigma_hat;
    } else if (s_.prediction == Prediction::V) {
      x0 = model_output * double(c.v_out) + sample / double(c.v_div);
    } else {  // sample / original_sample
      x0 = model_output;
    }
    const auto derivative = (sample - x0) / sigma_hat;
    auto prev = sample + derivative * double(c.dt);
    ++next_step_;
    return prev.to(model_output.scalar_type());
  }

  std::unique_ptr<Scheduler> clone_fresh() const override {
    return std::make_unique<EulerScheduler>(s_, config_, source_);
  }

 private:
  EulerSettings s_;
  std::vector<float> train_sigmas_;  // ((1 - ac) / ac) ** 0.5, ascending in t
  std::vector<EulerCoeffs> coeffs_;  // per step
  float init_noise_sigma_ = 1.0f;
};

}  // namespace

std::unique_ptr<Scheduler> make_euler(const nlohmann::json& base, const std::string& source) {
  ConfigReader cfg(base, "EulerDiscreteScheduler", source);
  EulerSettings s;
  s.train = TrainSchedule::read(cfg);
  s.prediction = read_prediction(cfg, {"epsilon", "v_prediction", "sample", "original_sample"});
  cfg.choice("interpolation_type", "linear", {"linear"});
  s.use_karras_sigmas = cfg.get<bool>("use_karras_sigmas", false);
  if (cfg.get<bool>("use_exponential_sigmas", false)) cfg.fail("use_exponential_sigmas", "= true is not supported");
  if (cfg.get<bool>("use_beta_sigmas", false)) cfg.fail("use_beta_sigmas", "= true is not supported");
  s.sigma_min = cfg.optional_double("sigma_min");
  s.sigma_max = cfg.optional_double("sigma_max");
  s.spacing = read_spacing(cfg, "linspace");
  auto timestep_type = cfg.choice("timestep_type", "discrete", {"discrete", "continuous"});
  if (timestep_type == "continuous" && s.prediction == Prediction::V)
    cfg.fail("timestep_type", "= continuous with v_prediction is not supported");
  s.steps_offset = cfg.get<int64_t>("steps_offset", 0);
  s.train.rescale_betas_zero_snr = cfg.get<bool>("rescale_betas_zero_snr", false);
  s.final_sigma_min = cfg.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}) == "sigma_min";
  return std::make_unique<EulerScheduler>(std::move(s), cfg.resolved(), source);
}

}  // namespace diffbench::sched
