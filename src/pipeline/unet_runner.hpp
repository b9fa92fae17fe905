// Runs the UNet for the pipeline, on CUDA through captured CUDA graphs: one graph per input
// shape, captured on first use after a warm-up call, replayed afterwards. The captured call
// reads fixed input buffers, so each call copies its inputs in and clones the output (schedulers
// keep model outputs across steps). Calls with hooks run eagerly: hooks may change the work
// from call to call.
#pragma once

#include <map>
#include <memory>
#include <tuple>

#include <ATen/ATen.h>

#include "diffbench/models/unet.hpp"
#include "diffbench/models/unet_hooks.hpp"

namespace diffbench {

struct UNetRunnerOptions {
  bool cuda_graphs = true;    // CUDA only
  bool channels_last = true;  // CUDA only: NHWC convolutions
};

class UNetRunner {
 public:
  UNetRunner(UNet2DConditionModel unet, const at::Device& device, UNetRunnerOptions options);
  ~UNetRunner();
  // A UNet call: replayed from a CUDA graph when possible; eagerly (with `hooks`) otherwise.
  at::Tensor run(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context,
                 UNetHooks* hooks = nullptr);
  // Frees captured graphs (e.g. when shapes will not recur).
  void clear();
  bool graphs_active() const;

 private:
  struct Graph;
  UNet2DConditionModel unet_;
  at::Device device_;
  UNetRunnerOptions options_;
  std::map<std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t>, std::unique_ptr<Graph>> graphs_;
};

}  // namespace diffbench
