// Independent work items on the machine's cores (PNG encoding and decoding of image sets, content
// hashes of weight files).
#pragma once

#include <algorithm>
#include <atomic>
#include <cstddef>
#include <exception>
#include <future>
#include <thread>
#include <vector>

namespace diffbench {

// Calls f(i) for every i in [0, n), on up to one thread per core, or up to `max_threads` when it is not
// 0 (the calling thread waits); items must not depend on each other. After an item throws no new item
// starts, and the first exception is rethrown once every thread has stopped.
template <class F>
void parallel_for(size_t n, const F& f, size_t max_threads = 0) {
  const size_t cores = std::max(1u, std::thread::hardware_concurrency());
  const size_t threads = std::min<size_t>(n, max_threads == 0 ? cores : std::min(max_threads, cores));
  if (threads <= 1) {
    for (size_t i = 0; i < n; ++i) f(i);
    return;
  }
  std::atomic<size_t> next{0};
  auto work = [&] {
    for (size_t i; (i = next++) < n;) {
      try {
        f(i);
      } catch (...) {
        next = n;
        throw;
      }
    }
  };
  std::vector<std::future<void>> parts;
  for (size_t t = 0; t < threads; ++t) parts.push_back(std::async(std::launch::async, work));
  std::exception_ptr error;
  for (auto& p : parts) {
    try {
      p.get();
    } catch (...) {
      if (!error) error = std::current_exception();
    }
  }
  if (error) std::rethrow_exception(error);
}

}  // namespace diffbench
