#include "unet_runner.hpp"

#include "graphed_call.hpp"

#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
#include <ATen/cuda/CUDAGraph.h>
#endif

#include <chrono>

#include <torch/torch.h>

namespace diffbench {

struct UNetRunner::Graph {
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  at::cuda::CUDAGraph graph;
#endif
  at::Tensor sample, timestep, context, out;
  UNetAddedCond added;
};

struct UNetRunner::Side {
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  explicit Side(int device) : stream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device)) {}
  c10::cuda::CUDAStream stream;
  // Runs f on the side stream, ordered after and before the current stream's work.
  template <class F>
  auto on_side(F&& f) {
    decltype(f()) out;
    on_side_stream(stream, [&] { out = f(); });
    return out;
  }
#endif
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

void UNetRunner::first_call(const at::Tensor& sample, const at::Tensor& timestep, const at::Tensor& context) {
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  unet_->forward(options_.channels_last ? sample.contiguous(at::MemoryFormat::ChannelsLast) : sample, timestep, context,
                 nullptr, {});
  if (device_.is_cuda()) {
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
#endif
  }
  one_time_.first_calls_s += std::chrono::duration<double>(Clock::now() - t0).count();
}

void UNetRunner::clear() { graphs_.clear(); }
bool UNetRunner::graphs_active() const { return options_.cuda_graphs; }

at::Tensor UNetRunner::run(const at::Tensor& sample_in, const at::Tensor& timestep, const at::Tensor& context,
                           UNetHooks* hooks, const UNetAddedCond& added, bool skip_replay) {
  const at::Tensor sample =
      options_.channels_last ? sample_in.contiguous(at::MemoryFormat::ChannelsLast) : sample_in;
  std::optional<std::string> variant = std::string();
  if (options_.cuda_graphs && hooks) variant = hooks->graph_variant();
  if (!options_.cuda_graphs || !variant) return unet_->forward(sample, timestep, context, hooks, added);
#ifdef DIFFBENCH_HAVE_CUDA_GRAPHS
  if (!variant->empty()) {
    // Graphs of hooks read those hooks' buffers: keep only the graphs of the hooks in use now.
    std::string owner;  // the "ID:" parts of "ID:KEY+ID:KEY"
    for (size_t begin = 0; begin <= variant->size();) {
      const size_t end = std::min(variant->find('+', begin), variant->size());
      owner += variant->substr(begin, variant->find(':', begin) - begin) + ";";
      begin = end + 1;
    }
    if (owner != hooks_owner_) {
      for (auto it = graphs_.begin(); it != graphs_.end();)
        it = std::get<5>(it->first).empty() ? std::next(it) : graphs_.erase(it);
      hooks_owner_ = owner;
    }
  }
  const Key key{sample.size(0), sample.size(1), sample.size(2), sample.size(3), context.size(1), *variant};
  if (!side_) side_ = std::make_unique<Side>(device_.index());
  auto it = graphs_.find(key);
  using Clock = std::chrono::steady_clock;
  const auto t0 = Clock::now();
  const auto since = [&] {
    c10::cuda::getCurrentCUDAStream(device_.index()).synchronize();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  if (it == graphs_.end()) {  // first call of this shape and variant: eagerly, on the side stream
    graphs_.emplace(key, nullptr);
    at::Tensor out =
        side_->on_side([&] { return unet_->forward(sample, timestep, context, hooks, added); });
    one_time_.first_calls_s += since();
    return out;
  }
  const bool capture = !it->second;
  if (capture) {  // second: capture on the side stream (the hooks run once, inside the capture)
    auto g = std::make_unique<Graph>();
    g->sample = sample.clone(at::MemoryFormat::Preserve);
    g->timestep = timestep.to(device_, at::kFloat).clone();
    g->context = context.clone();
    if (added.defined()) g->added = UNetAddedCond{added.text_embeds.clone(), added.time_ids.clone()};
    side_->on_side([&] {
      // Thread-local: other threads (eval's CLIP scorer warming up) may allocate and synchronise
      // meanwhile; only this thread must not.
      g->graph.capture_begin({0, 0}, cudaStreamCaptureModeThreadLocal);
      g->out = unet_->forward(g->sample, g->timestep, g->context, hooks, g->added);
      g->graph.capture_end();
      return 0;
    });
    it->second = std::move(g);
    one_time_.captures_s += since();
    ++one_time_.graphs;
  }
  Graph& g = *it->second;
  if (!capture && skip_replay) {
    if (hooks) hooks->replayed();  // the hooks' counters and state advance as if it had run
    return g.out.clone();
  }
  g.sample.copy_(sample);
  g.timestep.copy_(timestep);
  g.context.copy_(context);
  if (added.defined()) {
    g.added.text_embeds.copy_(added.text_embeds);
    g.added.time_ids.copy_(added.time_ids);
  }
  g.graph.replay();
  if (!capture && hooks) hooks->replayed();  // the capturing call ran the hooks itself
  return g.out.clone();
#else
  (void)skip_replay;
  return unet_->forward(sample, timestep, context, hooks, added);
#endif
}

}  // namespace diffbench
