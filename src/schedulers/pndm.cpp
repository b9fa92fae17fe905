// diffusers' PNDMScheduler: pseudo numerical methods (PNDM, arXiv:2202.09778). With
// skip_prk_steps it is PLMS, a 4th-order linear multistep method started by an improved Euler
// step that repeats the second timestep (n steps = n + 1 UNet calls); without it the first three
// steps are Runge-Kutta steps of 4 UNet calls each.
#include <cmath>
#include <utility>

#include "schedulers/common.hpp"

namespace diffbench::sched {
namespace {

struct PndmSettings {
  TrainSchedule train;
  bool skip_prk_steps = false;
  bool set_alpha_to_one = false;
  bool v_prediction = false;
  Spacing spacing = Spacing::Leading;
  int64_t steps_offset = 0;
};

// Formula (9) of the PNDM paper for one (timestep, prev_timestep) pair, in float32 as diffusers'
// 0-d alphas_cumprod tensors give it:
//   x_prev = sample_coeff * x - (a_prev - a_t) * eps / denom
struct PrevSampleCoeffs {
  float sample_coeff = 0, diff = 0, denom = 1;
  float sqrt_a = 0, sqrt_b = 0;  // for v_prediction: eps = sqrt(a_t) * v + sqrt(1 - a_t) * x
};

class PndmScheduler final : public SchedulerBase {
 public:
  PndmScheduler(PndmSettings s, nlohmann::json config, std::string source)
      : SchedulerBase(std::move(config), std::move(source)), s_(std::move(s)) {
    alphas_cumprod_ = to_floats(s_.train.alphas_cumprod());
    final_alpha_cumprod_ = s_.set_alpha_to_one ? 1.0f : alphas_cumprod_[0];
  }

  std::string name() const override { return "pndm"; }
  double init_noise_sigma() const override { return 1.0; }

  void set_timesteps(int n) override {
    const int64_t N = s_.train.num_train_timesteps;
    check_num_steps(n, N);
    num_inference_steps_ = n;
    // _timesteps, ascending
    std::vector<int64_t> base;
    if (s_.spacing == Spacing::Linspace) {
      for (double v : np_linspace(0, static_cast<double>(N - 1), n)) base.push_back(static_cast<int64_t>(np_round(v)));
    } else if (s_.spacing == Spacing::Leading) {
      const int64_t ratio = N / n;
      for (int64_t k = 0; k < n; ++k) base.push_back(k * ratio + s_.steps_offset);
    } else {
      auto desc = np_arange(static_cast<double>(N), 0, -(static_cast<double>(N) / n));
      for (auto it = desc.rbegin(); it != desc.rend(); ++it) base.push_back(static_cast<int64_t>(np_round(*it)) - 1);
    }
    const auto len = static_cast<int64_t>(base.size());
    auto slice = [&](int64_t from, int64_t to) {  // Python base[from:to] for small negative bounds
      from = std::clamp<int64_t>(from < 0 ? from + len : from, 0, len);
      to = std::clamp<int64_t>(to < 0 ? to + len : to, 0, len);
      return from < to ? std::vector<int64_t>(base.begin() + from, base.begin() + to) : std::vector<int64_t>{};
    };
    prk_timesteps_.clear();
    std::vector<int64_t> plms;
    if (s_.skip_prk_steps) {
      // concat(_t[:-1], _t[-2:-1], _t[-1:])[::-1]
      plms = slice(0, -1);
      for (auto v : slice(-2, -1)) plms.push_back(v);
      for (auto v : slice(-1, len)) plms.push_back(v);
      std::reverse(plms.begin(), plms.end());
    } else {
      // repeat(_t[-4:], 2) + tile([0, N // n // 2], 4), then [:-1].repeat(2)[1:-1][::-1]
      std::vector<int64_t> prk;
      const int64_t half = N / n / 2;
      auto last4 = slice(-4, len);
      for (size_t k = 0; k < 2 * last4.size(); ++k) prk.push_back(last4[k / 2] + (k % 2 ? half : 0));
      if (!prk.empty()) prk.pop_back();
      std::vector<int64_t> rep;
      for (auto v : prk) rep.insert(rep.end(), {v, v});
      if (rep.size() >= 2) rep = std::vector<int64_t>(rep.begin() + 1, rep.end() - 1);
      else rep.clear();
      prk_timesteps_.assign(rep.rbegin(), rep.rend());
      plms = slice(0, -3);
      std::reverse(plms.begin(), plms.end());
    }
    std::vector<int64_t> all = prk_timesteps_;
    all.insert(all.end(), plms.begin(), plms.end());
    set_integer_timesteps(std::move(all));
    coeffs_ = make_coeffs();
    ets_.clear();
    cur_model_output_ = at::Tensor();
    cur_sample_ = at::Tensor();
    counter_ = 0;
  }

  at::Tensor scale_model_input(const at::Tensor& sample, size_t i) override {
    check_index(i);
    return sample;
  }

  at::Tensor step(const at::Tensor& model_output, size_t i, const at::Tensor& sample, const NoiseFn&) override {
    begin_step(i);
    at::Tensor prev = counter_ < static_cast<int64_t>(prk_timesteps_.size()) && !s_.skip_prk_steps
                          ? step_prk(model_output, sample)
                          : step_plms(model_output, sample);
    ++next_step_;
    return prev;
  }

  std::unique_ptr<Scheduler> clone_fresh() const override {
    return std::make_unique<PndmScheduler>(s_, config_, source_);
  }

 private:
  // diffusers' (timestep, prev_timestep) for call i (= its step counter).
  std::pair<int64_t, int64_t> timestep_pair(size_t i) const {
    const int64_t N = s_.train.num_train_timesteps;
    const int64_t t = timesteps_[i];
    if (i < prk_timesteps_.size() && !s_.skip_prk_steps) {  // Runge-Kutta
      const int64_t diff_to_prev = i % 2 ? 0 : N / num_inference_steps_ / 2;
      return {prk_timesteps_[i / 4 * 4], t - diff_to_prev};
    }
    const int64_t ratio = N / num_inference_steps_;
    if (i == 1) return {t + ratio, t};  // PLMS's second call repeats the timestep
    return {t, t - ratio};
  }

  std::vector<PrevSampleCoeffs> make_coeffs() const {
    std::vector<PrevSampleCoeffs> out;
    for (size_t i = 0; i < timesteps_.size(); ++i) {
      const auto [timestep, prev_timestep] = timestep_pair(i);
      const float a_t = py_at(alphas_cumprod_, timestep, "pndm alphas_cumprod");
      const float a_prev = prev_timestep >= 0 ? py_at(alphas_cumprod_, prev_timestep, "pndm alphas_cumprod")
                                              : final_alpha_cumprod_;
      const float b_t = 1 - a_t;
      const float b_prev = 1 - a_prev;
      PrevSampleCoeffs c;
      c.sqrt_a = torch_sqrt(a_t);
      c.sqrt_b = torch_sqrt(b_t);
      c.sample_coeff = torch_sqrt(a_prev / a_t);
      c.diff = a_prev - a_t;
      c.denom = a_t * torch_sqrt(b_prev) + torch_sqrt(a_t * b_t * a_prev);
      out.push_back(c);
    }
    return out;
  }

  at::Tensor step_prk(const at::Tensor& model_output, const at::Tensor& sample) {
    at::Tensor eps = model_output;
    switch (counter_ % 4) {
      case 0:
        cur_model_output_ = model_output * (1.0 / 6);  // 0 + 1/6 * model_output
        ets_.push_back(model_output);
        cur_sample_ = sample;
        break;
      case 1:
      case 2:
        cur_model_output_ = cur_model_output_ + model_output * (1.0 / 3);
        break;
      default:
        eps = cur_model_output_ + model_output * (1.0 / 6);
        cur_model_output_ = at::Tensor();
    }
    const at::Tensor& cur = cur_sample_.defined() ? cur_sample_ : sample;
    auto prev = prev_sample(cur, eps);
    ++counter_;
    return prev;
  }

  at::Tensor step_plms(const at::Tensor& model_output, const at::Tensor& sample_in) {
    if (!s_.skip_prk_steps && ets_.size() < 3)
      throw RuntimeFailure("PLMS steps need 3 Runge-Kutta steps first", "pndm scheduler");
    if (counter_ != 1) {
      if (ets_.size() > 3) ets_.erase(ets_.begin(), ets_.end() - 3);
      ets_.push_back(model_output);
    }
    at::Tensor sample = sample_in;
    at::Tensor eps;
    const size_t n = ets_.size();
    if (n == 1 && counter_ == 0) {
      eps = model_output;
      cur_sample_ = sample;
    } else if (n == 1 && counter_ == 1) {
      eps = (model_output + ets_[0]) / 2;
      sample = cur_sample_;
      cur_sample_ = at::Tensor();
    } else if (n == 2) {
      eps = (3 * ets_[1] - ets_[0]) / 2;
    } else if (n == 3) {
      eps = (23 * ets_[2] - 16 * ets_[1] + 5 * ets_[0]) / 12;
    } else {
      eps = (1.0 / 24) * (55 * ets_[3] - 59 * ets_[2] + 37 * ets_[1] - 9 * ets_[0]);
    }
    auto prev = prev_sample(sample, eps);
    ++counter_;
    return prev;
  }

  // PNDM paper formula (9) with the coefficients of the current call.
  at::Tensor prev_sample(const at::Tensor& sample, at::Tensor eps) const {
    const PrevSampleCoeffs& c = coeffs_[static_cast<size_t>(counter_)];
    if (s_.v_prediction) eps = eps * double(c.sqrt_a) + sample * double(c.sqrt_b);
    return sample * double(c.sample_coeff) - eps * double(c.diff) / double(c.denom);
  }

  PndmSettings s_;
  std::vector<float> alphas_cumprod_;
  float final_alpha_cumprod_ = 1.0f;
  int64_t num_inference_steps_ = 0;
  std::vector<int64_t> prk_timesteps_;
  std::vector<PrevSampleCoeffs> coeffs_;  // per call
  std::vector<at::Tensor> ets_;
  at::Tensor cur_model_output_;
  at::Tensor cur_sample_;
  int64_t counter_ = 0;
};

}  // namespace

std::unique_ptr<Scheduler> make_pndm(const nlohmann::json& base, const std::string& source) {
  ConfigReader cfg(base, "PNDMScheduler", source);
  PndmSettings s;
  s.train = TrainSchedule::read(cfg);
  s.skip_prk_steps = cfg.get<bool>("skip_prk_steps", false);
  s.set_alpha_to_one = cfg.get<bool>("set_alpha_to_one", false);
  s.v_prediction = read_prediction(cfg, {"epsilon", "v_prediction"}) == Prediction::V;
  s.spacing = read_spacing(cfg, "leading");
  s.steps_offset = cfg.get<int64_t>("steps_offset", 0);
  return std::make_unique<PndmScheduler>(std::move(s), cfg.resolved(), source);
}

}  // namespace diffbench::sched
