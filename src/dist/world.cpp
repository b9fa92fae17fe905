#include "diffbench/dist/world.hpp"

#include <cerrno>
#include <cstdlib>
#include <limits>
#include <optional>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

// A non-negative integer below `bound` from the variable `name`, or nullopt when it is unset.
std::optional<int> env_int(const EnvLookup& getenv, const char* name, long bound) {
  const char* v = getenv(name);
  if (!v) return std::nullopt;
  const std::string s(v);
  char* end = nullptr;
  errno = 0;
  const long n = std::strtol(s.c_str(), &end, 10);
  if (s.empty() || *end != '\0' || errno != 0 || n < 0 || n >= bound)
    throw UsageError("'" + s + "' is not an integer in [0, " + std::to_string(bound) + ")", name);
  return static_cast<int>(n);
}

struct LauncherVars {
  const char* launcher;
  const char *rank, *size, *local_rank;
};

}  // namespace

std::string World::describe() const {
  return "rank " + std::to_string(rank) + " of " + std::to_string(size) + " (" + launcher + ", local rank " +
         std::to_string(local_rank) + ")";
}

World detect_world(const EnvLookup& lookup) {
  const EnvLookup getenv = lookup ? lookup : EnvLookup([](const char* n) { return std::getenv(n); });
  constexpr long kMaxProcesses = 1 << 20;
  World w;
  for (const LauncherVars& l : {LauncherVars{"torchrun", "RANK", "WORLD_SIZE", "LOCAL_RANK"},
                                LauncherVars{"mpirun", "OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE",
                                             "OMPI_COMM_WORLD_LOCAL_RANK"},
                                LauncherVars{"srun", "SLURM_PROCID", "SLURM_NTASKS", "SLURM_LOCALID"}}) {
    const auto rank = env_int(getenv, l.rank, kMaxProcesses);
    if (!rank) continue;
    const auto size = env_int(getenv, l.size, kMaxProcesses + 1);
    if (!size || *size < 1)
      throw UsageError(std::string("is ") + (size ? "0" : "not set") + " although " + l.rank + " is set", l.size);
    if (*rank >= *size)
      throw UsageError(std::string("rank ") + std::to_string(*rank) + " is not below " + l.size + " = " +
                           std::to_string(*size), l.rank);
    w.rank = *rank;
    w.size = *size;
    w.local_rank = env_int(getenv, l.local_rank, kMaxProcesses).value_or(0);
    w.launcher = l.launcher;
    break;
  }
  if (!w.distributed()) return World{};  // one process: exactly as without a launcher
  const char* addr = getenv("MASTER_ADDR");
  if (!addr || !*addr)
    throw UsageError("is not set: a multi-process run (" + w.launcher +
                         ") needs the rendezvous host in MASTER_ADDR and port in MASTER_PORT (docs/distributed.md)",
                     "MASTER_ADDR");
  w.master_addr = addr;
  const auto port = env_int(getenv, "MASTER_PORT", 65536);
  if (!port || *port == 0)
    throw UsageError(std::string(port ? "is 0" : "is not set") + ": a multi-process run (" + w.launcher +
                         ") needs the rendezvous port in MASTER_PORT (docs/distributed.md)",
                     "MASTER_PORT");
  w.master_port = *port;
  const char* agent = getenv("TORCHELASTIC_USE_AGENT_STORE");
  w.agent_store = agent && std::string(agent) == "True";
  w.restart_count = env_int(getenv, "TORCHELASTIC_RESTART_COUNT", std::numeric_limits<int>::max()).value_or(0);
  return w;
}

std::string rank_device(const std::string& device, const World& world) {
  if (world.distributed() && device == "cuda") return "cuda:" + std::to_string(world.local_rank);
  return device;
}

}  // namespace diffbench
