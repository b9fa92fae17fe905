// Several acceleration methods acting as one: the pipeline hands the UNet a CompositeHooks that
// fans every hook out to its methods in order, and counts module hooks for the reports.
//
//   begin_generation, before_step, after_step, end_generation, begin_call,
//   after_module, after_attention   every method, in order
//   drop_unconditional,
//   restart_caches                  every method is asked; true when any says true
//   before_module, before_attention the first method that returns an output wins; later methods
//                                   are not asked for that module
//   tokens                          the methods' transforms composed: merges in order, unmerges in
//                                   reverse order (the last merge is undone first)
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "diffbench/pipeline/step_hooks.hpp"

namespace diffbench {

class CompositeHooks : public PipelineHooks {
 public:
  explicit CompositeHooks(std::vector<PipelineHooks*> methods);

  bool empty() const { return methods_.empty(); }

  void begin_generation(const GenerationInfo& info) override;
  void before_step(const StepInfo& step) override;
  void after_step(const StepInfo& step, const at::Tensor& latents) override;
  bool drop_unconditional(const StepInfo& step) override;
  bool restart_caches(const StepInfo& step) override;
  void end_generation() override;

  void begin_call(const UNetCallInfo& info) override;
  std::optional<ModuleOutput> before_module(const ModuleId& id) override;
  void after_module(const ModuleId& id, const ModuleOutput& output) override;
  std::shared_ptr<TokenTransform> tokens(const TransformerId& id, const at::Tensor& x, int64_t h, int64_t w) override;
  std::optional<at::Tensor> before_attention(const TransformerId& id, TransformerPart part, const at::Tensor& x) override;
  void after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& output) override;

  // Counters since construction or the last reset_counts(): before_module calls, and those that
  // returned an output (skipped modules).
  int64_t module_calls() const { return module_calls_; }
  int64_t module_skips() const { return module_skips_; }
  void reset_counts() { module_calls_ = module_skips_ = 0; }

 private:
  std::vector<PipelineHooks*> methods_;
  int64_t module_calls_ = 0;
  int64_t module_skips_ = 0;
};

}  // namespace diffbench
