#include "diffbench/pipeline/device.hpp"

#include <sys/resource.h>

#include <algorithm>
#include <fstream>
#include <sstream>

#include <ATen/Context.h>
#include <torch/cuda.h>
#if __has_include(<c10/cuda/CUDACachingAllocator.h>)
#include <c10/cuda/CUDACachingAllocator.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#define DIFFBENCH_HAVE_CUDA_ALLOCATOR 1
#endif

#include "diffbench/error.hpp"

namespace diffbench {

at::Device parse_device(const std::string& name) {
  if (name == "cpu") return at::kCPU;
  if (name.rfind("cuda", 0) == 0) {
    int index = 0;
    if (name.size() > 4) {
      if (name[4] != ':' || name.size() == 5) throw UsageError("device must be cpu, cuda or cuda:N", "--device");
      try {
        index = std::stoi(name.substr(5));
      } catch (const std::exception&) {
        throw UsageError("device must be cpu, cuda or cuda:N", "--device");
      }
    }
    if (!torch::cuda::is_available()) throw UsageError("CUDA device requested but LibTorch sees no GPU", "--device");
    if (index < 0 || index >= static_cast<int>(torch::cuda::device_count()))
      throw UsageError("no CUDA device " + std::to_string(index), "--device");
    return at::Device(at::kCUDA, static_cast<at::DeviceIndex>(index));
  }
  throw UsageError("unknown device '" + name + "' (cpu, cuda or cuda:N)", "--device");
}

at::ScalarType parse_dtype(const std::string& name, const at::Device& device) {
  at::ScalarType t;
  if (name == "fp32") t = at::kFloat;
  else if (name == "fp16") t = at::kHalf;
  else if (name == "bf16") t = at::kBFloat16;
  else throw UsageError("unknown dtype '" + name + "' (fp32, fp16 or bf16)", "--dtype");
  if (t != at::kFloat && !device.is_cuda())
    throw UsageError(name + " runs on CUDA only; use --dtype fp32 on the CPU", "--dtype");
  return t;
}

bool is_dtype_name(const std::string& name) {
  return name == "fp32" || name == "fp16" || name == "bf16" || name == "fp8";
}

bool has_fp8_gemms(const at::Device& device) {
  if (!device.is_cuda()) return true;
#ifdef DIFFBENCH_HAVE_CUDA_ALLOCATOR
  cudaDeviceProp prop{};
  if (cudaGetDeviceProperties(&prop, device.index() < 0 ? 0 : device.index()) != cudaSuccess) return false;
  return prop.major * 10 + prop.minor >= 89;
#else
  return false;
#endif
}

std::string dtype_name(at::ScalarType t) {
  switch (t) {
    case at::kFloat: return "fp32";
    case at::kHalf: return "fp16";
    case at::kBFloat16: return "bf16";
    default: return c10::toString(t);
  }
}

std::future<void> warm_up_device_async(const at::Device& device) {
  if (!device.is_cuda()) {
    std::promise<void> ready;
    ready.set_value();
    return ready.get_future();
  }
  return std::async(std::launch::async, [device] {
    c10::InferenceMode guard;
#ifdef DIFFBENCH_HAVE_CUDA_ALLOCATOR
    c10::cuda::CUDAGuard device_guard(device);
#endif
    const auto half = at::TensorOptions().device(device).dtype(at::kHalf);
    const at::Tensor x = at::ones({1, 8, 8, 8}, half).contiguous(at::MemoryFormat::ChannelsLast);
    const at::Tensor w = at::ones({8, 8, 3, 3}, half).contiguous(at::MemoryFormat::ChannelsLast);
    at::conv2d(x, w, {}, 1, 1);                   // cuDNN
    at::linear(at::ones({8, 64}, half), at::ones({8, 64}, half));  // cuBLAS(Lt)
    device_synchronize(device);
  });
}

void device_synchronize(const at::Device& device) {
  if (device.is_cuda()) torch::cuda::synchronize(device.index());
}

void use_own_stream(const at::Device& device) {
#ifdef DIFFBENCH_HAVE_CUDA_ALLOCATOR
  if (device.is_cuda())
    c10::cuda::setCurrentCUDAStream(c10::cuda::getStreamFromPool(/*isHighPriority=*/false, device.index()));
#else
  (void)device;
#endif
}

void reset_peak_memory(const at::Device& device) {
#ifdef DIFFBENCH_HAVE_CUDA_ALLOCATOR
  if (device.is_cuda()) {
    at::globalContext().lazyInitDevice(c10::DeviceType::CUDA);  // the allocator's statistics exist once it does
    c10::cuda::CUDACachingAllocator::resetPeakStats(device.index() < 0 ? 0 : device.index());
  }
#else
  (void)device;
#endif
}

std::pair<int64_t, std::string> peak_memory(const at::Device& device) {
#ifdef DIFFBENCH_HAVE_CUDA_ALLOCATOR
  if (device.is_cuda()) {
    at::globalContext().lazyInitDevice(c10::DeviceType::CUDA);
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(device.index() < 0 ? 0 : device.index());
    return {stats.allocated_bytes[0].peak, "cuda"};
  }
#endif
  struct rusage ru {};
  ::getrusage(RUSAGE_SELF, &ru);
  return {static_cast<int64_t>(ru.ru_maxrss) * 1024, "host-rss"};
}

int64_t free_memory(const at::Device& device) {
#ifdef DIFFBENCH_HAVE_CUDA_ALLOCATOR
  if (device.is_cuda()) {
    const int index = device.index() < 0 ? 0 : device.index();
    c10::cuda::CUDAGuard guard(static_cast<c10::DeviceIndex>(index));
    size_t free = 0, total = 0;
    if (cudaMemGetInfo(&free, &total) != cudaSuccess) return -1;
    at::globalContext().lazyInitDevice(c10::DeviceType::CUDA);  // whichever thread touched the device first
    const auto stats = c10::cuda::CUDACachingAllocator::getDeviceStats(index);
    const int64_t cached_unused = stats.reserved_bytes[0].current - stats.allocated_bytes[0].current;
    return static_cast<int64_t>(free) + std::max<int64_t>(cached_unused, 0);
  }
#endif
  (void)device;
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    std::string key;
    int64_t kib = 0;
    if (fields >> key >> kib && key == "MemAvailable:") return kib * 1024;
  }
  return -1;
}

bool is_out_of_memory(const c10::Error& e) {
  if (dynamic_cast<const c10::OutOfMemoryError*>(&e)) return true;
  const std::string what = e.what_without_backtrace();
  return what.find("can't allocate memory") != std::string::npos || what.find("not enough memory") != std::string::npos;
}

}  // namespace diffbench
