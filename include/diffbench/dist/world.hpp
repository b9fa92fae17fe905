// Which process of a multi-process run this is, read from the launcher's environment: torchrun
// (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR, MASTER_PORT), Open MPI's mpirun
// (OMPI_COMM_WORLD_RANK/SIZE/LOCAL_RANK) or Slurm's srun (SLURM_PROCID/NTASKS/LOCALID), the last two
// with MASTER_ADDR/MASTER_PORT from the environment. No launcher: one process, rank 0 of 1.
// This folder (dist/) knows processes and LibTorch's c10d only; eval/ decides what they exchange.
#pragma once

#include <functional>
#include <string>

namespace diffbench {

struct World {
  int rank = 0;
  int size = 1;
  int local_rank = 0;          // the process's index on its machine: its GPU under --device cuda
  std::string launcher = "none";  // "torchrun", "mpirun", "srun" or "none"
  std::string master_addr;     // where rank 0 (or torchrun's agent) serves the rendezvous store
  int master_port = 0;
  // torchrun's agent already serves the store on MASTER_PORT (TORCHELASTIC_USE_AGENT_STORE=True):
  // every rank connects to it as a client. Otherwise rank 0 serves it.
  bool agent_store = false;
  int restart_count = 0;       // torchrun's TORCHELASTIC_RESTART_COUNT: keys of a restarted attempt are apart

  bool distributed() const { return size > 1; }
  std::string describe() const;  // "rank 1 of 2 (torchrun, local rank 1)"
};

// Reads the launcher's variables through `getenv` (std::getenv by default). A launcher's variable
// that is not a number in range, or a multi-process run without MASTER_ADDR / MASTER_PORT, is a
// UsageError naming the variable.
using EnvLookup = std::function<const char*(const char*)>;
World detect_world(const EnvLookup& getenv = {});

// The device a rank runs on: "cuda" (no index) means cuda:LOCAL_RANK in a multi-process run; any
// other name is kept.
std::string rank_device(const std::string& device, const World& world);

}  // namespace diffbench
