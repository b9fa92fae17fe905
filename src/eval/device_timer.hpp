// Device-side timing of the timed batches: CUDA events around each batch on the device's current
// stream, beside the host clock the pipeline reads, and the check that the two clocks agree. On the
// CPU (and with a LibTorch built without CUDA) the timer does nothing and no device times exist.
#pragma once

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

class DeviceTimer {
 public:
  explicit DeviceTimer(const at::Device& device);
  ~DeviceTimer();
  DeviceTimer(const DeviceTimer&) = delete;
  DeviceTimer& operator=(const DeviceTimer&) = delete;

  bool active() const { return events_ != nullptr; }
  // Records the start event on the device's current stream (nothing when inactive).
  void start();
  // Records the end event, waits for the device to reach it and returns the seconds between the two
  // events; nullopt when inactive.
  std::optional<double> stop();

 private:
  struct Events;
  std::unique_ptr<Events> events_;
};

// Above this relative difference between a side's device-clock and host-clock totals the report
// carries a `clock_disagreement` warning.
constexpr double kClockDisagreementFraction = 0.05;

// The warning's text for one side ("baseline", "candidate") whose device and host batch times (the
// same batches, in the same order) differ in total by more than kClockDisagreementFraction of the
// host total; nullopt when they agree or there are no device times (the CPU).
std::optional<std::string> clock_disagreement(const std::string& side, const std::vector<double>& host_seconds,
                                              const std::vector<double>& device_seconds);

}  // namespace diffbench
