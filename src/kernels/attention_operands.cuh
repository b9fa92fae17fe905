// The operands the own attention kernels take (attention_hd40, attention_short): q [B, H, Lq, d] and k, v
// [B, H, Lk, d], half on one CUDA device, the head dimension contiguous, every other stride a whole number of
// 16-byte vectors, 16-byte aligned; 1 ≤ Lq, Lk < 2³⁰ and B·H < 65,536 (the launch grid's y).
#pragma once

#include <ATen/ATen.h>

#include <cstdint>

#include "convert.cuh"  // aligned16

namespace diffbench::kernels {

inline bool attention_rows_fit(const at::Tensor& t, int64_t d) {
  if (t.dim() != 4 || t.size(3) != d || t.stride(3) != 1) return false;
  for (int i = 0; i < 3; ++i)
    if (t.stride(i) % 8 != 0) return false;
  return aligned16(t);
}

inline bool attention_operands_fit(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t d) {
  if (!q.is_cuda() || q.scalar_type() != at::kHalf || k.scalar_type() != at::kHalf || v.scalar_type() != at::kHalf)
    return false;
  if (k.device() != q.device() || v.device() != q.device()) return false;
  if (!attention_rows_fit(q, d) || !attention_rows_fit(k, d) || !attention_rows_fit(v, d)) return false;
  if (k.size(0) != q.size(0) || k.size(1) != q.size(1) || !k.sizes().equals(v.sizes())) return false;
  const int64_t limit = int64_t{1} << 30;
  if (q.size(2) <= 0 || k.size(2) <= 0 || q.size(2) >= limit || k.size(2) >= limit) return false;
  return q.size(0) * q.size(1) < 65536;
}

}  // namespace diffbench::kernels
