#include "diffbench/accel/tgate.hpp"

#include <algorithm>
#include <utility>

#include "diffbench/accel/builtins.hpp"

namespace diffbench {

TgatePlan tgate_plan(int64_t cur_step, const TgateOptions& p) {
  TgatePlan plan;
  if (cur_step < p.gate_step - 1) {
    // Semantics planning: cross-attention computed; self-attention by sp_interval after warm-up.
    if (cur_step < p.warm_up) {
      // computed, not cached
    } else if (cur_step == p.warm_up || cur_step % p.sp_interval == 0) {
      plan.sa_cache = true;
    } else {
      plan.sa_reuse = true;
    }
  } else if (cur_step == p.gate_step - 1) {
    // The gate: cache both attentions as the mean of the guidance halves.
    plan.ca_cache = plan.sa_cache = true;
    plan.keep_shape = false;
  } else {
    // Fidelity improving: cross-attention reused; self-attention by fi_interval.
    plan.ca_reuse = true;
    if (cur_step % p.fi_interval == 0)
      plan.sa_cache = true;
    else
      plan.sa_reuse = true;
  }
  return plan;
}

int64_t tgate_warmup_calls(const GenerationInfo& info) {
  // len(timesteps) - num_inference_steps * scheduler.order, every diffbench scheduler of order 1.
  return std::max<int64_t>(0, static_cast<int64_t>(info.timesteps.size()) - info.steps);
}

TgateMethod::TgateMethod(const TgateOptions& params) : p_(params) {}

nlohmann::json TgateMethod::params() const {
  return {{"gate_step", p_.gate_step}, {"sp_interval", p_.sp_interval}, {"fi_interval", p_.fi_interval},
          {"warm_up", p_.warm_up}};
}

nlohmann::json TgateMethod::stats() const {
  return {{"self_attention_computed", counters_.self_computed},
          {"self_attention_reused", counters_.self_reused},
          {"cross_attention_computed", counters_.cross_computed},
          {"cross_attention_reused", counters_.cross_reused},
          {"single_branch_steps", counters_.single_branch_steps}};
}

void TgateMethod::reset_stats() { counters_ = Counters{}; }

void TgateMethod::begin_generation(const GenerationInfo& info) {
  close_call();
  guidance_ = info.guidance;
  warmup_calls_ = tgate_warmup_calls(info);
  plan_ = TgatePlan{};  // tgate registers "no cache, no reuse" before the loop
  self_cache_.clear();
  cross_cache_.clear();
}

void TgateMethod::before_step(const StepInfo& step) {
  close_call();
  // tgate updates its plan only on counted calls: i == last or (i + 1) > num_warmup_steps
  // (with scheduler order 1); on the others the previous plan stays.
  const auto i = static_cast<int64_t>(step.step);
  if (i == static_cast<int64_t>(step.total_steps) - 1 || i + 1 > warmup_calls_) plan_ = tgate_plan(cur_step(step.step), p_);
  if (guidance_ && cur_step(step.step) >= p_.gate_step) ++counters_.single_branch_steps;
}

bool TgateMethod::drop_unconditional(const StepInfo& step) {
  return guidance_ && cur_step(step.step) >= p_.gate_step;
}

bool TgateMethod::restart_caches(const StepInfo& step) {
  // TgateSDDeepCacheLoader restarts DeepCache when (i - num_warmup_steps) is gate_step - 1 or
  // gate_step: every attention must run at the gate to be cached, and the batch halves after it.
  const int64_t c = cur_step(step.step);
  return c == p_.gate_step - 1 || c == p_.gate_step;
}

std::map<std::string, at::Tensor>& TgateMethod::cache(TransformerPart part) {
  return part == TransformerPart::SelfAttention ? self_cache_ : cross_cache_;
}

std::optional<at::Tensor> TgateMethod::before_attention(const TransformerId& id, TransformerPart part,
                                                        const at::Tensor& x) {
  if (part == TransformerPart::FeedForward) return std::nullopt;
  const bool self = part == TransformerPart::SelfAttention;
  if (self ? plan_.sa_reuse : plan_.ca_reuse) {
    auto& c = cache(part);
    auto it = c.find(id.name);
    if (it != c.end()) {  // tgate computes the attention when nothing is cached yet
      ++(self ? counters_.self_reused : counters_.cross_reused);
      return it->second;
    }
  }
  ++(self ? counters_.self_computed : counters_.cross_computed);
  return std::nullopt;
}

void TgateMethod::after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& output) {
  if (part == TransformerPart::FeedForward) return;
  const bool self = part == TransformerPart::SelfAttention;
  if (!(self ? plan_.sa_cache : plan_.ca_cache)) return;
  at::Tensor kept = output;
  if (!plan_.keep_shape && guidance_) {
    auto halves = output.chunk(2, 0);  // [B, N, C] each: unconditional, text
    kept = (halves[0] + halves[1]) / 2;
  }
  at::Tensor& buffer = buffers_[{static_cast<int>(part), id.name, kept.sizes().vec()}];
  if (!buffer.defined()) buffer = at::empty_like(kept, at::MemoryFormat::Contiguous);
  buffer.copy_(kept);
  cache(part)[id.name] = buffer;
  call_.writes.emplace_back(part, id.name, buffer);
}

void TgateMethod::begin_call(const UNetCallInfo&) {
  close_call();
  call_open_ = true;
  call_start_ = counters_;
  call_ = CallRecord{};
}

void TgateMethod::close_call() {
  if (!call_open_) return;
  call_open_ = false;
  if (call_replayed_ || call_variant_.empty()) {
    call_replayed_ = false;
    call_variant_.clear();
    return;
  }
  const Counters& a = counters_;
  const Counters& b = call_start_;
  call_.delta = {a.self_computed - b.self_computed, a.self_reused - b.self_reused,
                 a.cross_computed - b.cross_computed, a.cross_reused - b.cross_reused, 0};
  records_[call_variant_] = std::move(call_);
  call_variant_.clear();
}

std::optional<std::string> TgateMethod::graph_variant() {
  // A reused attention reads what the cache holds for its block, so the variant names how many
  // entries (and values) each reused cache holds besides the plan.
  const auto held = [](const std::map<std::string, at::Tensor>& c) {
    int64_t values = 0;
    for (const auto& [name, t] : c) values += t.numel();
    return std::to_string(c.size()) + "/" + std::to_string(values);
  };
  std::string v = std::string("tgate:") + (plan_.sa_cache ? "S" : "") + (plan_.sa_reuse ? "s" : "") +
                  (plan_.ca_cache ? "C" : "") + (plan_.ca_reuse ? "c" : "") + (plan_.keep_shape ? "" : "m");
  if (plan_.sa_reuse) v += ":self=" + held(self_cache_);
  if (plan_.ca_reuse) v += ":cross=" + held(cross_cache_);
  call_variant_ = v;
  return v;
}

void TgateMethod::replayed() {
  call_replayed_ = true;
  const auto it = records_.find(call_variant_);
  if (it == records_.end()) return;
  const Counters& d = it->second.delta;
  counters_.self_computed += d.self_computed;
  counters_.self_reused += d.self_reused;
  counters_.cross_computed += d.cross_computed;
  counters_.cross_reused += d.cross_reused;
  for (const auto& [part, name, buffer] : it->second.writes) cache(part)[name] = buffer;
}

void register_tgate(MethodRegistry& registry) {
  MethodInfo info;
  info.name = "tgate";
  info.description =
      "T-GATE: caches cross-attention after gate_step and drops classifier-free guidance; "
      "self-attention cached by interval (tgate's TgateSDLoader)";
  auto int_param = [](std::string name, int64_t def, double min, std::string help) {
    return make_param(std::move(name), ParamSpec::Type::Int, def, min, std::nullopt, std::move(help));
  };
  info.params = {
      int_param("gate_step", 10, 0, "steps with cross-attention computed (and guidance) before the gate"),
      int_param("sp_interval", 5, 1, "self-attention cache interval before the gate"),
      int_param("fi_interval", 1, 1, "self-attention cache interval after the gate"),
      int_param("warm_up", 2, 0, "first steps with self-attention always computed, never cached"),
  };
  info.create = [](const MethodParams& mp) -> std::unique_ptr<Method> {
    TgateOptions p;
    p.gate_step = mp.get_int("gate_step");
    p.sp_interval = mp.get_int("sp_interval");
    p.fi_interval = mp.get_int("fi_interval");
    p.warm_up = mp.get_int("warm_up");
    return std::make_unique<TgateMethod>(p);
  };
  registry.add(std::move(info));
}

}  // namespace diffbench
