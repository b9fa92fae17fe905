// A component's forward replayed from CUDA graphs, one per input shape: the first call of a shape runs
// eagerly (kernel selection, lazy initialisation), the second is captured on a side stream and
// replayed, later ones are replayed. A captured call reads a fixed input buffer, so each call copies
// its input in (from the host too) and clones the output. For the text encoder, whose few hundred small
// kernels cost more to launch than to run (DIFFBENCH_TEXT_GRAPHS=0 turns it off). Off the GPU, or when disabled,
// every call is the function itself.
#pragma once

#include <functional>
#include <map>
#include <memory>
#include <vector>

#include <ATen/ATen.h>

#if __has_include(<ATen/cuda/CUDAGraph.h>)
#include <c10/cuda/CUDAStream.h>
#define DIFFBENCH_HAVE_CUDA_GRAPHS 1
#endif

namespace diffbench {

#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
// Runs f on `side`, ordered after the current stream's work so far and before its work to come: where
// first calls and captures run (a capture cannot be on the legacy default stream).
void on_side_stream(const c10::cuda::CUDAStream& side, const std::function<void()>& f);
#endif

class GraphedCall {
 public:
  using Forward = std::function<at::Tensor(const at::Tensor&)>;
  GraphedCall(const at::Device& device, bool enabled);
  ~GraphedCall();
  // forward(input on the device); `input` may be on the host. Without `may_capture` a shape not
  // captured yet runs eagerly and stays uncaptured (while other threads do their first calls).
  at::Tensor run(const at::Tensor& input, const Forward& forward, bool may_capture = true);
  bool enabled() const { return enabled_; }

 private:
  struct Graph;
  at::Device device_;
  bool enabled_;
  std::map<std::vector<int64_t>, std::unique_ptr<Graph>> graphs_;  // null: seen once, capture next time
};

}  // namespace diffbench
