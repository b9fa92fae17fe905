// diffusers' EulerAncestralDiscreteScheduler: an Euler step down to sigma_down followed by fresh
// noise of size sigma_up (k-diffusion's sample_euler_ancestral with eta = 1).
#include <cmath>

#include "schedulers/common.hpp"

namespace diffbench::sched {
namespace {

struct EulerAncestralSettings {
  TrainSchedule train;
  bool v_prediction = false;
  Spacing spacing = Spacing::Linspace;
  int64_t steps_offset = 0;
};

class EulerAncestralScheduler final : public SchedulerBase {
 public:
  EulerAncestralScheduler(EulerAncestralSettings s, nlohmann::json config, std::string source)
      : SchedulerBase(std::move(config), std::move(source)), s_(std::move(s)) {
    const auto train = euler_train_sigmas(s_.train, s_.spacing);
    train_sigmas_ = train.sigmas;
    init_noise_sigma_ = train.init_noise_sigma;
  }

  std::string name() const override { return "euler_a"; }

  double init_noise_sigma() const override { return init_noise_sigma_; }

  void set_timesteps(int n) override {
    const int64_t N = s_.train.num_train_timesteps;
    check_num_steps(n, N);
    std::vector<float> ts = euler_timesteps(s_.spacing, N, n, s_.steps_offset);
    std::vector<double> ts64(ts.begin(), ts.end());
    std::vector<float> sigmas;
    for (double v : np_interp(ts64, train_sigmas_)) sigmas.push_back(static_cast<float>(v));
    sigmas.push_back(0.0f);
    init_noise_sigma_ = euler_init_noise_sigma(sigmas, s_.spacing);
    coeffs_.clear();
    for (size_t i = 0; i + 1 < sigmas.size(); ++i) coeffs_.push_back(euler_coeffs(sigmas[i], sigmas[i + 1], true));
    timesteps_.clear();
    for (float t : ts) timesteps_.push_back(static_cast<int64_t>(t));
    model_timesteps_ = std::move(ts64);
    ready_ = true;
    next_step_ = 0;
  }

  at::Tensor scale_model_input(const at::Tensor& sample, size_t i) override {
    check_index(i);
    return sample / double(coeffs_[i].in_scale);
  }

  at::Tensor step(const at::Tensor& model_output, size_t i, const at::Tensor& sample_in,
                  const NoiseFn& noise) override {
    begin_step(i);
    if (!noise) throw UsageError("euler_a needs a noise source", "euler_a scheduler");
    const EulerCoeffs& c = coeffs_[i];
    const auto sample = sample_in.to(at::kFloat);
    at::Tensor x0;
    if (s_.v_prediction) {
      x0 = model_output * double(c.v_out) + sample / double(c.v_div);
    } else {
      x0 = sample - model_output * double(c.sigma);
    }
    // Euler step down to sigma_down, then noise of size sigma_up
    const auto derivative = (sample - x0) / double(c.sigma);
    auto prev = sample + derivative * double(c.dt);
    prev = prev + noise(model_output) * double(c.sigma_up);
    ++next_step_;
    return prev.to(model_output.scalar_type());
  }

  std::unique_ptr<Scheduler> clone_fresh() const override {
    return std::make_unique<EulerAncestralScheduler>(s_, config_, source_);
  }

 private:
  EulerAncestralSettings s_;
  std::vector<float> train_sigmas_;
  std::vector<EulerCoeffs> coeffs_;  // per step
  float init_noise_sigma_ = 1.0f;
};

}  // namespace

std::unique_ptr<Scheduler> make_euler_ancestral(const nlohmann::json& base, const std::string& source) {
  ConfigReader cfg(base, "EulerAncestralDiscreteScheduler", source);
  EulerAncestralSettings s;
  s.train = TrainSchedule::read(cfg);
  s.v_prediction = read_prediction(cfg, {"epsilon", "v_prediction"}) == Prediction::V;
  s.spacing = read_spacing(cfg, "linspace");
  s.steps_offset = cfg.get<int64_t>("steps_offset", 0);
  s.train.rescale_betas_zero_snr = cfg.get<bool>("rescale_betas_zero_snr", false);
  return std::make_unique<EulerAncestralScheduler>(std::move(s), cfg.resolved(), source);
}

}  // namespace diffbench::sched
