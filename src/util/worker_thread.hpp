// One thread of its own that runs the tasks given to it, one after another, in the order given.
// For work that must stay on one thread: LibTorch keeps cuDNN's attention plans per thread, so a
// model warmed up on a worker stays warm only for the calls made on that worker (eval's CLIP scorer).
#pragma once

#include <condition_variable>
#include <deque>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <thread>
#include <type_traits>

namespace diffbench {

class WorkerThread {
 public:
  WorkerThread() : thread_([this] { work(); }) {}
  // Runs the tasks still queued, then ends the thread.
  ~WorkerThread() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    changed_.notify_one();
    thread_.join();
  }
  WorkerThread(const WorkerThread&) = delete;
  WorkerThread& operator=(const WorkerThread&) = delete;

  // Queues f; its result (or exception) comes through the future.
  template <class F>
  std::future<std::invoke_result_t<F>> submit(F f) {
    auto task = std::make_shared<std::packaged_task<std::invoke_result_t<F>()>>(std::move(f));
    std::future<std::invoke_result_t<F>> result = task->get_future();
    {
      std::lock_guard<std::mutex> lock(mutex_);
      queue_.push_back([task] { (*task)(); });
    }
    changed_.notify_one();
    return result;
  }
  // Runs f on the worker and waits for it.
  template <class F>
  std::invoke_result_t<F> run(F f) {
    return submit(std::move(f)).get();
  }

 private:
  void work() {
    for (;;) {
      std::function<void()> task;
      {
        std::unique_lock<std::mutex> lock(mutex_);
        changed_.wait(lock, [this] { return stopping_ || !queue_.empty(); });
        if (queue_.empty()) return;  // stopping, nothing left
        task = std::move(queue_.front());
        queue_.pop_front();
      }
      task();  // a packaged task: its exception goes to its future
    }
  }

  std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<std::function<void()>> queue_;
  bool stopping_ = false;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace diffbench
