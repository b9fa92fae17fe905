#include "ranks.hpp"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdlib>
#include <iostream>
#include <memory>

#include "diffbench/error.hpp"
#include "diffbench/eval/evaluator.hpp"

namespace diffbench {

namespace {

ProcessGroupOptions process_group_options(int rank) {
  ProcessGroupOptions o;
  if (const char* v = std::getenv("DIFFBENCH_DIST_TIMEOUT")) {
    double s = 0;
    size_t used = 0;
    try {
      s = std::stod(v, &used);
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || v[used] != '\0' || !std::isfinite(s) || s <= 0 || s > 1e6)
      throw UsageError(std::string("'") + v + "' is not a number of seconds > 0", "DIFFBENCH_DIST_TIMEOUT");
    o.heartbeat_timeout = std::chrono::milliseconds(static_cast<int64_t>(s * 1000));
  }
  o.join_timeout = std::max<std::chrono::milliseconds>(std::chrono::minutes(5), o.heartbeat_timeout);
  o.on_peer_failure = [rank](int code, const std::string& message) {
    std::cerr << "diffbench: rank " << rank << " stops: " << message << std::endl;
    std::_Exit(code);  // the main thread may be inside a collective that would wait for the dead rank
  };
  return o;
}

}  // namespace

int run_on_ranks(const World& world, const Logger& log, const std::function<int(ProcessGroup*)>& command) {
  std::unique_ptr<ProcessGroup> group;
  if (world.distributed()) {
    group = ProcessGroup::join(world, process_group_options(world.rank));
    log.info(world.describe() + ": joined at " + world.master_addr + ":" + std::to_string(world.master_port));
  }
  try {
    return command(group.get());
  } catch (const diffbench::Interrupted& e) {  // every rank stopped after its batch: 128 + the signal
    if (group) group->fail(e.exit_code(), e.what());
    throw;
  } catch (const diffbench::Error& e) {
    if (group) group->fail(e.exit_code(), e.what());
    throw;
  } catch (const std::exception& e) {
    if (group) group->fail(3, std::string(e.what()).substr(0, std::string(e.what()).find('\n')));
    throw;
  }
}

}  // namespace diffbench
