// Several acceleration methods acting as one: the pipeline hands the UNet a CompositeHooks that
// fans every hook out to its methods in order, and counts module hooks for the reports.
//
//   begin_generation, before_step, after_step, end_generation, begin_call,
//   after_module, after_attention   every method, in order
//   drop_unconditional,
//   restart_caches,
//   hooks_transformer_blocks        every method is asked; true when any says true
//   single_branch                   Negative when a method that dropped the unconditional half
//                                   says so
//   before_module, before_attention the first method that returns an output wins; later methods
//                                   are not asked for that module
//   tokens                          the methods' transforms composed: merges in order, unmerges in
//                                   reverse order (the last merge is undone first)
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "diffbench/pipeline/step_hooks.hpp"

namespace diffbench {

class CompositeHooks : public PipelineHooks {
 public:
  // `variant_counts` (optional, owned by the caller) keeps what each graph variant's calls asked
  // and skipped across CompositeHooks objects, for calls replayed by later generations.
  using VariantCounts = std::map<std::string, std::pair<int64_t, int64_t>>;
  explicit CompositeHooks(std::vector<PipelineHooks*> methods, VariantCounts* variant_counts = nullptr);

  bool empty() const { return methods_.empty(); }

  void begin_generation(const GenerationInfo& info) override;
  void before_step(const StepInfo& step) override;
  void after_step(const StepInfo& step, const at::Tensor& latents) override;
  bool drop_unconditional(const StepInfo& step) override;
  SingleBranch single_branch() override { return branch_; }
  bool restart_caches(const StepInfo& step) override;
  void end_generation() override;

  void begin_call(const UNetCallInfo& info) override;
  std::optional<ModuleOutput> before_module(const ModuleId& id) override;
  void after_module(const ModuleId& id, const ModuleOutput& output) override;
  std::shared_ptr<TokenTransform> tokens(const TransformerId& id, const at::Tensor& x, int64_t h, int64_t w) override;
  std::optional<at::Tensor> before_attention(const TransformerId& id, TransformerPart part, const at::Tensor& x) override;
  void after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& output) override;
  bool hooks_transformer_blocks() const override;  // true when any method's is
  // "ID:KEY" of every method (instance_id() in hex) joined with "+"; std::nullopt when any method
  // has no key.
  std::optional<std::string> graph_variant() override;
  // Tells every method, and counts the modules the call's variant asked about and skipped when it
  // last ran its hooks.
  void replayed() override;

  // Counters since construction or the last reset_counts(): before_module calls, and those that
  // returned an output (skipped modules).
  int64_t module_calls() const { return module_calls_; }
  int64_t module_skips() const { return module_skips_; }
  void reset_counts() { module_calls_ = module_skips_ = 0; }

 private:
  std::vector<PipelineHooks*> methods_;
  int64_t module_calls_ = 0;
  int64_t module_skips_ = 0;
  SingleBranch branch_ = SingleBranch::Prompt;  // of the methods that last dropped the unconditional half
  // Per call: the variant key and before_module calls / skips since begin_call; per variant: those
  // of its last call that ran the hooks (what a replay of it does).
  std::optional<std::string> variant_;
  int64_t call_calls_ = 0, call_skips_ = 0;
  VariantCounts own_counts_;
  VariantCounts* variant_counts_;
};

}  // namespace diffbench
