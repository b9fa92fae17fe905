#include "batch_writer.hpp"

#include <utility>

#include "diffbench/io/image.hpp"

namespace diffbench {

namespace fs = std::filesystem;

BatchWriter::BatchWriter(const EvalJournal& journal, bool overlap)
    : journal_(journal), overlap_(overlap), thread_([this] { work(); }) {}

BatchWriter::~BatchWriter() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  changed_.notify_all();
  thread_.join();
}

void BatchWriter::push(JournalBatch b, std::vector<fs::path> files, const at::Tensor& images) {
  Job job{std::move(b), std::move(files), images.defined() ? images.cpu() : at::Tensor()};
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (error_) std::rethrow_exception(error_);
    queue_.push_back(std::move(job));
  }
  changed_.notify_all();
  if (!overlap_) drain();
}

void BatchWriter::drain() {
  std::unique_lock<std::mutex> lock(mutex_);
  changed_.wait(lock, [&] { return (queue_.empty() && !busy_) || error_; });
  if (error_) std::rethrow_exception(error_);
}

size_t BatchWriter::written() const {
  std::lock_guard<std::mutex> lock(mutex_);
  return written_;
}

void BatchWriter::work() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return !queue_.empty() || stopping_; });
    if (queue_.empty() || error_) {
      if (stopping_) return;
      queue_.clear();  // after an error nothing more is written: the journal keeps what is on disk
      changed_.notify_all();
      continue;
    }
    Job job = std::move(queue_.front());
    queue_.pop_front();
    busy_ = true;
    lock.unlock();
    std::exception_ptr error;
    try {
      if (job.images.defined()) {
        fs::create_directories(job.files.front().parent_path());
        write_pngs(job.files, job.images.unbind(0));  // on several threads
      }
      journal_.append(job.batch);  // after its PNGs: a journaled batch's images are on disk
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    busy_ = false;
    if (error) {
      error_ = error;
      queue_.clear();
    } else {
      ++written_;
    }
    changed_.notify_all();
  }
}

}  // namespace diffbench
