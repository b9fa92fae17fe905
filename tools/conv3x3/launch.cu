// C entry point of the split-K 3×3 convolution (conv3x3.cuh) for bench.py (ctypes). Build:
// nvcc -O3 -gencode arch=compute_90a,code=sm_90a -shared -Xcompiler -fPIC -o libconv3x3.so launch.cu
// (tools/gpu-conv3x3.sh does).
#include <cuda_runtime.h>

#include "conv3x3.cuh"

using namespace diffbench::kernels::conv3x3;

// x channels-last [b, c, h, w] (strides xb, xh, xw in elements), w [n, 3, 3, c], y [b, h, w, n]; partial:
// room for splits · m · n floats. variant: 1 PREFETCH, 2 ROTATE, 4 without sum_slices (timing only),
// 8 wgmma (conv3x3_split_k_wgmma).
// Returns the CUDA error, -1 for an unsupported shape.
extern "C" int conv3x3_run(const void* x, const void* w, void* y, void* partial, long long xb,
                           long long xh, long long xw, int b, int c, int h, int wd, int n, int splits, int variant,
                           void* stream) {
  if (c % kBK != 0 || n % kBN != 0) return -1;
  Params p{static_cast<const __half*>(x), static_cast<const __half*>(w), static_cast<__half*>(y),
           static_cast<float*>(partial), xb, xh, xw, h, wd, c, n, b * h * wd,
           9 * c / kBK, 0};
  p.per_split = (p.kblocks + splits - 1) / splits;
  const int used = (p.kblocks + p.per_split - 1) / p.per_split;
  static void (*const kernels[8])(Params) = {
      conv3x3_split_k<false, false>,       conv3x3_split_k<true, false>,       conv3x3_split_k<false, true>,
      conv3x3_split_k<true, true>,         conv3x3_split_k_wgmma<false, false>, conv3x3_split_k_wgmma<true, false>,
      conv3x3_split_k_wgmma<false, true>, conv3x3_split_k_wgmma<true, true>};
  const bool wgmma = variant & 8;
  const auto kernel = kernels[(variant & 3) + (wgmma ? 4 : 0)];
  const int bytes = kSmemBytes + (wgmma ? 1024 : 0);
  cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  const dim3 grid(n / kBN, (p.m + kBM - 1) / kBM, used);
  const auto s = static_cast<cudaStream_t>(stream);
  kernel<<<grid, kThreads, bytes, s>>>(p);
  if (variant & 4) return static_cast<int>(cudaGetLastError());  // the slices alone (timing)
  const int64_t count = static_cast<int64_t>(p.m) * n;
  sum_slices<<<static_cast<unsigned>((count / 8 + 255) / 256), 256, 0, s>>>(p.partial, p.y, count, used);
  return static_cast<int>(cudaGetLastError());
}
