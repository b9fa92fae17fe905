#include "diffbench/pipeline/environment.hpp"

#include <ATen/Parallel.h>
#include <torch/version.h>
#if __has_include(<c10/cuda/CUDAFunctions.h>)
#include <c10/cuda/CUDAFunctions.h>  // and the CUDA runtime's API
#define DIFFBENCH_HAVE_CUDA_RUNTIME 1
#endif

#include "diffbench/models/blocks/linear.hpp"

namespace diffbench {

nlohmann::json environment_info(const at::Device& device) {
  nlohmann::json env = {{"diffbench", DIFFBENCH_VERSION}, {"libtorch", TORCH_VERSION}, {"device", device.str()}};
  env["threads"] = at::get_num_threads();
  if (device.is_cuda()) env["gemm_plans"] = gemm_plan_rows(device);  // planned GEMM shapes that apply here
#ifdef DIFFBENCH_HAVE_CUDA_RUNTIME
  if (device.is_cuda()) {
    cudaDeviceProp prop{};
    if (cudaGetDeviceProperties(&prop, device.index() < 0 ? 0 : device.index()) == cudaSuccess) env["gpu"] = prop.name;
  }
#endif
  return env;
}

}  // namespace diffbench
