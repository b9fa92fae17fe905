// A command run by every process of a multi-process run (torchrun, mpirun, srun: docs/distributed.md).
#pragma once

#include <functional>

#include "diffbench/dist/process_group.hpp"
#include "diffbench/dist/world.hpp"
#include "diffbench/log.hpp"

namespace diffbench {

// Runs `command` on this process, with the group of a multi-process run (null for one process).
// The ranks join first: DIFFBENCH_DIST_TIMEOUT (seconds, default 60) is how long a rank may go
// without a heartbeat before the others take it for dead; a rank that learns of a failed or dead
// rank prints why and ends with that rank's exit code (3 for a dead one). An error on this rank is
// published to the others (they end with its exit code and message) before it propagates.
int run_on_ranks(const World& world, const Logger& log, const std::function<int(ProcessGroup*)>& command);

}  // namespace diffbench
