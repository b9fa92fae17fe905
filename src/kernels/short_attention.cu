// Softmax attention over at most 80 keys (short_attention.hpp). A block holds every key and value of one
// head in shared memory (rows past the last key and the head's padding to a whole 16 zero) and 16 query rows
// a warp; a warp computes its rows' scores against all keys at once (mma.sync m16n8k16, float accumulators
// in registers), so the softmax needs no running maximum: the row's maximum, the exponentials, their sum in
// float, the probabilities converted to half in place as the A operand of P·V (the accumulator layout of
// two 8-key tiles is the operand layout of one 16-key step), and the output scaled by the sum's inverse,
// staged through the warp's Q rows in shared memory and stored as 16-byte rows.
#include <ATen/cuda/CUDAContext.h>
#include <c10/cuda/CUDAGuard.h>

#include <cmath>

#include "attention_operands.cuh"
#include "short_attention.hpp"
#include "sm90.cuh"

namespace diffbench::kernels {

namespace {

constexpr int kMaxKeys = static_cast<int>(kShortAttentionMaxKeys);
static_assert(kMaxKeys % 16 == 0, "keys are padded to whole 16-key steps of P·V");

struct Params {
  const __half* q;
  const __half* k;
  const __half* v;
  __half* o;
  int64_t q_batch, q_head, q_seq;
  int64_t k_batch, k_head, k_seq;
  int64_t v_batch, v_head, v_seq;
  int64_t o_batch, o_seq;
  int heads, lq, lk;
  float scale_log2;  // log2(e) / √D
};

template <int D>
struct Shape {
  static constexpr int kPadded = (D + 15) / 16 * 16;  // the head padded to whole 16-wide steps of Q·Kᵀ
  static constexpr int kStride = kPadded + 8;         // a shared row, halves (ldmatrix without bank conflicts)
  static constexpr int kSteps = kPadded / 16;         // Q·Kᵀ's k-steps
  static constexpr int kKeyTiles = kMaxKeys / 8;      // S's 8-key tiles
  static constexpr int kHeadTiles = D / 8;            // P·V's 8-wide output tiles
  static constexpr int kChunks = kPadded / 8;         // 16-byte chunks of a padded row
};

template <int D>
size_t smem_bytes(int warps) {
  return static_cast<size_t>(2 * kMaxKeys + 16 * warps) * Shape<D>::kStride * sizeof(__half);
}

template <int D>
__global__ void __launch_bounds__(128) attention_short_kernel(Params p) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ >= 800
  using namespace sm90;
  using S = Shape<D>;
  extern __shared__ __align__(16) __half smem[];
  __half* ks = smem;
  __half* vs = ks + kMaxKeys * S::kStride;
  __half* qs = vs + kMaxKeys * S::kStride;
  const int warps = static_cast<int>(blockDim.x) / 32;
  const int warp = static_cast<int>(threadIdx.x) / 32, lane = static_cast<int>(threadIdx.x) % 32;
  const int bh = static_cast<int>(blockIdx.y), b = bh / p.heads, h = bh % p.heads;
  const int row0 = static_cast<int>(blockIdx.x) * warps * 16;

  const __half* kg = p.k + b * p.k_batch + h * p.k_head;
  const __half* vg = p.v + b * p.v_batch + h * p.v_head;
  for (int i = static_cast<int>(threadIdx.x); i < kMaxKeys * S::kChunks; i += static_cast<int>(blockDim.x)) {
    const int r = i / S::kChunks, c = (i % S::kChunks) * 8;
    const bool valid = r < p.lk && c < D;
    cp_async16(ks + r * S::kStride + c, valid ? kg + r * p.k_seq + c : kg, valid);
    cp_async16(vs + r * S::kStride + c, valid ? vg + r * p.v_seq + c : vg, valid);
  }
  const __half* qg = p.q + b * p.q_batch + h * p.q_head;
  for (int i = static_cast<int>(threadIdx.x); i < warps * 16 * S::kChunks; i += static_cast<int>(blockDim.x)) {
    const int r = i / S::kChunks, c = (i % S::kChunks) * 8;
    const bool valid = row0 + r < p.lq && c < D;
    cp_async16(qs + r * S::kStride + c, valid ? qg + static_cast<int64_t>(row0 + r) * p.q_seq + c : qg, valid);
  }
  cp_async_commit();
  cp_async_wait_all();
  __syncthreads();
  const int wrow0 = row0 + warp * 16;
  if (wrow0 >= p.lq) return;  // no block-wide barrier follows
  __half* qw = qs + warp * 16 * S::kStride;

  // S = Q·Kᵀ for the warp's 16 rows and all keys.
  float s[S::kKeyTiles][4];
#pragma unroll
  for (int j = 0; j < S::kKeyTiles; ++j) s[j][0] = s[j][1] = s[j][2] = s[j][3] = 0.f;
#pragma unroll
  for (int step = 0; step < S::kSteps; ++step) {
    uint32_t a[4];
    ldmatrix_x4(a, qw + (lane % 16) * S::kStride + step * 16 + (lane / 16) * 8);
#pragma unroll
    for (int j = 0; j < S::kKeyTiles; j += 2) {
      uint32_t kb[4];  // keys j·8.. (k low, k high), then (j+1)·8.. (low, high)
      ldmatrix_x4(kb, ks + (j * 8 + (lane / 16) * 8 + lane % 8) * S::kStride + step * 16 + ((lane / 8) % 2) * 8);
      mma_k16(s[j], a, kb[0], kb[1]);
      mma_k16(s[j + 1], a, kb[2], kb[3]);
    }
  }

  // The softmax of the lane's two rows (lane / 4 and lane / 4 + 8), the keys past the last masked.
  float m0 = -INFINITY, m1 = -INFINITY;
#pragma unroll
  for (int j = 0; j < S::kKeyTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      if (j * 8 + (lane % 4) * 2 + e >= p.lk) s[j][e] = s[j][e + 2] = -INFINITY;
      m0 = fmaxf(m0, s[j][e]);
      m1 = fmaxf(m1, s[j][e + 2]);
    }
  }
  m0 = quad_max(m0) * p.scale_log2;
  m1 = quad_max(m1) * p.scale_log2;
  float l0 = 0.f, l1 = 0.f;
#pragma unroll
  for (int j = 0; j < S::kKeyTiles; ++j) {
#pragma unroll
    for (int e = 0; e < 2; ++e) {
      s[j][e] = exp2_approx(fmaf(s[j][e], p.scale_log2, -m0));
      s[j][e + 2] = exp2_approx(fmaf(s[j][e + 2], p.scale_log2, -m1));
      l0 += s[j][e];
      l1 += s[j][e + 2];
    }
  }
  l0 += __shfl_xor_sync(0xffffffffu, l0, 1);
  l0 += __shfl_xor_sync(0xffffffffu, l0, 2);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 1);
  l1 += __shfl_xor_sync(0xffffffffu, l1, 2);

  // O = P·V, 16 keys a step.
  float o[S::kHeadTiles][4];
#pragma unroll
  for (int n = 0; n < S::kHeadTiles; ++n) o[n][0] = o[n][1] = o[n][2] = o[n][3] = 0.f;
#pragma unroll
  for (int t = 0; t < kMaxKeys / 16; ++t) {
    const uint32_t a[4] = {pack_half2(s[2 * t][0], s[2 * t][1]), pack_half2(s[2 * t][2], s[2 * t][3]),
                           pack_half2(s[2 * t + 1][0], s[2 * t + 1][1]), pack_half2(s[2 * t + 1][2], s[2 * t + 1][3])};
    const __half* vrow = vs + (t * 16 + lane % 16) * S::kStride;
#pragma unroll
    for (int n = 0; n < S::kHeadTiles; n += 2) {
      if (n + 1 < S::kHeadTiles) {  // two 8-wide tiles: lanes 16..31 address the second
        uint32_t vb[4];
        ldmatrix_x4_trans(vb, vrow + n * 8 + (lane / 16) * 8);
        mma_k16(o[n], a, vb[0], vb[1]);
        mma_k16(o[n + 1], a, vb[2], vb[3]);
      } else {
        uint32_t vb[2];
        ldmatrix_x2_trans(vb, vrow + n * 8);
        mma_k16(o[n], a, vb[0], vb[1]);
      }
    }
  }

  // Out through the warp's own Q rows: 16-byte stores of whole rows.
  const float inv0 = 1.f / l0, inv1 = 1.f / l1;
  __syncwarp();
  const int r = lane / 4, c = (lane % 4) * 2;
#pragma unroll
  for (int n = 0; n < S::kHeadTiles; ++n) {
    *reinterpret_cast<__half2*>(qw + r * S::kStride + n * 8 + c) = __floats2half2_rn(o[n][0] * inv0, o[n][1] * inv0);
    *reinterpret_cast<__half2*>(qw + (r + 8) * S::kStride + n * 8 + c) =
        __floats2half2_rn(o[n][2] * inv1, o[n][3] * inv1);
  }
  __syncwarp();
  __half* og = p.o + b * p.o_batch + static_cast<int64_t>(h) * D;
  for (int i = lane; i < 16 * (D / 8); i += 32) {
    const int rr = i / (D / 8), cc = (i % (D / 8)) * 8;
    if (wrow0 + rr < p.lq)
      *reinterpret_cast<uint4*>(og + static_cast<int64_t>(wrow0 + rr) * p.o_seq + cc) =
          *reinterpret_cast<const uint4*>(qw + rr * S::kStride + cc);
  }
#endif
}

template <int D>
void launch(const Params& p, int64_t lq, int64_t bh, cudaStream_t stream) {
  // Four warps (64 rows) a block where there are rows enough to fill the GPU that way, else two.
  const int warps = lq >= 1024 ? 4 : 2;
  const size_t smem = smem_bytes<D>(warps);
  C10_CUDA_CHECK(cudaFuncSetAttribute(attention_short_kernel<D>, cudaFuncAttributeMaxDynamicSharedMemorySize,
                                      static_cast<int>(smem)));
  const dim3 grid(static_cast<unsigned>((lq + 16 * warps - 1) / (16 * warps)), static_cast<unsigned>(bh));
  attention_short_kernel<D><<<grid, 32 * warps, smem, stream>>>(p);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

}  // namespace

bool attention_short_device(int device_index) {
  return at::cuda::getDeviceProperties(device_index)->major >= 8;  // ldmatrix, mma.sync m16n8k16
}

bool attention_short_supported(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  const int64_t d = q.dim() == 4 ? q.size(3) : 0;
  if (d != 40 && d != 64 && d != 80 && d != 160) return false;
  if (!attention_operands_fit(q, k, v, d) || k.size(2) > kShortAttentionMaxKeys) return false;
  return attention_short_device(q.device().index());
}

at::Tensor attention_short(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v) {
  TORCH_CHECK(attention_short_supported(q, k, v), "attention_short: unsupported input");
  const c10::cuda::CUDAGuard guard(q.device());
  const int64_t batch = q.size(0), heads = q.size(1), lq = q.size(2), d = q.size(3);
  at::Tensor out = at::empty({batch, lq, heads * d}, q.options());
  Params p{};
  p.q = reinterpret_cast<const __half*>(q.data_ptr());
  p.k = reinterpret_cast<const __half*>(k.data_ptr());
  p.v = reinterpret_cast<const __half*>(v.data_ptr());
  p.o = reinterpret_cast<__half*>(out.data_ptr());
  p.q_batch = q.stride(0), p.q_head = q.stride(1), p.q_seq = q.stride(2);
  p.k_batch = k.stride(0), p.k_head = k.stride(1), p.k_seq = k.stride(2);
  p.v_batch = v.stride(0), p.v_head = v.stride(1), p.v_seq = v.stride(2);
  p.o_batch = lq * heads * d, p.o_seq = heads * d;
  p.heads = static_cast<int>(heads);
  p.lq = static_cast<int>(lq);
  p.lk = static_cast<int>(k.size(2));
  p.scale_log2 = static_cast<float>(1.4426950408889634 / std::sqrt(static_cast<double>(d)));
  const cudaStream_t stream = at::cuda::getCurrentCUDAStream();
  const int64_t bh = batch * heads;
  switch (d) {
    case 40: launch<40>(p, lq, bh, stream); break;
    case 64: launch<64>(p, lq, bh, stream); break;
    case 80: launch<80>(p, lq, bh, stream); break;
    default: launch<160>(p, lq, bh, stream); break;
  }
  return out;
}

}  // namespace diffbench::kernels
