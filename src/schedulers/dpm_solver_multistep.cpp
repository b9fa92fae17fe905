// diffusers' DPMSolverMultistepScheduler with algorithm_type "dpmsolver++" (DPM-Solver++,
// arXiv:2211.01095): multistep updates in the data-prediction (x_0) parameterisation, order 1 to 3,
// midpoint or Heun second-order corrections, lower-order steps at the start and (optionally) at
// the end. All per-step coefficients are computed in set_timesteps().
#include <cmath>

#include "schedulers/common.hpp"

namespace diffbench::sched {
namespace {

struct DpmSettings {
  TrainSchedule train;
  int64_t solver_order = 2;
  Prediction prediction = Prediction::Epsilon;
  bool heun = false;  // solver_type "heun" (else "midpoint")
  bool lower_order_final = true;
  bool euler_at_final = false;
  bool final_sigma_min = false;  // final_sigmas_type "sigma_min" (else "zero")
  double lambda_min_clipped = -INFINITY;
  bool learned_variance = false;  // variance_type "learned" / "learned_range"
  Spacing spacing = Spacing::Linspace;
  int64_t steps_offset = 0;
};

// float32 alpha_t, sigma_t and lambda_t of one sigma, as _sigma_to_alpha_sigma_t gives them.
struct Point {
  float alpha, sigma, lambda;
};
Point point(float sigma) {
  Point p;
  p.alpha = 1 / torch_sqrt(sq(sigma) + 1);
  p.sigma = sigma * p.alpha;
  p.lambda = torch_log(p.alpha) - torch_log(p.sigma);
  return p;
}

// The coefficients of step i: x0 from the model output, then the order-k update.
struct StepCoeffs {
  int order = 1;
  float conv_alpha = 1, conv_sigma = 0;  // alpha_t, sigma_t at sigmas[i]
  float c_sample = 0;                    // sigma_t / sigma_s0
  float c_d0 = 0;                        // alpha_t * (exp(-h) - 1)
  float c_d1 = 0;                        // order 2: 0.5 * c_d0 (midpoint) or the Heun factor; order 3: D1's
  float c_d2 = 0;                        // order 3
  float inv_r0 = 0, inv_r1 = 0, r0_over_sum = 0, inv_sum = 0;
};

class DpmSolverMultistepScheduler final : public SchedulerBase {
 public:
  DpmSolverMultistepScheduler(DpmSettings s, nlohmann::json config, std::string source)
      : SchedulerBase(std::move(config), std::move(source)), s_(std::move(s)) {
    auto ac = s_.train.alphas_cumprod();
    if (s_.train.rescale_betas_zero_snr) ac[-1] = std::pow(2.0, -24);
    train_sigmas_ = to_floats(((1 - ac) / ac).pow(0.5));
    // last_timestep = num_train_timesteps - searchsorted(flip(lambda_t), lambda_min_clipped)
    auto lambda_t = at::log(at::sqrt(ac)) - at::log(at::sqrt(1 - ac));
    const int64_t clipped_idx = at::searchsorted(at::flip(lambda_t, {0}), s_.lambda_min_clipped).item<int64_t>();
    last_timestep_ = s_.train.num_train_timesteps - clipped_idx;
  }

  std::string name() const override { return "dpmpp_2m"; }
  double init_noise_sigma() const override { return 1.0; }

  void set_timesteps(int n) override {
    const int64_t N = s_.train.num_train_timesteps;
    check_num_steps(n, N);
    const auto last = static_cast<double>(last_timestep_);
    std::vector<int64_t> ts;
    if (s_.spacing == Spacing::Linspace) {
      auto v = np_linspace(0, last - 1, n + 1);  // reversed, without the final 0
      for (size_t k = v.size() - 1; k >= 1; --k) ts.push_back(static_cast<int64_t>(np_round(v[k])));
    } else if (s_.spacing == Spacing::Leading) {
      const int64_t ratio = last_timestep_ / (n + 1);
      for (int64_t k = n; k >= 1; --k) ts.push_back(k * ratio + s_.steps_offset);
    } else {
      for (double v : np_arange(last, 0, -(static_cast<double>(N) / n)))
        ts.push_back(static_cast<int64_t>(np_round(v)) - 1);
    }
    std::vector<double> ts64(ts.begin(), ts.end());
    std::vector<float> sigmas;
    for (double v : np_interp(ts64, train_sigmas_)) sigmas.push_back(static_cast<float>(v));
    sigmas.push_back(s_.final_sigma_min ? train_sigmas_[0] : 0.0f);
    set_integer_timesteps(std::move(ts));
    coeffs_ = make_coeffs(sigmas);
    model_outputs_.clear();
  }

  at::Tensor scale_model_input(const at::Tensor& sample, size_t i) override {
    check_index(i);
    return sample;
  }

  at::Tensor step(const at::Tensor& model_output, size_t i, const at::Tensor& sample_in, const NoiseFn&) override {
    begin_step(i);
    const StepCoeffs& c = coeffs_[i];
    // convert_model_output: the data prediction x0
    at::Tensor x0;
    if (s_.prediction == Prediction::Epsilon) {
      const auto eps = s_.learned_variance ? model_output.slice(1, 0, 3) : model_output;
      x0 = (sample_in - eps * double(c.conv_sigma)) / double(c.conv_alpha);
    } else if (s_.prediction == Prediction::Sample) {
      x0 = model_output;
    } else {  // v_prediction
      x0 = sample_in * double(c.conv_alpha) - model_output * double(c.conv_sigma);
    }
    model_outputs_.push_back(x0);
    if (model_outputs_.size() > static_cast<size_t>(s_.solver_order)) model_outputs_.erase(model_outputs_.begin());
    const auto sample = sample_in.to(at::kFloat);
    const size_t k = model_outputs_.size();
    const at::Tensor& m0 = model_outputs_[k - 1];
    at::Tensor prev;
    if (c.order == 1) {
      prev = sample * double(c.c_sample) - m0 * double(c.c_d0);
    } else if (c.order == 2) {
      const at::Tensor& m1 = model_outputs_[k - 2];
      const auto d1 = (m0 - m1) * double(c.inv_r0);
      prev = sample * double(c.c_sample) - m0 * double(c.c_d0);
      prev = s_.heun ? prev + d1 * double(c.c_d1) : prev - d1 * double(c.c_d1);
    } else {
      const at::Tensor& m1 = model_outputs_[k - 2];
      const at::Tensor& m2 = model_outputs_[k - 3];
      const auto d1_0 = (m0 - m1) * double(c.inv_r0);
      const auto d1_1 = (m1 - m2) * double(c.inv_r1);
      const auto d1 = d1_0 + (d1_0 - d1_1) * double(c.r0_over_sum);
      const auto d2 = (d1_0 - d1_1) * double(c.inv_sum);
      prev = sample * double(c.c_sample) - m0 * double(c.c_d0) + d1 * double(c.c_d1) - d2 * double(c.c_d2);
    }
    ++next_step_;
    return prev.to(x0.scalar_type());
  }

  std::unique_ptr<Scheduler> clone_fresh() const override {
    return std::make_unique<DpmSolverMultistepScheduler>(s_, config_, source_);
  }

 private:
  std::vector<StepCoeffs> make_coeffs(const std::vector<float>& sigmas) const {
    const size_t n = timesteps_.size();
    std::vector<StepCoeffs> out(n);
    for (size_t i = 0; i < n; ++i) {
      StepCoeffs& c = out[i];
      const Point s0 = point(sigmas[i]);
      c.conv_alpha = s0.alpha;
      c.conv_sigma = s0.sigma;
      // which update diffusers' step() picks at step i
      const bool lower_final = i == n - 1 && (s_.euler_at_final || (s_.lower_order_final && n < 15) ||
                                              !s_.final_sigma_min);
      const bool lower_second = i + 2 == n && s_.lower_order_final && n < 15;
      const auto lower_order_nums = static_cast<int64_t>(std::min<size_t>(i, static_cast<size_t>(s_.solver_order)));
      if (s_.solver_order == 1 || lower_order_nums < 1 || lower_final) c.order = 1;
      else if (s_.solver_order == 2 || lower_order_nums < 2 || lower_second) c.order = 2;
      else c.order = 3;

      const Point t = point(sigmas[i + 1]);
      const float h = t.lambda - s0.lambda;
      const float em1 = torch_exp(-h) - 1.0f;  // exp(-h) - 1
      c.c_sample = t.sigma / s0.sigma;
      c.c_d0 = t.alpha * em1;
      if (c.order == 2) {
        const Point s1 = point(sigmas[i - 1]);
        const float r0 = (s0.lambda - s1.lambda) / h;
        c.inv_r0 = 1.0f / r0;
        c.c_d1 = s_.heun ? t.alpha * (em1 / h + 1.0f) : 0.5f * c.c_d0;
      } else if (c.order == 3) {
        const Point s1 = point(sigmas[i - 1]);
        const Point s2 = point(sigmas[i - 2]);
        const float r0 = (s0.lambda - s1.lambda) / h;
        const float r1 = (s1.lambda - s2.lambda) / h;
        c.inv_r0 = 1.0f / r0;
        c.inv_r1 = 1.0f / r1;
        c.r0_over_sum = r0 / (r0 + r1);
        c.inv_sum = 1.0f / (r0 + r1);
        c.c_d1 = t.alpha * (em1 / h + 1.0f);
        c.c_d2 = t.alpha * ((em1 + h) / sq(h) - 0.5f);
      }
    }
    return out;
  }

  DpmSettings s_;
  std::vector<float> train_sigmas_;
  int64_t last_timestep_ = 0;
  std::vector<StepCoeffs> coeffs_;
  std::vector<at::Tensor> model_outputs_;  // the last solver_order data predictions
};

}  // namespace

std::unique_ptr<Scheduler> make_dpm_solver_multistep(const nlohmann::json& base, const std::string& source) {
  ConfigReader cfg(base, "DPMSolverMultistepScheduler", source);
  DpmSettings s;
  s.train = TrainSchedule::read(cfg);
  s.solver_order = cfg.get<int64_t>("solver_order", 2);
  if (s.solver_order < 1 || s.solver_order > 3) cfg.fail("solver_order", "must be 1, 2 or 3");
  s.prediction = read_prediction(cfg, {"epsilon", "sample", "v_prediction"});
  if (cfg.get<bool>("thresholding", false)) cfg.fail("thresholding", "= true (dynamic thresholding) is not supported");
  cfg.get<double>("dynamic_thresholding_ratio", 0.995);
  cfg.get<double>("sample_max_value", 1.0);
  // diffusers maps "deis" to dpmsolver++ and logrho / bh1 / bh2 to midpoint
  if (cfg.choice("algorithm_type", "dpmsolver++", {"dpmsolver++", "deis"}) == "deis")
    cfg.set_resolved("algorithm_type", "dpmsolver++");
  const auto solver_type = cfg.choice("solver_type", "midpoint", {"midpoint", "heun", "logrho", "bh1", "bh2"});
  if (solver_type != "midpoint" && solver_type != "heun") cfg.set_resolved("solver_type", "midpoint");
  s.heun = solver_type == "heun";
  s.lower_order_final = cfg.get<bool>("lower_order_final", true);
  s.euler_at_final = cfg.get<bool>("euler_at_final", false);
  for (const char* key : {"use_karras_sigmas", "use_exponential_sigmas", "use_beta_sigmas", "use_lu_lambdas",
                          "use_flow_sigmas"})
    if (cfg.get<bool>(key, false)) cfg.fail(key, "= true is not supported");
  cfg.get<double>("flow_shift", 1.0);
  s.final_sigma_min = cfg.choice("final_sigmas_type", "zero", {"zero", "sigma_min"}) == "sigma_min";
  s.lambda_min_clipped = *cfg.optional_double("lambda_min_clipped", -INFINITY);
  auto variance_type = cfg.optional_string("variance_type");
  if (variance_type && *variance_type != "learned" && *variance_type != "learned_range")
    cfg.fail("variance_type",
             "has the unsupported value '" + *variance_type + "' (supported: null, learned, learned_range)");
  s.learned_variance = variance_type.has_value();
  s.spacing = read_spacing(cfg, "linspace");
  s.steps_offset = cfg.get<int64_t>("steps_offset", 0);
  s.train.rescale_betas_zero_snr = cfg.get<bool>("rescale_betas_zero_snr", false);
  if (cfg.get<bool>("use_dynamic_shifting", false)) cfg.fail("use_dynamic_shifting", "= true is not supported");
  cfg.choice("time_shift_type", "exponential", {"exponential"});
  return std::make_unique<DpmSolverMultistepScheduler>(std::move(s), cfg.resolved(), source);
}

}  // namespace diffbench::sched
