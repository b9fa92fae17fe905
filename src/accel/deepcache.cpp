#include "accel/deepcache.hpp"

#include <cmath>
#include <complex>

#include "diffbench/accel/builtins.hpp"
#include "diffbench/error.hpp"

namespace diffbench {

namespace {

using C = std::complex<double>;

C cmul(const C& a, const C& b) {
  return C(a.real() * b.real() - a.imag() * b.imag(), a.real() * b.imag() + a.imag() * b.real());
}

// numpy's complex power with a real exponent: integer exponents below 100 by repeated
// multiplication (x**2 as np.square), others through C99 cpow.
C numpy_cpow(const C& a, double p) {
  const auto n = static_cast<long>(p);
  if (static_cast<double>(n) == p && n > -100 && n < 100 && n != 0 && (a.real() != 0 || a.imag() != 0)) {
    if (n == 1) return a;
    if (n == 2) return cmul(a, a);
    if (n == 3) return cmul(a, cmul(a, a));
    C aa(1.0, 0.0), x = a;
    long m = n < 0 ? -n : n;
    for (long mask = 1;; mask <<= 1) {
      if (m & mask) aa = cmul(aa, x);
      if (m < (mask << 1)) break;
      x = cmul(x, x);
    }
    return n < 0 ? C(1.0, 0.0) / aa : aa;
  }
  return std::pow(a, C(p, 0.0));  // libstdc++: __builtin_cpow
}

double numpy_pow(double x, double p) { return p == 2.0 ? x * x : std::pow(x, p); }

}  // namespace

std::vector<int> deepcache_nonuniform_steps(int steps, int interval, int center, double pow) {
  if (interval <= 1) {
    std::vector<int> all(static_cast<size_t>(steps));
    for (int i = 0; i < steps; ++i) all[static_cast<size_t>(i)] = i;
    return all;
  }
  if (center < 0 || center >= steps)
    throw InputError("deepcache center = " + std::to_string(center) + " must lie in [0, " + std::to_string(steps) +
                         ") for " + std::to_string(steps) + " steps",
                     "deepcache.center");
  const int n_samples = steps / interval + (steps % interval != 0 ? 1 : 0);
  while (pow > 1) {
    // x = linspace((-center)**(1/pow), (steps-center)**(1/pow), n_samples+1), as numpy computes it:
    // Python raises a negative number to a fractional power through complex numbers.
    const double e = 1.0 / pow;
    std::vector<double> values;  // real parts of x**pow
    const double stop = std::pow(static_cast<double>(steps - center), e);
    if (center == 0) {  // real arithmetic throughout
      const double step = stop / n_samples;
      for (int k = 0; k <= n_samples; ++k) {
        const double x = k == n_samples ? stop : k * step;
        values.push_back(numpy_pow(x, pow));
      }
    } else {
      // CPython's complex power: |a|**e at angle atan2(0, -center)·e.
      const double len = std::pow(std::hypot(static_cast<double>(-center), 0.0), e);
      const double phase = std::atan2(0.0, static_cast<double>(-center)) * e;
      const C start(len * std::cos(phase), len * std::sin(phase));
      const C delta = C(stop, 0.0) - start;
      const double scl = 1.0 / static_cast<double>(n_samples);  // numpy's complex division by n
      const C step(delta.real() * scl, delta.imag() * scl);
      for (int k = 0; k <= n_samples; ++k) {
        const C x = k == n_samples ? C(stop, 0.0) : C(k * step.real() + start.real(), k * step.imag() + start.imag());
        values.push_back(numpy_cpow(x, pow).real());
      }
    }
    // indices = [0] + [v + center for v in np.unique(np.int32(values))[1:-1]]
    std::vector<int> ints;
    for (double v : values) ints.push_back(static_cast<int>(std::trunc(v)));
    std::sort(ints.begin(), ints.end());
    ints.erase(std::unique(ints.begin(), ints.end()), ints.end());
    std::vector<int> indices{0};
    for (size_t i = 1; i + 1 < ints.size(); ++i) indices.push_back(ints[i] + center);
    if (static_cast<int>(indices.size()) == n_samples) {
      std::sort(indices.begin(), indices.end());
      return indices;
    }
    pow -= 0.02;
  }
  throw InputError("cannot find a suitable pow for the non-uniform schedule (" + std::to_string(steps) + " steps, interval " +
                       std::to_string(interval) + ", center " + std::to_string(center) +
                       "); lower center or cache_interval, or raise pow",
                   "deepcache.pow");
}

DeepCacheMethod::DeepCacheMethod(DeepCacheOptions options) : o_(std::move(options)) {
  cache_layer_ = static_cast<int>(o_.cache_branch_id % 3);
  cache_block_ = static_cast<int>(o_.cache_branch_id / 3);
}

nlohmann::json DeepCacheMethod::params() const {
  nlohmann::json p = {{"cache_interval", o_.cache_interval},
                      {"cache_branch_id", o_.cache_branch_id},
                      {"skip_mode", o_.skip_mode}};
  if (o_.skip_mode == "non-uniform") {
    p["center"] = o_.center;
    p["pow"] = o_.pow;
  }
  return p;
}

nlohmann::json DeepCacheMethod::stats() const {
  return {{"unet_calls", calls_},
          {"full_calls", full_calls_},
          {"partial_calls", calls_ - full_calls_},
          {"skipped_modules", (calls_ - full_calls_) * static_cast<int64_t>(read_by_partial_.size())}};
}

void DeepCacheMethod::reset_stats() { calls_ = full_calls_ = 0; }

void DeepCacheMethod::restart() {
  cache_.clear();
  start_.reset();
  restart_ = true;
}

void DeepCacheMethod::begin_generation(const GenerationInfo& info) {
  // Unlike DeepCacheSDHelper, nothing survives from the previous generation.
  restart();
  last_batch_ = 0;
  timesteps_ = info.timesteps;
  full_steps_.clear();
  if (o_.skip_mode == "non-uniform")
    full_steps_ = deepcache_nonuniform_steps(info.steps, static_cast<int>(o_.cache_interval),
                                             static_cast<int>(o_.center), o_.pow);
  full_ = true;
}

void DeepCacheMethod::before_step(const StepInfo& step) {
  // A method asked for a fresh step (T-GATE at its gate and when guidance is dropped): as
  // DeepCacheSDHelper.disable(); enable() there, forget the cache and compute this call in full;
  // the uniform schedule then counts from this call.
  if (step.restart) restart();
}

void DeepCacheMethod::begin_call(const UNetCallInfo& info) {
  if (last_batch_ != 0 && info.batch != last_batch_) restart();  // cached tensors no longer fit
  last_batch_ = info.batch;
  last_h_ = info.latent_h;
  last_w_ = info.latent_w;
  if (o_.skip_mode == "non-uniform") {
    // DeepCache's SD pipeline: loop index i in the schedule.
    full_ = std::binary_search(full_steps_.begin(), full_steps_.end(), static_cast<int>(info.step));
  } else {
    // DeepCacheSDHelper: cur_timestep = list(scheduler.timesteps).index(t), the FIRST index of
    // this timestep (PNDM repeats one, so its third call counts as step 1).
    auto it = std::find(timesteps_.begin(), timesteps_.end(), info.timestep);
    const size_t cur = it != timesteps_.end() ? static_cast<size_t>(it - timesteps_.begin()) : info.step;
    if (!start_) start_ = cur;
    const auto diff = static_cast<int64_t>(cur) - static_cast<int64_t>(*start_);
    full_ = diff % o_.cache_interval == 0;
  }
  if (restart_) full_ = true;
  restart_ = false;
  ++calls_;
  if (full_) ++full_calls_;
}

bool DeepCacheMethod::deeper_than_branch(const ModuleId& id) const {
  // The helper's numbering: up blocks and their layers counted from the bottom, the downsampler
  // as layer len(resnets), the upsampler as layer 0; the mid block always deeper.
  if (id.section == UNetSection::Mid) return id.kind == ModuleKind::Block;  // its layers are not wrapped
  const bool down = id.section == UNetSection::Down;
  const int block = down ? id.block : id.num_blocks - 1 - id.block;
  int layer = 0;
  switch (id.kind) {
    case ModuleKind::Block: layer = 0; break;
    case ModuleKind::Downsampler: layer = id.num_layers; break;
    case ModuleKind::Upsampler: layer = 0; break;
    case ModuleKind::Resnet:
    case ModuleKind::Attention: layer = down ? id.layer : id.num_layers - 1 - id.layer; break;
  }
  if (block > cache_block_) return true;
  if (block < cache_block_) return false;
  return down ? layer >= cache_layer_ : layer > cache_layer_;
}

std::optional<ModuleOutput> DeepCacheMethod::before_module(const ModuleId& id) {
  if (full_ || !deeper_than_branch(id)) return std::nullopt;
  auto it = cache_.find(id.name);
  if (it == cache_.end()) {
    // A full call replayed from a graph wrote the fixed buffer and called no hook.
    auto b = buffers_.find({id.name, last_batch_, last_h_, last_w_});
    if (b == buffers_.end())
      throw RuntimeFailure("deepcache: no cached output for " + id.name + " (the generation began with a partial step)");
    return b->second;
  }
  read_by_partial_.insert(id.name);
  // From now on this output lives in a fixed buffer (copied once here, in place by full calls).
  return keep(id.name, it->second);
}

void DeepCacheMethod::after_module(const ModuleId& id, const ModuleOutput& output) {
  // Each module keeps its output from its last computed call; only those a partial call can skip.
  if (!deeper_than_branch(id)) return;
  if (read_by_partial_.count(id.name))
    keep(id.name, output);
  else
    cache_[id.name] = output;
}

const ModuleOutput& DeepCacheMethod::keep(const std::string& name, const ModuleOutput& output) {
  auto [it, fresh] = buffers_.try_emplace({name, last_batch_, last_h_, last_w_});
  ModuleOutput& buf = it->second;
  const bool fits = !fresh && buf.hidden.sizes() == output.hidden.sizes() && buf.residuals.size() == output.residuals.size();
  if (!fits) {
    buf.hidden = at::empty_like(output.hidden);
    buf.residuals.clear();
    for (const auto& r : output.residuals) buf.residuals.push_back(at::empty_like(r));
  }
  if (!buf.hidden.is_same(output.hidden)) {
    buf.hidden.copy_(output.hidden);
    for (size_t i = 0; i < buf.residuals.size(); ++i) buf.residuals[i].copy_(output.residuals[i]);
  }
  cache_[name] = buf;
  return buf;
}

std::optional<std::string> DeepCacheMethod::graph_variant() {
  if (read_by_partial_.empty()) return std::nullopt;  // not yet known what partial calls read
  if (full_) return std::string("deepcache:full");
  for (const auto& name : read_by_partial_)
    if (!buffers_.count({name, last_batch_, last_h_, last_w_})) return std::nullopt;
  return std::string("deepcache:partial");
}

void register_deepcache(MethodRegistry& registry) {
  MethodInfo info;
  info.name = "deepcache";
  info.description =
      "DeepCache: compute the UNet fully every cache_interval steps and reuse the deep features "
      "(blocks below the cache branch) in between, so only the shallow path runs";
  const auto p = make_param;
  using T = ParamSpec::Type;
  info.params.push_back(p("cache_interval", T::Int, 3, 1, std::nullopt,
                          "a full UNet call every N steps (1 = every step, no caching)"));
  info.params.push_back(p("cache_branch_id", T::Int, 0, 0, 11,
                          "the cached branch: block = id / 3, layer = id % 3 (0 is the shallowest, fastest)"));
  ParamSpec mode = p("skip_mode", T::String, "uniform", std::nullopt, std::nullopt,
                     "uniform: every cache_interval steps; non-uniform: the paper's 1:N schedule, denser near center");
  mode.choices = {"uniform", "non-uniform"};
  info.params.push_back(mode);
  info.params.push_back(p("center", T::Int, 15, 0, std::nullopt, "non-uniform: the step where full calls are densest"));
  ParamSpec pw = p("pow", T::Float, 1.4, 1.0, std::nullopt, "non-uniform: how fast full calls thin out away from center (> 1)");
  pw.min_exclusive = true;
  info.params.push_back(pw);
  info.create = [](const MethodParams& mp) -> std::unique_ptr<Method> {
    DeepCacheOptions o;
    o.cache_interval = mp.get_int("cache_interval");
    o.cache_branch_id = mp.get_int("cache_branch_id");
    o.skip_mode = mp.get_string("skip_mode");
    o.center = mp.get_int("center");
    o.pow = mp.get_float("pow");
    return std::make_unique<DeepCacheMethod>(o);
  };
  registry.add(std::move(info));
}

}  // namespace diffbench
