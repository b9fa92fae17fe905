#include "diffbench/pipeline/composite_hooks.hpp"

#include <cstdio>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

// Transforms of several methods, applied as nested wrappers: merge 1, merge 2, ... on the way in,
// ..., unmerge 2, unmerge 1 on the way out.
class ComposedTransform : public TokenTransform {
 public:
  explicit ComposedTransform(std::vector<std::shared_ptr<TokenTransform>> parts) : parts_(std::move(parts)) {}
  at::Tensor merge(TransformerPart part, const at::Tensor& x) override {
    at::Tensor y = x;
    for (auto& p : parts_) y = p->merge(part, y);
    return y;
  }
  at::Tensor unmerge(TransformerPart part, const at::Tensor& x) override {
    at::Tensor y = x;
    for (auto it = parts_.rbegin(); it != parts_.rend(); ++it) y = (*it)->unmerge(part, y);
    return y;
  }

 private:
  std::vector<std::shared_ptr<TokenTransform>> parts_;
};

}  // namespace

CompositeHooks::CompositeHooks(std::vector<PipelineHooks*> methods, VariantCounts* variant_counts)
    : methods_(std::move(methods)), variant_counts_(variant_counts ? variant_counts : &own_counts_) {
  for (auto* m : methods_)
    if (!m) throw RuntimeFailure("null hooks in GenerateOptions::hooks");
}

void CompositeHooks::begin_generation(const GenerationInfo& info) {
  for (auto* m : methods_) m->begin_generation(info);
}

void CompositeHooks::before_step(const StepInfo& step) {
  for (auto* m : methods_) m->before_step(step);
}

void CompositeHooks::after_step(const StepInfo& step, const at::Tensor& latents) {
  for (auto* m : methods_) m->after_step(step, latents);
}

bool CompositeHooks::drop_unconditional(const StepInfo& step) {
  bool drop = false;
  branch_ = SingleBranch::Prompt;
  for (auto* m : methods_) {
    if (!m->drop_unconditional(step)) continue;
    drop = true;
    if (m->single_branch() == SingleBranch::Negative) branch_ = SingleBranch::Negative;
  }
  return drop;
}

bool CompositeHooks::restart_caches(const StepInfo& step) {
  bool restart = false;
  for (auto* m : methods_) restart = m->restart_caches(step) || restart;
  return restart;
}

void CompositeHooks::end_generation() {
  for (auto* m : methods_) m->end_generation();
}

void CompositeHooks::begin_call(const UNetCallInfo& info) {
  if (variant_ && (call_calls_ > 0 || call_skips_ > 0)) (*variant_counts_)[*variant_] = {call_calls_, call_skips_};
  variant_.reset();
  call_calls_ = call_skips_ = 0;
  for (auto* m : methods_) m->begin_call(info);
}

std::optional<std::string> CompositeHooks::graph_variant() {
  std::string key;
  for (auto* m : methods_) {
    const auto k = m->graph_variant();
    if (!k) {
      variant_.reset();
      return std::nullopt;
    }
    char id[24];
    std::snprintf(id, sizeof id, "%016llx:", static_cast<unsigned long long>(m->instance_id()));
    key += (key.empty() ? "" : "+") + std::string(id) + *k;
  }
  variant_ = key;
  return variant_;
}

void CompositeHooks::replayed() {
  if (variant_) {
    const auto it = variant_counts_->find(*variant_);
    if (it != variant_counts_->end()) {
      module_calls_ += it->second.first;
      module_skips_ += it->second.second;
    }
  }
  for (auto* m : methods_) m->replayed();
}

std::optional<ModuleOutput> CompositeHooks::before_module(const ModuleId& id) {
  ++module_calls_;
  ++call_calls_;
  for (auto* m : methods_) {
    if (auto out = m->before_module(id)) {
      ++module_skips_;
      ++call_skips_;
      return out;
    }
  }
  return std::nullopt;
}

void CompositeHooks::after_module(const ModuleId& id, const ModuleOutput& output) {
  for (auto* m : methods_) m->after_module(id, output);
}

std::shared_ptr<TokenTransform> CompositeHooks::tokens(const TransformerId& id, const at::Tensor& x, int64_t h,
                                                       int64_t w) {
  std::vector<std::shared_ptr<TokenTransform>> parts;
  for (auto* m : methods_)
    if (auto t = m->tokens(id, x, h, w)) parts.push_back(std::move(t));
  if (parts.empty()) return nullptr;
  if (parts.size() == 1) return parts[0];
  return std::make_shared<ComposedTransform>(std::move(parts));
}

std::optional<at::Tensor> CompositeHooks::before_attention(const TransformerId& id, TransformerPart part,
                                                           const at::Tensor& x) {
  for (auto* m : methods_)
    if (auto out = m->before_attention(id, part, x)) return out;
  return std::nullopt;
}

void CompositeHooks::after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& output) {
  for (auto* m : methods_) m->after_attention(id, part, output);
}

bool CompositeHooks::hooks_transformer_blocks() const {
  for (const auto* m : methods_)
    if (m->hooks_transformer_blocks()) return true;
  return false;
}

}  // namespace diffbench
