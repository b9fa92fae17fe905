// DeepCache (Ma et al., 2024) through the hook interface, with the semantics of DeepCache's
// DeepCacheSDHelper: a UNet call is fully computed on full steps; on the others every module
// deeper than the cache branch returns the output it had at its last computed call, so only the
// shallow down/up path runs. Cached state is reset at the start of every generation.
#pragma once

#include <map>
#include <optional>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "diffbench/accel/method.hpp"

namespace diffbench {

struct DeepCacheOptions {
  int64_t cache_interval = 3;
  int64_t cache_branch_id = 0;       // cache_block_id = id / 3, cache_layer_id = id % 3
  std::string skip_mode = "uniform";  // "uniform" | "non-uniform"
  int64_t center = 15;               // non-uniform: where full steps are densest
  double pow = 1.4;                  // non-uniform: how fast they thin out (> 1)
};

class DeepCacheMethod : public Method {
 public:
  explicit DeepCacheMethod(DeepCacheOptions options);

  std::string name() const override { return "deepcache"; }
  nlohmann::json params() const override;
  nlohmann::json stats() const override;
  void reset_stats() override;

  void begin_generation(const GenerationInfo& info) override;
  void before_step(const StepInfo& step) override;  // honours StepInfo::restart
  void begin_call(const UNetCallInfo& info) override;
  std::optional<ModuleOutput> before_module(const ModuleId& id) override;
  void after_module(const ModuleId& id, const ModuleOutput& output) override;
  bool hooks_transformer_blocks() const override { return false; }  // whole modules only
  // "full" or "partial" once a partial call has shown which outputs it reads (those are then kept
  // in fixed buffers, written in place by full calls); before that, none (eager).
  std::optional<std::string> graph_variant() override;

  // Whether the current call is fully computed (for tests).
  bool full_call() const { return full_; }

  // Forgets the cache and starts the schedule again at the next call, which is computed in full
  // (DeepCacheSDHelper's disable() + enable()). Happens by itself when the UNet batch changes,
  // e.g. when a method stacked before this one drops classifier-free guidance's unconditional half,
  // and at a step whose StepInfo::restart is set (a method's restart_caches(), e.g. T-GATE's gate).
  void restart();

 private:
  // Skipped on a partial call? (DeepCacheSDHelper.is_skip_step without the step test.)
  bool deeper_than_branch(const ModuleId& id) const;

  DeepCacheOptions o_;
  int cache_block_ = 0, cache_layer_ = 0;
  std::vector<double> timesteps_;
  std::vector<int> full_steps_;     // non-uniform: UNet call indices computed in full
  std::optional<size_t> start_;     // uniform: index of the generation's first call
  bool full_ = true;
  bool restart_ = false;
  int64_t last_batch_ = 0;
  std::map<std::string, ModuleOutput> cache_;
  // Outputs partial calls read (learnt from the first one; every partial call skips the same
  // modules), kept in buffers that stay put, per module
  // and input shape (a captured graph keeps reading and writing the same memory).
  std::set<std::string> read_by_partial_;
  std::map<std::tuple<std::string, int64_t, int64_t, int64_t>, ModuleOutput> buffers_;  // name, batch, h, w
  int64_t last_h_ = 0, last_w_ = 0;
  int64_t calls_ = 0, full_calls_ = 0;

  const ModuleOutput& keep(const std::string& name, const ModuleOutput& output);
};

// DeepCache's non-uniform 1:N schedule (sample_from_quad_center in DeepCache/sd/
// pipeline_stable_diffusion.py): the sorted indices of the fully computed steps for `steps`
// inference steps. InputError when no pow > 1 fits, as there.
std::vector<int> deepcache_nonuniform_steps(int steps, int interval, int center, double pow);

}  // namespace diffbench
