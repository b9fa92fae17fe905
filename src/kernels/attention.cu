// Tensors in and out of the head-dim-40 attention kernels (attention_hd40.cuh). Built for sm_90a alone
// (CMakeLists.txt: an object library of its own), so attention_hd40_supported asks for compute capability 9.0.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>

#include "attention.hpp"
#include "attention_hd40.cuh"
#include "attention_operands.cuh"

namespace diffbench::kernels {

bool attention_hd40_device(int device_index) {
  const cudaDeviceProp* props = at::cuda::getDeviceProperties(device_index);
  return props->major == 9 && props->minor == 0;  // sm_90a code runs on 9.0 alone
}

bool attention_hd40_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  return attention_operands_fit(q, k, v, hd40::kHead) && attention_hd40_device(q.device().index());
}

at::Tensor attention_hd40(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(attention_hd40_supported(q, k, v), "attention_hd40: unsupported input");
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t batch = q.size(0), heads = q.size(1), lq = q.size(2), lk = k.size(2);
  const int64_t tiles = (lk + hd40::kKeys - 1) / hd40::kKeys;
  at::Tensor out = at::empty({batch, lq, heads * hd40::kHead}, q.options());
  at::Tensor packed = at::empty({batch * heads * tiles * hd40::kTileBytes / 2}, q.options());
  hd40::Params p{};
  p.q = reinterpret_cast<const __half*>(q.data_ptr());
  p.k = reinterpret_cast<const __half*>(k.data_ptr());
  p.v = reinterpret_cast<const __half*>(v.data_ptr());
  p.o = reinterpret_cast<__half*>(out.data_ptr());
  p.packed = reinterpret_cast<const uint4*>(packed.data_ptr());
  p.q_batch = q.stride(0), p.q_head = q.stride(1), p.q_seq = q.stride(2);
  p.k_batch = k.stride(0), p.k_head = k.stride(1), p.k_seq = k.stride(2);
  p.v_batch = v.stride(0), p.v_head = v.stride(1), p.v_seq = v.stride(2);
  p.o_batch = lq * heads * hd40::kHead, p.o_head = hd40::kHead, p.o_seq = heads * hd40::kHead;
  p.heads = static_cast<int>(heads);
  p.lq = static_cast<int>(lq);
  p.lk = static_cast<int>(lk);
  p.tiles = static_cast<int>(tiles);
  p.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(hd40::kHead)));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const unsigned bh = static_cast<unsigned>(batch * heads);
  hd40::pack_kv_tiles<<<dim3(static_cast<unsigned>(tiles), bh), 128, 0, stream>>>(
      p, reinterpret_cast<uint4*>(packed.data_ptr()), p.tiles);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  C10_CUDA_CHECK(cudaFuncSetAttribute(hd40::attention, cudaFuncAttributeMaxDynamicSharedMemorySize, hd40::kSmemBytes));
  const dim3 grid(static_cast<unsigned>((lq + hd40::kRows - 1) / hd40::kRows), bh);
  hd40::attention<<<grid, hd40::kThreads, hd40::kSmemBytes, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace diffbench::kernels
