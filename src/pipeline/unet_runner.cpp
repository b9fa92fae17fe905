#include "unet_runner.hpp"

#if __has_include(<ATen/cuda/CUDAGraph.h>)
#include <ATen/cuda/CUDAGraph.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#define DIFFBENCH_HAVE_CUDA_GRAPHS 1
#endif

#include <torch/torch.h>

namespace diffbench {

struct UNetRunner::Graph {
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor sample, timestep, context, out;
};

UNetRunner::UNetRunner(UNet2DConditionModel unet, const at::Device& device, UNetRunnerOptions options)
    : unet_(std::move(unet)), device_(device), options_(options) {
  if (!device_.is_cuda()) {
    options_.cuda_graphs = false;
    options_.channels_last = false;
  }
#ifndef DIFFBENCH_HAVE_CUDA_GRAPHS
  options_.cuda_graphs = false;
#endif
  if (options_.channels_last) {
    torch::NoGradGuard no_grad;
    for (auto& p : unet_->parameters())
      if (p.dim() == 4) p.set_data(p.contiguous(at::MemoryFormat::ChannelsLast));
  }
}

UNetRunner::~UNetRunner() = default;

void UNetRunner::clear() { graphs_.clear(); }
bool UNetRunner::graphs_active() const { return options_.cuda_graphs; }

at::Tensor UNetRunner::run(const at::Tensor& sample_in, const at::Tensor& timestep, const at::Tensor& context,
                           UNetHooks* hooks) {
  const at::Tensor sample =
      options_.channels_last ? sample_in.contiguous(at::MemoryFormat::ChannelsLast) : sample_in;
  if (!options_.cuda_graphs || hooks) return unet_->forward(sample, timestep, context, hooks);
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  const auto key = std::make_tuple(sample.size(0), sample.size(1), sample.size(2), sample.size(3), context.size(1));
  auto it = graphs_.find(key);
  if (it == graphs_.end()) {
    auto g = std::make_unique<Graph>();
    g->sample = sample.clone(at::MemoryFormat::Preserve);
    g->timestep = timestep.to(device_, at::kFloat).clone();
    g->context = context.clone();
    // Warm up on a side stream (kernel selection, allocator), then capture there.
    auto stream = c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device_.index());
    {
      c10::cuda::CUDAStreamGuard guard(stream);
      for (int i = 0; i < 2; ++i) unet_->forward(g->sample, g->timestep, g->context);
      stream.synchronize();
      g->graph.capture_begin();
      g->out = unet_->forward(g->sample, g->timestep, g->context);
      g->graph.capture_end();
    }
    stream.synchronize();
    it = graphs_.emplace(key, std::move(g)).first;
  }
  Graph& g = *it->second;
  g.sample.copy_(sample);
  g.timestep.copy_(timestep);
  g.context.copy_(context);
  g.graph.replay();
  return g.out.clone();
#else
  return unet_->forward(sample, timestep, context);
#endif
}

}  // namespace diffbench
