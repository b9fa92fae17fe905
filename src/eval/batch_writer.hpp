// Writes eval's finished timed batches (their PNGs, then their journal line) on a thread of its own,
// in the order they finished, so that on a GPU one batch's PNGs are encoded while the next batch is
// generated (issue 17: PNG encoding was about 0.7 s of the protocol's 16 s, all of it between timed
// batches). On the CPU the pipelines' own threads are what is timed, so there every batch is written
// before the next one starts (`overlap` false): the timing is never shared with the encoder.
//
// A batch is durable (PNGs on disk, journal line fsync'ed) only after drain(); whoever reads a
// batch's PNGs back, or reports how many batches are kept, drains first. The first write error is
// rethrown by the next push() or drain().
#pragma once

#include <condition_variable>
#include <cstddef>
#include <deque>
#include <exception>
#include <filesystem>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include <ATen/ATen.h>

#include "eval_journal.hpp"

namespace diffbench {

class BatchWriter {
 public:
  BatchWriter(const EvalJournal& journal, bool overlap);
  ~BatchWriter();  // waits for the batches pushed (errors are dropped: call drain() to see them)
  BatchWriter(const BatchWriter&) = delete;
  BatchWriter& operator=(const BatchWriter&) = delete;

  // Queues batch `b` with its images (uint8 [n,3,H,W], any device: copied to the host here) to be
  // written to `files`, one per image; no images (undefined) writes only the journal line.
  void push(JournalBatch b, std::vector<std::filesystem::path> files, const at::Tensor& images);
  // Returns when every batch pushed is written and journaled; rethrows the first write error.
  void drain();
  size_t written() const;  // batches written and journaled so far

 private:
  struct Job {
    JournalBatch batch;
    std::vector<std::filesystem::path> files;
    at::Tensor images;  // on the host
  };
  void work();

  const EvalJournal& journal_;
  const bool overlap_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::deque<Job> queue_;
  bool busy_ = false;  // the thread is writing a job taken off the queue
  bool stopping_ = false;
  size_t written_ = 0;
  std::exception_ptr error_;
  std::thread thread_;  // last: started once the members above exist
};

}  // namespace diffbench
