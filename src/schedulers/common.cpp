#include "schedulers/common.hpp"

#include <algorithm>
#include <cfenv>
#include <cmath>

namespace diffbench::sched {

// ---------------------------------------------------------------------------------------------
// Config reading

ConfigReader::ConfigReader(const nlohmann::json& base, std::string class_name, std::string source)
    : class_name_(std::move(class_name)), source_(std::move(source)) {
  if (!base.is_object()) throw InputError("a scheduler config must be a JSON object", source_);
  // diffusers' extract_init_dict: keys that were defaults in the saved config are not taken.
  std::set<std::string> used_defaults;
  if (auto it = base.find("_use_default_values"); it != base.end() && it->is_array()) {
    for (const auto& k : *it)
      if (k.is_string()) used_defaults.insert(k.get<std::string>());
  }
  base_ = nlohmann::json::object();
  for (const auto& [k, v] : base.items())
    if (k != "_use_default_values" && !used_defaults.count(k)) base_[k] = v;
}

void ConfigReader::fail(const std::string& key, const std::string& message) const {
  throw InputError(class_name_ + " config key '" + key + "' " + message, source_);
}

std::string ConfigReader::choice(const std::string& key, const std::string& fallback,
                                 const std::vector<std::string>& allowed) {
  auto value = get<std::string>(key, fallback);
  if (std::find(allowed.begin(), allowed.end(), value) == allowed.end()) {
    std::string list;
    for (const auto& a : allowed) list += (list.empty() ? "" : ", ") + a;
    fail(key, "has the unsupported value '" + value + "' (supported: " + list + ")");
  }
  return value;
}

std::optional<double> ConfigReader::optional_double(const std::string& key, std::optional<double> fallback) {
  known_.insert(key);
  auto it = base_.find(key);
  if (it == base_.end()) defaulted_.push_back(key);
  if (it == base_.end() || it->is_null()) {
    resolved_[key] = fallback ? nlohmann::json(*fallback) : nlohmann::json(nullptr);
    return fallback;
  }
  if (it->is_string()) {  // Python's json writes -Infinity / Infinity / NaN as bare words
    auto s = it->get<std::string>();
    double v = s == "-Infinity" || s == "-inf" ? -INFINITY : s == "Infinity" || s == "inf" ? INFINITY : NAN;
    if (std::isnan(v)) fail(key, "has the wrong type (string)");
    resolved_[key] = v;
    return v;
  }
  if (!it->is_number()) fail(key, "has the wrong type (" + std::string(it->type_name()) + ")");
  resolved_[key] = it->get<double>();
  return it->get<double>();
}

std::optional<std::string> ConfigReader::optional_string(const std::string& key) {
  known_.insert(key);
  auto it = base_.find(key);
  if (it == base_.end()) defaulted_.push_back(key);
  if (it == base_.end() || it->is_null()) {
    resolved_[key] = nullptr;
    return std::nullopt;
  }
  if (!it->is_string()) fail(key, "has the wrong type (" + std::string(it->type_name()) + ")");
  resolved_[key] = *it;
  return it->get<std::string>();
}

std::optional<std::vector<double>> ConfigReader::optional_double_list(const std::string& key) {
  known_.insert(key);
  auto it = base_.find(key);
  if (it == base_.end()) defaulted_.push_back(key);
  if (it == base_.end() || it->is_null()) {
    resolved_[key] = nullptr;
    return std::nullopt;
  }
  std::vector<double> values;
  try {
    values = it->get<std::vector<double>>();
  } catch (const nlohmann::json::exception&) {
    fail(key, "must be a list of numbers");
  }
  resolved_[key] = values;
  return values;
}

nlohmann::json ConfigReader::resolved() const {
  nlohmann::json out = resolved_;
  // diffusers registers the base config's other keys too ("hidden" keys of compatible classes).
  for (const auto& [k, v] : base_.items())
    if (!known_.count(k) && !out.contains(k)) out[k] = v;
  out["_class_name"] = class_name_;
  if (!defaulted_.empty()) out["_use_default_values"] = defaulted_;
  return out;
}

// ---------------------------------------------------------------------------------------------
// Training schedule

TrainSchedule TrainSchedule::read(ConfigReader& cfg) {
  TrainSchedule s;
  s.num_train_timesteps = cfg.get<int64_t>("num_train_timesteps", 1000);
  s.beta_start = cfg.get<double>("beta_start", 0.0001);
  s.beta_end = cfg.get<double>("beta_end", 0.02);
  s.beta_schedule = cfg.get<std::string>("beta_schedule", "linear");
  s.trained_betas = cfg.optional_double_list("trained_betas");
  if (s.num_train_timesteps < 2 || s.num_train_timesteps > 100000)
    cfg.fail("num_train_timesteps", "= " + std::to_string(s.num_train_timesteps) + " is out of range [2, 100000]");
  for (const char* key : {"beta_start", "beta_end"}) {
    const double b = std::string(key) == "beta_start" ? s.beta_start : s.beta_end;
    if (!(b >= 0.0 && b < 1.0)) cfg.fail(key, "= " + std::to_string(b) + " is out of range [0, 1)");
  }
  if (s.trained_betas) {
    if (static_cast<int64_t>(s.trained_betas->size()) != s.num_train_timesteps)
      cfg.fail("trained_betas", "must have num_train_timesteps (" + std::to_string(s.num_train_timesteps) +
                                    ") entries, has " + std::to_string(s.trained_betas->size()));
  } else if (s.beta_schedule != "linear" && s.beta_schedule != "scaled_linear" &&
             s.beta_schedule != "squaredcos_cap_v2") {
    cfg.fail("beta_schedule", "has the unsupported value '" + s.beta_schedule +
                                  "' (supported: linear, scaled_linear, squaredcos_cap_v2)");
  }
  return s;
}

namespace {

// diffusers' betas_for_alpha_bar with the cosine transform, in Python floats (float64).
at::Tensor betas_for_alpha_bar(int64_t n, double max_beta = 0.999) {
  auto alpha_bar = [](double t) {
    double c = std::cos((t + 0.008) / 1.008 * M_PI / 2);
    return c * c;
  };
  std::vector<float> betas;
  for (int64_t i = 0; i < n; ++i) {
    double t1 = static_cast<double>(i) / static_cast<double>(n);
    double t2 = static_cast<double>(i + 1) / static_cast<double>(n);
    betas.push_back(static_cast<float>(std::min(1 - alpha_bar(t2) / alpha_bar(t1), max_beta)));
  }
  return at::tensor(betas, at::kFloat);
}

// diffusers' rescale_zero_terminal_snr (arXiv:2305.08891, Algorithm 1), same torch ops.
at::Tensor rescale_zero_terminal_snr(const at::Tensor& betas) {
  auto alphas = 1.0 - betas;
  auto alphas_bar_sqrt = at::cumprod(alphas, 0).sqrt();
  auto s0 = alphas_bar_sqrt[0].clone();
  auto sT = alphas_bar_sqrt[-1].clone();
  alphas_bar_sqrt -= sT;
  alphas_bar_sqrt *= s0 / (s0 - sT);
  auto alphas_bar = alphas_bar_sqrt.pow(2);
  auto n = alphas_bar.size(0);
  alphas = at::cat({alphas_bar.slice(0, 0, 1), alphas_bar.slice(0, 1, n) / alphas_bar.slice(0, 0, n - 1)});
  return 1 - alphas;
}

}  // namespace

at::Tensor TrainSchedule::betas() const {
  at::Tensor b;
  if (trained_betas) {
    std::vector<float> f(trained_betas->begin(), trained_betas->end());
    b = at::tensor(f, at::kFloat);
  } else if (beta_schedule == "linear") {
    b = at::linspace(beta_start, beta_end, num_train_timesteps, at::kFloat);
  } else if (beta_schedule == "scaled_linear") {
    b = at::linspace(std::pow(beta_start, 0.5), std::pow(beta_end, 0.5), num_train_timesteps, at::kFloat).pow(2);
  } else {
    b = betas_for_alpha_bar(num_train_timesteps);
  }
  if (rescale_betas_zero_snr) b = rescale_zero_terminal_snr(b);
  return b;
}

at::Tensor TrainSchedule::alphas_cumprod() const { return at::cumprod(1.0 - betas(), 0); }

Prediction read_prediction(ConfigReader& cfg, const std::vector<std::string>& allowed) {
  auto p = cfg.choice("prediction_type", "epsilon", allowed);
  return p == "epsilon" ? Prediction::Epsilon : p == "v_prediction" ? Prediction::V : Prediction::Sample;
}

Spacing read_spacing(ConfigReader& cfg, const std::string& fallback) {
  auto s = cfg.choice("timestep_spacing", fallback, {"linspace", "leading", "trailing"});
  return s == "linspace" ? Spacing::Linspace : s == "leading" ? Spacing::Leading : Spacing::Trailing;
}

std::vector<float> euler_timesteps(Spacing spacing, int64_t N, int n, int64_t steps_offset) {
  std::vector<float> ts;
  if (spacing == Spacing::Linspace) {
    auto v = np_linspace(0, static_cast<double>(N - 1), n);
    for (auto it = v.rbegin(); it != v.rend(); ++it) ts.push_back(static_cast<float>(*it));
  } else if (spacing == Spacing::Leading) {
    const int64_t ratio = N / n;
    for (int64_t k = n - 1; k >= 0; --k)
      ts.push_back(static_cast<float>(k * ratio) + static_cast<float>(steps_offset));
  } else {
    for (double v : np_arange(static_cast<double>(N), 0, -(static_cast<double>(N) / n)))
      ts.push_back(static_cast<float>(np_round(v)) - 1.0f);
  }
  return ts;
}

EulerCoeffs euler_coeffs(float sigma, float sigma_next, bool ancestral) {
  EulerCoeffs c;
  c.sigma = sigma;
  c.in_scale = torch_sqrt(sq(sigma) + 1);
  c.v_out = -sigma / c.in_scale;
  c.v_div = sq(sigma) + 1;
  if (!ancestral) {
    c.dt = sigma_next - sigma;
  } else {
    const float from = sigma, to = sigma_next;
    c.sigma_up = torch_sqrt(sq(to) * (sq(from) - sq(to)) / sq(from));
    const float sigma_down = torch_sqrt(sq(to) - sq(c.sigma_up));
    c.dt = sigma_down - sigma;
  }
  return c;
}

float euler_init_noise_sigma(const std::vector<float>& sigmas, Spacing spacing) {
  const float max_sigma = *std::max_element(sigmas.begin(), sigmas.end());
  return spacing == Spacing::Leading ? torch_sqrt(sq(max_sigma) + 1) : max_sigma;
}

EulerTrainSigmas euler_train_sigmas(const TrainSchedule& train, Spacing spacing) {
  auto ac = train.alphas_cumprod();
  if (train.rescale_betas_zero_snr) ac[-1] = std::pow(2.0, -24);
  EulerTrainSigmas out;
  out.sigmas = to_floats(((1 - ac) / ac).pow(0.5));
  std::vector<float> descending(out.sigmas.rbegin(), out.sigmas.rend());
  descending.push_back(0.0f);
  out.init_noise_sigma = euler_init_noise_sigma(descending, spacing);
  return out;
}

// ---------------------------------------------------------------------------------------------
// numpy

std::vector<double> np_linspace(double start, double stop, int64_t num) {
  std::vector<double> y(static_cast<size_t>(std::max<int64_t>(num, 0)));
  if (num <= 0) return y;
  const int64_t div = num - 1;
  const double delta = stop - start;
  const double step = div > 0 ? delta / static_cast<double>(div) : NAN;
  for (int64_t k = 0; k < num; ++k) {
    double v = static_cast<double>(k);
    if (div > 0 && step == 0) {
      v = v / static_cast<double>(div) * delta;
    } else if (div > 0) {
      v = v * step;
    } else {
      v = v * delta;
    }
    y[static_cast<size_t>(k)] = v + start;
  }
  if (num > 1) y.back() = stop;
  return y;
}

std::vector<double> np_arange(double start, double stop, double step) {
  double len = std::ceil((stop - start) / step);
  std::vector<double> y;
  if (!(len > 0)) return y;
  const auto n = static_cast<size_t>(len);
  y.resize(n);
  y[0] = start;
  if (n > 1) y[1] = start + step;
  const double delta = y.size() > 1 ? y[1] - start : 0.0;
  for (size_t i = 2; i < n; ++i) y[i] = start + static_cast<double>(i) * delta;
  return y;
}

double np_round(double x) {
  // nearbyint rounds half to even in the default rounding mode, as numpy does.
  return std::nearbyint(x);
}

std::vector<double> np_interp(const std::vector<double>& x, const std::vector<float>& fp) {
  const auto n = static_cast<int64_t>(fp.size());
  std::vector<double> out;
  out.reserve(x.size());
  for (double xv : x) {
    if (std::isnan(xv)) {
      out.push_back(xv);
      continue;
    }
    if (xv < 0) {
      out.push_back(fp.front());
      continue;
    }
    if (xv >= static_cast<double>(n - 1)) {  // numpy: j == len-1 gives fp[-1], beyond: right value
      out.push_back(fp.back());
      continue;
    }
    auto j = static_cast<int64_t>(std::floor(xv));
    const double xj = static_cast<double>(j);
    if (xj == xv) {
      out.push_back(fp[static_cast<size_t>(j)]);
      continue;
    }
    const double y0 = fp[static_cast<size_t>(j)];
    const double y1 = fp[static_cast<size_t>(j + 1)];
    const double slope = (y1 - y0) / ((xj + 1) - xj);
    double r = slope * (xv - xj) + y0;
    if (std::isnan(r)) {
      r = slope * (xv - (xj + 1)) + y1;
      if (std::isnan(r) && y0 == y1) r = y0;
    }
    out.push_back(r);
  }
  return out;
}

// ---------------------------------------------------------------------------------------------
// float32 helpers

std::vector<float> to_floats(const at::Tensor& t) {
  auto c = t.to(at::kCPU, at::kFloat).contiguous();
  const float* p = c.data_ptr<float>();
  return std::vector<float>(p, p + c.numel());
}

float torch_sqrt(float x) { return at::pow(at::scalar_tensor(x, at::kFloat), 0.5).item<float>(); }
float torch_log(float x) { return at::log(at::scalar_tensor(x, at::kFloat)).item<float>(); }
float torch_exp(float x) { return at::exp(at::scalar_tensor(x, at::kFloat)).item<float>(); }

float py_at(const std::vector<float>& v, int64_t idx, const char* what) {
  const auto n = static_cast<int64_t>(v.size());
  const int64_t j = idx < 0 ? idx + n : idx;
  if (j < 0 || j >= n)
    throw UsageError("timestep " + std::to_string(idx) + " is outside the " + std::to_string(n) +
                         " training timesteps (too many inference steps for this spacing and steps_offset)",
                     what);
  return v[static_cast<size_t>(j)];
}

// ---------------------------------------------------------------------------------------------
// SchedulerBase

void SchedulerBase::check_num_steps(int n, int64_t num_train_timesteps) const {
  if (n < 1 || n > num_train_timesteps)
    throw UsageError("num_inference_steps must be in [1, " + std::to_string(num_train_timesteps) + "], got " +
                         std::to_string(n),
                     name() + " scheduler");
}

void SchedulerBase::check_index(size_t i) const {
  if (!ready_) throw UsageError("set_timesteps() must be called before a run", name() + " scheduler");
  if (i >= timesteps_.size())
    throw UsageError("step index " + std::to_string(i) + " out of range (" + std::to_string(timesteps_.size()) +
                         " timesteps)",
                     name() + " scheduler");
}

void SchedulerBase::begin_step(size_t i) const {
  check_index(i);
  if (i != next_step_)
    throw UsageError("steps must be taken in order: expected step " + std::to_string(next_step_) + ", got " +
                         std::to_string(i) + " (call set_timesteps() to restart)",
                     name() + " scheduler");
}

void SchedulerBase::set_integer_timesteps(std::vector<int64_t> ts) {
  timesteps_ = std::move(ts);
  model_timesteps_.assign(timesteps_.begin(), timesteps_.end());
  ready_ = true;
  next_step_ = 0;
}

}  // namespace diffbench::sched
