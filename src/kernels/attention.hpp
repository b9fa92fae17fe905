// Softmax attention at head dim 40 (SD 1.x's first level) by own kernels for Hopper (attention_hd40.cuh):
// LibTorch's fused kernels compute a head of 40 as one of 64.
#pragma once

#include <ATen/ATen.h>

namespace diffbench::kernels {

// Whether attention_hd40 takes q [B, H, Lq, 40] and k, v [B, H, Lk, 40]: half on one CUDA device, the head
// dimension contiguous, every other stride a whole number of 16-byte vectors, 16-byte aligned; a device of
// compute capability 9.0 (the kernels are built for sm_90a alone).
bool attention_hd40_device(int device_index);  // compute capability 9.0
bool attention_hd40_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// softmax(q·kᵀ / √40)·v as [B, Lq, H·40] (the layout the output projection reads): each row's maximum in
// float, the probabilities in half as the product with v takes them, their sum by that same product (float).
at::Tensor attention_hd40(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace diffbench::kernels
