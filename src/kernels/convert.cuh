// float <-> __half / __nv_bfloat16 for the kernels that load 16-bit values and compute in float (float
// itself passes through, so a kernel templated on the element type reads and writes every one alike), and
// the 16-byte alignment their vector loads need.
#pragma once

#include <cstdint>

#include <ATen/ATen.h>
#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace diffbench::kernels {

__device__ __forceinline__ float to_float(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_float(__nv_bfloat16 v) { return __bfloat162float(v); }
template <typename T> __device__ __forceinline__ T from_float(float v);
template <> __device__ __forceinline__ __half from_float<__half>(float v) { return __float2half_rn(v); }
template <> __device__ __forceinline__ __nv_bfloat16 from_float<__nv_bfloat16>(float v) { return __float2bfloat16_rn(v); }
__device__ __forceinline__ float to_float(float v) { return v; }
template <> __device__ __forceinline__ float from_float<float>(float v) { return v; }

inline bool aligned16(const at::Tensor& t) { return reinterpret_cast<uintptr_t>(t.data_ptr()) % 16 == 0; }

}  // namespace diffbench::kernels
