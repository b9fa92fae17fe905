#include "device_timer.hpp"

#if __has_include(<ATen/cuda/CUDAEvent.h>)
#include <ATen/cuda/CUDAEvent.h>
#include <c10/cuda/CUDAStream.h>
#define DIFFBENCH_HAVE_CUDA_EVENTS 1
#endif

#include <cmath>
#include <numeric>

#include "util/format.hpp"

namespace diffbench {

struct DeviceTimer::Events {
#ifdef DIFFBENCH_HAVE_CUDA_EVENTS
  explicit Events(c10::DeviceIndex index) : device(index) {}
  c10::DeviceIndex device;
  at::cuda::CUDAEvent begin{cudaEventDefault}, end{cudaEventDefault};  // timing enabled
#endif
};

DeviceTimer::DeviceTimer(const at::Device& device) {
#ifdef DIFFBENCH_HAVE_CUDA_EVENTS
  if (device.is_cuda()) events_ = std::make_unique<Events>(device.has_index() ? device.index() : 0);
#else
  (void)device;
#endif
}

DeviceTimer::~DeviceTimer() = default;

void DeviceTimer::start() {
#ifdef DIFFBENCH_HAVE_CUDA_EVENTS
  if (events_) events_->begin.record(c10::cuda::getCurrentCUDAStream(events_->device));
#endif
}

std::optional<double> DeviceTimer::stop() {
#ifdef DIFFBENCH_HAVE_CUDA_EVENTS
  if (!events_) return std::nullopt;
  events_->end.record(c10::cuda::getCurrentCUDAStream(events_->device));
  events_->end.synchronize();
  return static_cast<double>(events_->begin.elapsed_time(events_->end)) / 1000.0;  // ms -> s
#else
  return std::nullopt;
#endif
}

std::optional<std::string> clock_disagreement(const std::string& side, const std::vector<double>& host_seconds,
                                              const std::vector<double>& device_seconds) {
  if (device_seconds.empty() || device_seconds.size() != host_seconds.size()) return std::nullopt;
  const double host = std::accumulate(host_seconds.begin(), host_seconds.end(), 0.0);
  const double dev = std::accumulate(device_seconds.begin(), device_seconds.end(), 0.0);
  if (!(host > 0) || std::fabs(dev - host) <= kClockDisagreementFraction * host) return std::nullopt;
  return side + ": the device clock (CUDA events) measured " + fixed(dev, 3) + " s over its " +
         std::to_string(host_seconds.size()) + " timed batches, the host clock " + fixed(host, 3) + " s (" +
         fixed(100.0 * (dev - host) / host, 1) + " %, more than ±" + fixed(kClockDisagreementFraction * 100, 0) +
         " %): host-side work or waiting that the device does not see, or the reverse";
}

}  // namespace diffbench
