// diffusers' DDIMScheduler: denoising diffusion implicit models (arXiv:2010.02502), formula (12),
// with eta scaling the added noise (eta = 0: deterministic DDIM).
#include <cmath>

#include "schedulers/common.hpp"

namespace diffbench::sched {
namespace {

struct DdimSettings {
  TrainSchedule train;
  bool clip_sample = true;
  bool set_alpha_to_one = true;
  int64_t steps_offset = 0;
  Prediction prediction = Prediction::Epsilon;
  double clip_sample_range = 1.0;
  Spacing spacing = Spacing::Leading;
};

// Step coefficients in float32, as diffusers' 0-d alphas_cumprod tensors give them.
struct DdimCoeffs {
  float sqrt_a = 0, sqrt_b = 0;  // sqrt(a_t), sqrt(1 - a_t)
  float sqrt_a_prev = 0;         // sqrt(a_prev)
  float std_dev = 0;             // eta * sqrt(variance)
  float direction = 0;           // sqrt(1 - a_prev - std_dev^2)
};

class DdimScheduler final : public SchedulerBase {
 public:
  DdimScheduler(DdimSettings s, nlohmann::json config, std::string source)
      : SchedulerBase(std::move(config), std::move(source)), s_(std::move(s)) {
    alphas_cumprod_ = to_floats(s_.train.alphas_cumprod());
    final_alpha_cumprod_ = s_.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
  }

  std::string name() const override { return "ddim"; }
  double init_noise_sigma() const override { return 1.0; }
  void set_eta(double eta) override {
    if (!(eta >= 0)) throw UsageError("eta must be >= 0, got " + std::to_string(eta), "ddim scheduler");
    eta_ = eta;
    if (ready_) coeffs_ = make_coeffs();
  }

  void set_timesteps(int n) override {
    const int64_t N = s_.train.num_train_timesteps;
    check_num_steps(n, N);
    num_inference_steps_ = n;
    std::vector<int64_t> ts;
    if (s_.spacing == Spacing::Linspace) {
      auto v = np_linspace(0, static_cast<double>(N - 1), n);
      for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(static_cast<int64_t>(np_round(*it)));
    } else if (s_.spacing == Spacing::Leading) {
      const int64_t ratio = N / n;
      for (int64_t k = n - 1; k >= 0; --k) ts.push_back(k * ratio + s_.steps_offset);
    } else {
      for (double v : np_arange(static_cast<double>(N), 0, -(static_cast<double>(N) / n)))
        ts.push_back(static_cast<int64_t>(np_round(v)) - 1);
    }
    set_integer_timesteps(std::move(ts));
    coeffs_ = make_coeffs();
  }

  at::Tensor scale_model_input(const at::Tensor& sample, size_t i) override {
    check_index(i);
    return sample;
  }

  at::Tensor step(const at::Tensor& model_output, size_t i, const at::Tensor& sample, const NoiseFn& noise) override {
    begin_step(i);
    const DdimCoeffs& c = coeffs_[i];
    const double sqrt_a = c.sqrt_a, sqrt_b = c.sqrt_b;

    // predicted x_0 and epsilon
    at::Tensor x0, eps;
    if (s_.prediction == Prediction::Epsilon) {
      x0 = (sample - model_output * sqrt_b) / sqrt_a;
      eps = model_output;
    } else if (s_.prediction == Prediction::Sample) {
      x0 = model_output;
      eps = (sample - x0 * sqrt_a) / sqrt_b;
    } else {  // v_prediction
      x0 = sample * sqrt_a - model_output * sqrt_b;
      eps = model_output * sqrt_a + sample * sqrt_b;
    }
    if (s_.clip_sample) x0 = x0.clamp(-s_.clip_sample_range, s_.clip_sample_range);

    // x_{t-1} = sqrt(a_prev) x0 + sqrt(1 - a_prev - sigma_t^2) eps (+ sigma_t noise)
    const auto direction = eps * double(c.direction);
    auto prev = x0 * double(c.sqrt_a_prev) + direction;
    if (eta_ > 0) {
      if (!noise) throw UsageError("DDIM with eta > 0 needs a noise source", "ddim scheduler");
      prev = prev + noise(model_output) * double(c.std_dev);
    }
    ++next_step_;
    return prev;
  }

  std::unique_ptr<Scheduler> clone_fresh() const override {
    auto c = std::make_unique<DdimScheduler>(s_, config_, source_);
    c->eta_ = eta_;
    return c;
  }

 private:
  std::vector<DdimCoeffs> make_coeffs() const {
    std::vector<DdimCoeffs> out;
    for (int64_t timestep : timesteps_) {
      const int64_t prev_timestep = timestep - s_.train.num_train_timesteps / num_inference_steps_;
      const float a_t = py_at(alphas_cumprod_, timestep, "ddim alphas_cumprod");
      const float a_prev =
          prev_timestep >= 0 ? py_at(alphas_cumprod_, prev_timestep, "ddim alphas_cumprod") : final_alpha_cumprod_;
      const float b_t = 1 - a_t;
      const float b_prev = 1 - a_prev;
      // sigma_t = eta * sqrt(variance), DDIM paper formula (16)
      const float variance = (b_prev / b_t) * (1 - a_t / a_prev);
      DdimCoeffs c;
      c.sqrt_a = torch_sqrt(a_t);
      c.sqrt_b = torch_sqrt(b_t);
      c.sqrt_a_prev = torch_sqrt(a_prev);
      c.std_dev = static_cast<float>(eta_) * torch_sqrt(variance);
      c.direction = torch_sqrt(1 - a_prev - sq(c.std_dev));
      out.push_back(c);
    }
    return out;
  }

  DdimSettings s_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_ = 1.0f;
  int64_t num_inference_steps_ = 0;
  double eta_ = 0.0;
  std::vector<DdimCoeffs> coeffs_;
};

}  // namespace

std::unique_ptr<Scheduler> make_ddim(const nlohmann::json& base, const std::string& source) {
  ConfigReader cfg(base, "DDIMScheduler", source);
  DdimSettings s;
  s.train = TrainSchedule::read(cfg);
  s.clip_sample = cfg.get<bool>("clip_sample", true);
  s.set_alpha_to_one = cfg.get<bool>("set_alpha_to_one", true);
  s.steps_offset = cfg.get<int64_t>("steps_offset", 0);
  s.prediction = read_prediction(cfg, {"epsilon", "sample", "v_prediction"});
  if (cfg.get<bool>("thresholding", false)) cfg.fail("thresholding", "= true (dynamic thresholding) is not supported");
  cfg.get<double>("dynamic_thresholding_ratio", 0.995);
  s.clip_sample_range = cfg.get<double>("clip_sample_range", 1.0);
  cfg.get<double>("sample_max_value", 1.0);
  s.spacing = read_spacing(cfg, "leading");
  s.train.rescale_betas_zero_snr = cfg.get<bool>("rescale_betas_zero_snr", false);
  return std::make_unique<DdimScheduler>(std::move(s), cfg.resolved(), source);
}

}  // namespace diffbench::sched
