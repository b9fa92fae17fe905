// Launch detection (dist/world.hpp) from a launcher's environment, and how eval shards its prompts
// over the ranks (eval/distributed_eval.hpp).
#include <map>

#include <gtest/gtest.h>

#include "diffbench/dist/world.hpp"
#include "diffbench/error.hpp"
#include "eval/distributed_eval.hpp"

using namespace diffbench;

namespace {

World detect(const std::map<std::string, std::string>& env) {
  return detect_world([&env](const char* name) -> const char* {
    const auto it = env.find(name);
    return it == env.end() ? nullptr : it->second.c_str();
  });
}

// The UsageError's `where` (the variable it names) of detect(env).
std::string error_where(const std::map<std::string, std::string>& env) {
  try {
    detect(env);
  } catch (const UsageError& e) {
    return e.where();
  }
  return "no error";
}

}  // namespace

TEST(World, NoLauncherIsOneProcess) {
  const World w = detect({{"MASTER_ADDR", "10.0.0.1"}, {"MASTER_PORT", "29500"}});
  EXPECT_FALSE(w.distributed());
  EXPECT_EQ(w.rank, 0);
  EXPECT_EQ(w.size, 1);
  EXPECT_EQ(w.launcher, "none");
  // A launcher of one process is one process too, whatever else is set.
  EXPECT_FALSE(detect({{"RANK", "0"}, {"WORLD_SIZE", "1"}}).distributed());
}

TEST(World, Torchrun) {
  const World w = detect({{"RANK", "3"}, {"WORLD_SIZE", "4"}, {"LOCAL_RANK", "1"}, {"MASTER_ADDR", "node0"},
                          {"MASTER_PORT", "29400"}, {"TORCHELASTIC_USE_AGENT_STORE", "True"},
                          {"TORCHELASTIC_RESTART_COUNT", "2"},
                          // torchrun's variables win over a surrounding Slurm job's
                          {"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "1"}});
  EXPECT_TRUE(w.distributed());
  EXPECT_EQ(w.launcher, "torchrun");
  EXPECT_EQ(w.rank, 3);
  EXPECT_EQ(w.size, 4);
  EXPECT_EQ(w.local_rank, 1);
  EXPECT_EQ(w.master_addr, "node0");
  EXPECT_EQ(w.master_port, 29400);
  EXPECT_TRUE(w.agent_store);
  EXPECT_EQ(w.restart_count, 2);
  EXPECT_EQ(w.describe(), "rank 3 of 4 (torchrun, local rank 1)");
}

TEST(World, MpirunAndSrun) {
  const World m = detect({{"OMPI_COMM_WORLD_RANK", "1"}, {"OMPI_COMM_WORLD_SIZE", "2"},
                          {"OMPI_COMM_WORLD_LOCAL_RANK", "1"}, {"MASTER_ADDR", "127.0.0.1"}, {"MASTER_PORT", "1234"}});
  EXPECT_EQ(m.launcher, "mpirun");
  EXPECT_EQ(m.rank, 1);
  EXPECT_EQ(m.size, 2);
  EXPECT_EQ(m.local_rank, 1);
  EXPECT_FALSE(m.agent_store);  // rank 0 serves the store
  const World s = detect({{"SLURM_PROCID", "5"}, {"SLURM_NTASKS", "8"}, {"SLURM_LOCALID", "1"},
                          {"MASTER_ADDR", "gpu01"}, {"MASTER_PORT", "29500"}});
  EXPECT_EQ(s.launcher, "srun");
  EXPECT_EQ(s.rank, 5);
  EXPECT_EQ(s.size, 8);
  EXPECT_EQ(s.local_rank, 1);
  EXPECT_EQ(s.master_addr, "gpu01");
}

TEST(World, BadVariablesAreUsageErrorsNamingThem) {
  EXPECT_EQ(error_where({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_PORT", "29500"}}), "MASTER_ADDR");
  EXPECT_EQ(error_where({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}}), "MASTER_PORT");
  EXPECT_EQ(error_where({{"RANK", "0"}, {"WORLD_SIZE", "2"}, {"MASTER_ADDR", "h"}, {"MASTER_PORT", "70000"}}),
            "MASTER_PORT");
  EXPECT_EQ(error_where({{"RANK", "x"}, {"WORLD_SIZE", "2"}}), "RANK");
  EXPECT_EQ(error_where({{"RANK", "-1"}, {"WORLD_SIZE", "2"}}), "RANK");
  EXPECT_EQ(error_where({{"RANK", "2"}, {"WORLD_SIZE", "2"}}), "RANK");  // not below the size
  EXPECT_EQ(error_where({{"RANK", "0"}}), "WORLD_SIZE");
  EXPECT_EQ(error_where({{"RANK", "0"}, {"WORLD_SIZE", "0"}}), "WORLD_SIZE");
  EXPECT_EQ(error_where({{"SLURM_PROCID", "0"}, {"SLURM_NTASKS", "2 "}}), "SLURM_NTASKS");
}

TEST(World, CudaMeansTheLocalRanksGpu) {
  World w;
  EXPECT_EQ(rank_device("cuda", w), "cuda");  // one process: unchanged
  w.size = 2;
  w.rank = w.local_rank = 1;
  EXPECT_EQ(rank_device("cuda", w), "cuda:1");
  EXPECT_EQ(rank_device("cuda:0", w), "cuda:0");  // an explicit GPU is kept
  EXPECT_EQ(rank_device("cpu", w), "cpu");
}

TEST(Shard, ContiguousWholeBatches) {
  auto shard = [](size_t prompts, int batch, int rank, int size) {
    World w;
    w.rank = rank;
    w.size = size;
    const Shard s = shard_prompts(prompts, batch, w);
    return std::pair{s.first, s.end};
  };
  // 10 prompts in batches of 4: batches [0,4) [4,8) [8,10); the first rank takes the extra batch.
  EXPECT_EQ(shard(10, 4, 0, 2), (std::pair<size_t, size_t>{0, 8}));
  EXPECT_EQ(shard(10, 4, 1, 2), (std::pair<size_t, size_t>{8, 10}));
  // 32 prompts, batches of 1, 3 ranks: 11 + 11 + 10, covering every prompt once.
  EXPECT_EQ(shard(32, 1, 0, 3), (std::pair<size_t, size_t>{0, 11}));
  EXPECT_EQ(shard(32, 1, 1, 3), (std::pair<size_t, size_t>{11, 22}));
  EXPECT_EQ(shard(32, 1, 2, 3), (std::pair<size_t, size_t>{22, 32}));
  // Every shard starts on a batch boundary of the one-process run.
  for (int size = 1; size <= 7; ++size) {
    size_t next = 0;
    for (int r = 0; r < size; ++r) {
      const auto [first, end] = shard(29, 3, r, size);
      EXPECT_EQ(first, next);
      EXPECT_EQ(first % 3, 0u);
      EXPECT_GT(end, first);
      next = end;
    }
    EXPECT_EQ(next, 29u);
  }
  // Fewer batches than ranks: a rank would have nothing to do.
  World w;
  w.size = 3;
  EXPECT_THROW(shard_prompts(8, 4, w), UsageError);
}
