// Devices, dtypes, synchronisation and memory statistics.
#pragma once

#include <cstdint>
#include <future>
#include <string>
#include <utility>

#include <ATen/ATen.h>

namespace diffbench {

// Parses "cpu", "cuda", "cuda:N"; CUDA when LibTorch sees no GPU is a UsageError.
at::Device parse_device(const std::string& name);
// "fp32" | "fp16" | "bf16" (float16 and bfloat16 need a CUDA device).
at::ScalarType parse_dtype(const std::string& name, const at::Device& device);
std::string dtype_name(at::ScalarType t);
// What a spec's dtype or --dtype may name: the three above and "fp8" (the UNet's GEMMs over the image's
// tokens in float8 e4m3, everything else in fp16 on CUDA and fp32 on the CPU: PipelineSpec::model_options).
bool is_dtype_name(const std::string& name);
inline constexpr const char* kDtypeNames = "fp32, fp16, bf16 or fp8";
// Whether fp8 GEMMs run on `device`: the CPU (the e4m3 operands multiplied in float32: for checking images,
// not speed), or a GPU of compute capability 8.9 or later (fp8 tensor cores: Ada, Hopper and newer).
bool has_fp8_gemms(const at::Device& device);

// Starts CUDA on `device` on a thread of its own: the context, the cuBLAS handle and cuDNN (a tiny
// half-precision convolution loads its libraries), so that a caller reading weight files meanwhile
// does not wait for them later. Ready at once on the CPU. Errors come out of get().
std::future<void> warm_up_device_async(const at::Device& device);

// Waits for all queued work on `device` (no-op on the CPU).
void device_synchronize(const at::Device& device);

// Sends the calling thread's later work on `device` to a CUDA stream of its own, so that it neither
// waits for nor holds up the work other threads put on the default stream (nothing off CUDA).
void use_own_stream(const at::Device& device);

// Peak memory since the last reset: the CUDA caching allocator's peak of allocated bytes on
// CUDA ("cuda"), the process's peak resident set on the CPU ("host-rss", never reset).
void reset_peak_memory(const at::Device& device);
std::pair<int64_t, std::string> peak_memory(const at::Device& device);

// Memory free for new allocations now: on CUDA the driver's free memory plus what the caching
// allocator holds unused; on the CPU the kernel's MemAvailable (/proc/meminfo). -1 if unknown.
int64_t free_memory(const at::Device& device);

// True for LibTorch's allocation failures: c10::OutOfMemoryError (CUDA) and the CPU allocator's
// c10::Error "can't allocate memory: you tried to allocate N bytes", which the command reports
// as "out of memory" (exit 2) with that size instead of as an internal error.
bool is_out_of_memory(const c10::Error& e);

}  // namespace diffbench
