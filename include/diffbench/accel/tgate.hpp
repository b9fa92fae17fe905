// T-GATE (Liu et al., "Faster Diffusion via Temporal Attention Decomposition"), as the tgate
// package's TgateSDLoader(pipe).tgate(...) runs it on Stable Diffusion 1.x:
//
// - Semantics-planning phase (cur_step < gate_step - 1): cross-attention is computed every step;
//   self-attention is computed during the first warm_up steps, then computed and cached on steps
//   that are a multiple of sp_interval (and on the warm_up step itself) and reused in between.
// - Gate (cur_step == gate_step - 1): every attention is computed and cached as the mean of its
//   classifier-free-guidance halves, (uncond + text) / 2.
// - Fidelity-improving phase (cur_step >= gate_step): the pipeline runs one branch, with the negative
//   prompt's inputs as tgate's loaders pass them (single_branch(): SDXL's negative pooled embedding
//   and time ids; the text embeddings no longer matter), and skips guidance; cross-attention reuses
//   the gate's cache; self-attention is computed and cached on multiples of fi_interval and reused
//   in between. TgateSDXLLoader runs SDXL the same way.
//
// cur_step = UNet call index - num_warmup_steps, where num_warmup_steps = len(timesteps) -
// num_inference_steps * scheduler.order as in diffusers (1 for PNDM, whose n steps make n + 1
// UNet calls; 0 for the other schedulers). Before the first counted call no attention is cached.
//
// Stacked with `deepcache` (in either order), T-GATE asks for restart_caches() on the gate step
// and on the next one, as TgateSDDeepCacheLoader calls deepcache.disable(); enable() there: both
// are full UNet calls, so every attention reaches its gate cache and no module reuses an output
// of the guided batch. TgateSDDeepCacheLoader's own T-GATE defaults differ from TgateSDLoader's
// (sp_interval = 1, warm_up = 0): a spec reproducing it sets them.
//
// Differences from the tgate package, where it has no meaningful behaviour:
// - Without classifier-free guidance (guidance <= 1) there are no halves to average: the gate
//   caches the attention outputs as they are (tgate averages the batch's two halves of images
//   instead, which fails unless the batch has two images and then mixes them).
// - After the gate tgate passes the *unconditional* embeddings to the UNet; they only reach
//   cross-attentions that have no cache, which happens only for gate_step = 0 (tgate then
//   generates from the empty prompt). diffbench keeps the prompt's embeddings.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/accel/method.hpp"

namespace diffbench {

struct TgateOptions {
  int64_t gate_step = 10;   // steps (from the first counted step) with cross-attention computed
  int64_t sp_interval = 5;  // self-attention cache interval before the gate
  int64_t fi_interval = 1;  // self-attention cache interval after the gate
  int64_t warm_up = 2;      // first steps with self-attention always computed, never cached
};

// What the attentions do during one UNet call (tgate_utils.tgate_scheduler).
struct TgatePlan {
  bool ca_cache = false, ca_reuse = false;  // cross-attention
  bool sa_cache = false, sa_reuse = false;  // self-attention
  bool keep_shape = true;                   // false: cache the mean of the guidance halves
};

// tgate_scheduler(cur_step, ...), exactly.
TgatePlan tgate_plan(int64_t cur_step, const TgateOptions& params);

// diffusers' num_warmup_steps for a generation: UNet calls beyond one per inference step
// (all diffbench schedulers have order 1; PNDM makes one call more than its steps).
int64_t tgate_warmup_calls(const GenerationInfo& info);

class TgateMethod : public Method {
 public:
  explicit TgateMethod(const TgateOptions& params);

  std::string name() const override { return "tgate"; }
  nlohmann::json params() const override;
  nlohmann::json stats() const override;
  void reset_stats() override;

  void begin_generation(const GenerationInfo& info) override;
  void before_step(const StepInfo& step) override;
  bool drop_unconditional(const StepInfo& step) override;
  // After the gate tgate's loaders run the branch of the negative prompt (prompt_embeds =
  // negative_prompt_embeds; TgateSDXLLoader also passes negative_pooled_prompt_embeds and the
  // negative time ids as added_cond_kwargs): its cross-attention is the cached mean of both halves.
  SingleBranch single_branch() override { return SingleBranch::Negative; }
  bool restart_caches(const StepInfo& step) override;
  std::optional<at::Tensor> before_attention(const TransformerId& id, TransformerPart part,
                                             const at::Tensor& x) override;
  void after_attention(const TransformerId& id, TransformerPart part, const at::Tensor& output) override;
  // CUDA graphs: the calls of one plan do the same device work once every cache they read exists,
  // so the plan (and what the reused caches hold) is the variant. Cached attentions live in fixed
  // buffers, written in place; a replay re-applies the counters and cache entries of the call it
  // was captured from.
  void begin_call(const UNetCallInfo& info) override;
  std::optional<std::string> graph_variant() override;
  void replayed() override;

  // The plan of the current UNet call (for tests).
  const TgatePlan& plan() const { return plan_; }

 private:
  int64_t cur_step(size_t step) const { return static_cast<int64_t>(step) - warmup_calls_; }
  std::map<std::string, at::Tensor>& cache(TransformerPart part);

  struct Counters {
    int64_t self_computed = 0, self_reused = 0, cross_computed = 0, cross_reused = 0;
    int64_t single_branch_steps = 0;
  };
  // What one call of a graph variant did on the host: counter increments and cache entries set.
  struct CallRecord {
    Counters delta;
    std::vector<std::tuple<TransformerPart, std::string, at::Tensor>> writes;
  };
  void close_call();

  TgateOptions p_;
  bool guidance_ = false;
  int64_t warmup_calls_ = 0;
  TgatePlan plan_;
  std::map<std::string, at::Tensor> self_cache_, cross_cache_;  // by transformer block name -> a buffer
  // Fixed buffers by (part, block name, shape); kept across generations, which graphs replay.
  std::map<std::tuple<int, std::string, std::vector<int64_t>>, at::Tensor> buffers_;
  Counters counters_;
  // The UNet call in progress: its variant, counters at its start and the cache entries it set.
  bool call_open_ = false, call_replayed_ = false;
  std::string call_variant_;
  Counters call_start_;
  CallRecord call_;
  std::map<std::string, CallRecord> records_;  // by variant
};

}  // namespace diffbench
