// The initial latents' and the schedulers' per-step noise: one CPU generator for the run (as a Python
// loop over pipe(prompts[i:i+b], generator=g) consumes it) or one per prompt (seed + prompt index).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

enum class NoiseMode {
  PerPrompt,  // prompt i draws from a CPU generator seeded seed+i: images do not depend on batch size
  Diffusers,  // one CPU generator seeded once, consumed batch after batch in prompt order
};
NoiseMode parse_noise_mode(const std::string& name);  // "per-prompt" | "diffusers"
std::string to_string(NoiseMode mode);

// Draws the initial latents and the schedulers' per-step noise, in one of the two noise modes.
class NoiseSource {
 public:
  NoiseSource(NoiseMode mode, uint64_t seed);
  // Selects the prompts [first, first+count) of the next batch.
  void begin_batch(size_t first, size_t count);
  // Standard normal noise of `shape` (leading dim = batch), drawn on the CPU in float32 like
  // diffusers' randn_tensor with a CPU generator, then cast to `dtype` and moved to `device`.
  // diffusers draws in the pipeline's dtype instead, and torch's float16/bfloat16 normal sampler
  // yields different numbers from its float32 one, so a half-precision diffusers run starts from
  // other noise than its float32 run. Drawing in float32 keeps fp16/bf16 images comparable to
  // (and, for fp32, identical with) diffusers' float32 images.
  at::Tensor draw(std::vector<int64_t> shape, at::ScalarType dtype, const at::Device& device);
  // The shared generator's state (diffusers mode; empty in per-prompt mode, whose generators are
  // seeded afresh per batch), and setting it back: how a resumed run skips finished batches.
  std::vector<uint8_t> state() const;
  void set_state(const std::vector<uint8_t>& state);

 private:
  NoiseMode mode_;
  uint64_t seed_;
  at::Generator shared_;
  std::vector<at::Generator> per_prompt_;
};

}  // namespace diffbench
