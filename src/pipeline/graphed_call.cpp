#include "graphed_call.hpp"

#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
#include <ATen/cuda/CUDAEvent.h>
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#endif

namespace diffbench {

#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
void on_side_stream(const c10::cuda::CUDAStream& side, const std::function<void()>& f) {
  auto current = c10::cuda::getCurrentCUDAStream(side.device_index());
  at::cuda::CUDAEvent before;
  before.record(current);
  before.block(side);
  {
    c10::cuda::CUDAStreamGuard guard(side);
    f();
  }
  at::cuda::CUDAEvent after;
  after.record(side);
  after.block(current);
}
#endif

struct GraphedCall::Graph {
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor input, output;
};

GraphedCall::GraphedCall(const at::Device& device, bool enabled) : device_(device), enabled_(enabled && device.is_cuda()) {
#ifndef DIFFBENCH_HAVE_CUDA_GRAPHS
  enabled_ = false;
#endif
}

GraphedCall::~GraphedCall() = default;

at::Tensor GraphedCall::run(const at::Tensor& input, const Forward& forward, bool may_capture) {
  if (!enabled_) return forward(input.to(device_));
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  const std::vector<int64_t> key = input.sizes().vec();
  auto it = graphs_.find(key);
  if (it == graphs_.end() || (!it->second && !may_capture)) {  // a first call, or one that may not capture: eagerly
    graphs_.emplace(key, nullptr);
    return forward(input.to(device_));
  }
  if (!it->second) {  // second: captured on a side stream, ordered after and before the current stream's work
    auto g = std::make_unique<Graph>();
    g->input = input.to(device_).clone();
    on_side_stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index()), [&] {
      // Thread-local: the other components' threads may allocate and synchronise meanwhile.
      g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      g->output = forward(g->input);
      g->graph.capture_end();
    });
    it->second = std::move(g);
  }
  Graph& g = *it->second;
  g.input.copy_(input);
  g.graph.replay();
  return g.output.clone();
#else
  return forward(input.to(device_));
#endif
}

}  // namespace diffbench
