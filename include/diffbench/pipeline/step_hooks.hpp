// Layering: methods see the denoising loop only through these hooks; nothing here knows a method.
// Step-level hook points of the txt2img pipeline, and the combined hooks object an acceleration
// method implements (UNet hooks + step hooks). Every hook does nothing by default.
#pragma once

#include <cstdint>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/models/unet_hooks.hpp"

namespace diffbench {

// Given at the start of every batch's denoising loop: methods reset their per-generation state
// here (cached tensors never leak from one generation call into the next).
struct GenerationInfo {
  uint64_t seed = 0;           // the run's seed
  size_t batch_index = 0;      // which batch of the run
  int64_t images = 0;          // images in this batch
  std::vector<double> timesteps;  // one per UNet call
  int steps = 0;               // inference steps asked for (PNDM makes one UNet call more)
  int64_t latent_h = 0;
  int64_t latent_w = 0;
  bool guidance = false;       // classifier-free guidance is on
  at::Device device = at::kCPU;
};

struct StepInfo {
  size_t step = 0;         // index into timesteps
  size_t total_steps = 0;
  double timestep = 0;
  // Set by the pipeline when any method's restart_caches(step) said true: methods that reuse
  // outputs across steps (DeepCache) drop them and compute this step in full.
  bool restart = false;
};

// Per denoising step the pipeline calls, in this order: restart_caches, before_step, drop_unconditional (while
// guidance still runs), UNetHooks::begin_call, the UNet (with its module hooks), guidance, the
// scheduler step, after_step. begin_generation comes before the first step of every batch (after
// the scheduler's timesteps are set), end_generation after its last step.
class StepHooks {
 public:
  virtual ~StepHooks() = default;
  virtual void begin_generation(const GenerationInfo& info) {}
  virtual void before_step(const StepInfo& step) {}
  virtual void after_step(const StepInfo& step, const at::Tensor& latents) {}
  // True: from this step on the UNet runs only one branch (batch B; single_branch() says which
  // embeddings) and its output is used directly, without guidance (as T-GATE does after its gate step). Asked
  // only while guidance runs; once true it stays so for the rest of the batch.
  virtual bool drop_unconditional(const StepInfo& step) { return false; }
  // Asked once, at the step where drop_unconditional first said true: which conditioning the one
  // remaining branch gets from then on. Prompt: the prompts' embeddings (and on SDXL their pooled
  // embeddings). Negative: the negative prompt's embeddings, pooled embedding and time ids, the
  // batch of B that tgate's loaders run after the gate (there every cross-attention is reused, so
  // on SD 1.x/2.x the two agree; on SDXL the pooled embedding still enters the time embedding).
  enum class SingleBranch { Prompt, Negative };
  virtual SingleBranch single_branch() { return SingleBranch::Prompt; }
  // True: outputs cached across steps must not be reused at this step; the pipeline passes the
  // answer (any method's) to every method as StepInfo::restart. T-GATE asks for it at its gate,
  // where every attention must run to be cached, and when the batch drops to the conditional
  // half (as TgateSDDeepCacheLoader restarts DeepCache there).
  virtual bool restart_caches(const StepInfo& step) { return false; }
  virtual void end_generation() {}
};

// What an acceleration method implements.
class PipelineHooks : public UNetHooks, public StepHooks {};

}  // namespace diffbench
