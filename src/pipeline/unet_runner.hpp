// Runs the UNet for the pipeline, on CUDA through captured CUDA graphs: one graph per input shape
// and hooks variant (UNetHooks::graph_variant; no hooks is a variant too). The first call of a
// (shape, variant) runs eagerly (kernel selection, lazy initialisation, the hooks' own set-up),
// the second is captured and replayed, later ones are replayed. A captured call reads fixed input
// buffers, so each call copies its inputs in and clones the output (schedulers keep model outputs
// across steps). Calls whose hooks give no variant run eagerly.
#pragma once

#include <map>
#include <memory>
#include <string>
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
  // `added`: SDXL's added conditioning (UNetAddedCond), empty for SD 1.x/2.x.
  // `skip_replay`: a call whose graph is already captured is not replayed; the graph's last output
  // is returned (warm-ups whose results are not used: GenerateOptions::warm_up_only).
  at::Tensor run(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context,
                 UNetHooks* hooks = nullptr, const UNetAddedCond& added = {}, bool skip_replay = false);
  // An eager call whose output is dropped (blank inputs of the shapes to come, no hooks): the one-time
  // work of a first call (kernel selection, cuDNN's plans, which LibTorch keeps per thread) done ahead,
  // on the calling thread, while other components do theirs.
  void first_call(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context);
  // Frees captured graphs (e.g. when shapes will not recur).
  void clear();
  bool graphs_active() const;
  // Seconds spent so far in first (eager) calls and in captures, each ended by a device sync:
  // the one-time costs a warm-up pays (kernel selection, cuDNN plans, graph instantiation).
  struct OneTime {
    double first_calls_s = 0;
    double captures_s = 0;
    int graphs = 0;
  };
  const OneTime& one_time() const { return one_time_; }

 private:
  struct Graph;
  struct Side;  // the side stream that first calls and captures run on
  using Key = std::tuple<int64_t, int64_t, int64_t, int64_t, int64_t, std::string>;
  UNet2DConditionModel unet_;
  at::Device device_;
  UNetRunnerOptions options_;
  std::map<Key, std::unique_ptr<Graph>> graphs_;  // null: seen once (ran eagerly), capture next time
  std::unique_ptr<Side> side_;
  std::string hooks_owner_;  // instance ids of the hooks whose graphs are kept
  OneTime one_time_;
};

}  // namespace diffbench
