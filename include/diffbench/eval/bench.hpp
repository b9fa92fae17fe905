// `diffbench bench`: timing whole generations of one pipeline spec after warm-up, with device
// synchronisation, for speed work (per-image median/p90, UNet steps per second, stage split,
// peak memory, UNet calls per image, first-generation latency).
#pragma once

#include <string>

#include <nlohmann/json.hpp>

#include "diffbench/pipeline/spec.hpp"
#include "diffbench/log.hpp"

namespace diffbench {

struct BenchOptions {
  PipelineSpec spec;
  int batch_size = 1;
  int runs = 5;
  int warmup = 1;
  uint64_t seed = 42;
  std::string prompt = "A man is in a kitchen making pizzas.";
  bool cuda_graphs = true;
  bool channels_last = true;
  bool cudnn_benchmark = false;
  // When set: one extra generation under the Kineto profiler, its Chrome trace written here and
  // the GPU kernel time per kernel name summarised in the JSON ("profile"). Kernels inside a
  // CUDA graph replay are not traced one by one: profile with cuda_graphs off.
  std::string profile;
};

// Returns the "diffbench.bench/1" JSON document.
nlohmann::json run_bench(const BenchOptions& options, const Logger& log);

// A few lines for the terminal.
std::string render_bench(const nlohmann::json& bench);

}  // namespace diffbench
