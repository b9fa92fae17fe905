// Softmax attention over few keys by an own kernel (short_attention.cu): cross-attention to the text's 77
// tokens and SD 1.x's 64-token self-attention at the 8² level. LibTorch's cuDNN SDPA zeroes a buffer with a
// memset before each call, and in a CUDA graph the GPU idles ~5 µs after each memset node
// (docs/performance.md, round 16); this kernel needs none.
#pragma once

#include <ATen/ATen.h>

namespace diffbench::kernels {

constexpr int64_t kShortAttentionMaxKeys = 80;

// Whether attention_short takes q [B, H, Lq, D] and k, v [B, H, Lk, D]: half on one CUDA device of compute
// capability 8.0 or later, D one of 40, 64, 80, 160, 1 ≤ Lk ≤ kShortAttentionMaxKeys, the head dimension
// contiguous, every other stride a whole number of 16-byte vectors, 16-byte aligned.
bool attention_short_device(int device_index);  // compute capability 8.0 or later
bool attention_short_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

// softmax(q·kᵀ / √D)·v as [B, Lq, H·D] (the layout the output projection reads): a row's scores in float,
// its probabilities in half as the product with v takes them, their sum in float.
at::Tensor attention_short(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v);

}  // namespace diffbench::kernels
