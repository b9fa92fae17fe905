// The processes of a multi-process run (dist/world.hpp), joined through LibTorch's c10d: a TCPStore
// for rendezvous (served by rank 0, or by torchrun's agent) and a Gloo process group for the
// collectives. What they exchange are results on the host (images as uint8, JSON), so Gloo serves
// GPU runs as well.
//
// A watchdog thread on every rank beats a heartbeat in the store and watches the others': a rank
// that reports a failure (fail()) or stops beating for `heartbeat_timeout` (killed, or its machine
// lost) makes every other rank call `on_peer_failure` with a message naming that rank and the cause.
// The command's callback prints it and ends the process, so no rank waits forever for a dead one.
#pragma once

#include <chrono>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include "diffbench/dist/world.hpp"

namespace diffbench {

struct ProcessGroupOptions {
  // A rank whose heartbeat has not moved for this long is taken for dead.
  std::chrono::milliseconds heartbeat_timeout{std::chrono::seconds(60)};
  // How long a rank waits for the others to join (they may start later or load slower).
  std::chrono::milliseconds join_timeout{std::chrono::minutes(10)};
  // Called on the watchdog thread, at most once, with the failed rank's exit code and message.
  std::function<void(int exit_code, const std::string& message)> on_peer_failure;
};

class ProcessGroup {
 public:
  // Joins the other ranks of `world` (world.distributed() must hold). A store or peer that does not
  // answer within join_timeout is a RuntimeFailure naming MASTER_ADDR:MASTER_PORT.
  static std::unique_ptr<ProcessGroup> join(const World& world, ProcessGroupOptions options);
  ~ProcessGroup();  // stops the watchdog; rank 0, when it serves the store, waits for the others to finish

  const World& world() const;
  bool root() const { return world().rank == 0; }

  // Rank 0 gets every rank's bytes in rank order; the other ranks get an empty vector.
  std::vector<std::string> gather(const std::string& bytes);
  // Rank 0 gets every rank's tensor (its own first, on the CPU, bit for bit), which may differ in
  // their first dimension; the other ranks get an empty vector.
  std::vector<at::Tensor> gather(const at::Tensor& tensor);
  // Every rank gets rank 0's bytes (the other ranks' `bytes` are ignored).
  std::string broadcast(const std::string& bytes);

  // Stopping together (a signal to one rank or to all): request_stop publishes the signal's number
  // in the store; every rank's watchdog reads it within a heartbeat period, and stop_requested()
  // returns it (0: none) so each rank ends after the batch under way. settle() says that this rank
  // times no more batches (it stopped, or waits for the others' results); wait_settled() waits until
  // every other rank has settled, finished or failed, at most `timeout`. A rank stays settled for the
  // group's life: only `eval`, one evaluation per group, stops by signal.
  void request_stop(int signal);
  int stop_requested() const;
  void settle();
  void wait_settled(std::chrono::milliseconds timeout);

  // Tells the other ranks that this one failed (they end with `exit_code` and a message naming this
  // rank and `message`); when this rank serves the store, it waits a little for them to read it.
  void fail(int exit_code, const std::string& message);
  // This rank is done with the group: the others stop watching its heartbeat.
  void finish();

 private:
  struct Impl;
  explicit ProcessGroup(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace diffbench
