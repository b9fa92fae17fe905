// C entry points of the head-dim-40 attention experiments for bench.py (ctypes): one variant number
// names a kernel and its tiling (the tables below). Build: nvcc -O3 -gencode arch=compute_90a,code=sm_90a
// -shared -Xcompiler -fPIC -o libhd40.so launch.cu (tools/gpu-attention-hd40.sh does).
#include <cudaTypedefs.h>
#include <cuda_runtime.h>

#include "tma.cuh"

using namespace hd40;

namespace {

Params make_params(const void* q, const void* k, const void* v, void* o, const long long* qs, const long long* ks,
                   const long long* vs, const long long* os, int heads, int lq, int lk, float scale_log2) {
  return Params{static_cast<const __half*>(q),
                static_cast<const __half*>(k),
                static_cast<const __half*>(v),
                static_cast<__half*>(o),
                qs[0],
                qs[1],
                qs[2],
                ks[0],
                ks[1],
                ks[2],
                vs[0],
                vs[1],
                vs[2],
                os[0],
                os[1],
                os[2],
                heads,
                lq,
                lk,
                scale_log2};
}

template <int MT, int WARPS, int KEYS = 64, bool HALF_EXP = true>
int run_mma(const Params& p, int batch, cudaStream_t s) {
  constexpr int rows = 16 * MT * WARPS;
  const dim3 grid((p.lq + rows - 1) / rows, batch * p.heads);
  attention_kernel<MT, WARPS, KEYS, HALF_EXP><<<grid, 32 * WARPS, 0, s>>>(p);
  return static_cast<int>(cudaGetLastError());
}

template <int WG, int MODE = 0, int STAGES = 2, bool PACKED = false, bool LEAN = false, bool HALF_EXP = false,
          int MINB = 1, bool PINGPONG = false>
int run_wgmma(const WgParams& wp, int batch, cudaStream_t s) {
  auto kern = wgmma_attention_kernel<WG, HALF_EXP, MODE, STAGES, PACKED, LEAN, MINB, PINGPONG>;
  const int bytes = wgmma_smem_bytes<WG, STAGES>();
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  const dim3 grid((wp.p.lq + 64 * WG - 1) / (64 * WG), batch * wp.p.heads);
  kern<<<grid, 128 * WG, bytes, s>>>(wp);
  return static_cast<int>(cudaGetLastError());
}

template <int STAGES, bool SUM_MMA, int POLY = 0, int CWG = 2, int MINB = 2, bool Q_SMEM = false>
int run_tma(const WgParams& wp, int batch, int tiles, cudaStream_t s) {
  diffbench::kernels::hd40::pack_kv_tiles<SUM_MMA ? 6 : 5>
      <<<dim3(tiles, batch * wp.p.heads), 128, 0, s>>>(wp.p, const_cast<uint4*>(wp.packed), tiles);
  auto kern = tma_attention_kernel<STAGES, SUM_MMA, POLY, CWG, MINB, Q_SMEM>;
  const int bytes = tma_smem_bytes<STAGES, SUM_MMA>(64 * CWG);
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kern<<<dim3((wp.p.lq + 64 * CWG - 1) / (64 * CWG), batch * wp.p.heads), 128 * CWG + 32, bytes, s>>>(wp);
  return static_cast<int>(cudaGetLastError());
}

template <int STAGES, int MINB, int CWG = 2>
int run_pipelined(const WgParams& wp, int batch, int tiles, cudaStream_t s) {
  diffbench::kernels::hd40::pack_kv_tiles<6>
      <<<dim3(tiles, batch * wp.p.heads), 128, 0, s>>>(wp.p, const_cast<uint4*>(wp.packed), tiles);
  auto kern = tma_pipelined_kernel<STAGES, MINB, CWG>;
  const int bytes = tma_smem_bytes<STAGES, true>(64 * CWG);
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kern<<<dim3((wp.p.lq + 64 * CWG - 1) / (64 * CWG), batch * wp.p.heads), 128 * CWG + 32, bytes, s>>>(wp);
  return static_cast<int>(cudaGetLastError());
}

template <int STAGES, bool Q_SMEM = false>
int run_half_pipelined(const WgParams& wp, int batch, int tiles, cudaStream_t s) {
  diffbench::kernels::hd40::pack_kv_tiles<6>
      <<<dim3(tiles, batch * wp.p.heads), 128, 0, s>>>(wp.p, const_cast<uint4*>(wp.packed), tiles);
  auto kern = tma_half_pipelined_kernel<STAGES, Q_SMEM>;
  const int bytes = tma_smem_bytes<STAGES, true>();
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kern<<<dim3((wp.p.lq + 127) / 128, batch * wp.p.heads), kTmaThreads, bytes, s>>>(wp);
  return static_cast<int>(cudaGetLastError());
}

// A 4-d tensor map of k or v ([dim 40][head][key][batch], strides in elements) whose box is 16 bytes of one
// key row's dims × 64 keys: tma_tensor_kernel's copies. False where the driver refuses it.
bool tensor_map(CUtensorMap* map, const __half* base, int64_t head, int64_t seq, int64_t batch_stride, int heads,
                int lk, int batch) {
  static PFN_cuTensorMapEncodeTiled_v12000 encode = nullptr;
  if (!encode) {
    cudaDriverEntryPointQueryResult found;
    if (cudaGetDriverEntryPointByVersion("cuTensorMapEncodeTiled", reinterpret_cast<void**>(&encode), 12000,
                                         cudaEnableDefault, &found) != cudaSuccess ||
        found != cudaDriverEntryPointSuccess)
      return false;
  }
  const cuuint64_t dims[4] = {static_cast<cuuint64_t>(kHead), static_cast<cuuint64_t>(heads),
                              static_cast<cuuint64_t>(lk), static_cast<cuuint64_t>(batch)};
  const cuuint64_t strides[3] = {static_cast<cuuint64_t>(head) * 2, static_cast<cuuint64_t>(seq) * 2,
                                 static_cast<cuuint64_t>(batch_stride) * 2};
  const cuuint32_t box[4] = {8, 1, static_cast<cuuint32_t>(kWgKeys), 1}, steps[4] = {1, 1, 1, 1};
  return encode(map, CU_TENSOR_MAP_DATA_TYPE_FLOAT16, 4, const_cast<__half*>(base), dims, strides, box, steps,
                CU_TENSOR_MAP_INTERLEAVE_NONE, CU_TENSOR_MAP_SWIZZLE_NONE, CU_TENSOR_MAP_L2_PROMOTION_L2_128B,
                CU_TENSOR_MAP_FLOAT_OOB_FILL_NONE) == CUDA_SUCCESS;
}

template <int STAGES, bool LAZY>
int run_lean(const WgParams& wp, int batch, int tiles, cudaStream_t s) {
  diffbench::kernels::hd40::pack_kv_tiles<6>
      <<<dim3(tiles, batch * wp.p.heads), 128, 0, s>>>(wp.p, const_cast<uint4*>(wp.packed), tiles);
  auto kern = tma_lean_kernel<STAGES, LAZY>;
  const int bytes = tma_smem_bytes<STAGES, true>();
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kern<<<dim3((wp.p.lq + 127) / 128, batch * wp.p.heads), kTmaThreads, bytes, s>>>(wp);
  return static_cast<int>(cudaGetLastError());
}

template <bool SWAP_V, bool LEAN = false>
int run_tensor(const WgParams& wp, int batch, cudaStream_t s) {
  const Params& p = wp.p;
  CUtensorMap k_map, v_map;
  if (!tensor_map(&k_map, p.k, p.k_head, p.k_seq, p.k_batch, p.heads, p.lk, batch) ||
      !tensor_map(&v_map, p.v, p.v_head, p.v_seq, p.v_batch, p.heads, p.lk, batch))
    return -2;
  auto kern = tma_tensor_kernel<SWAP_V, LEAN>;
  const int bytes = tma_smem_bytes<3, true>();
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  kern<<<dim3((p.lq + 127) / 128, batch * p.heads), kTmaThreads, bytes, s>>>(wp, k_map, v_map);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

// mma.sync variants: 1 32 query rows a warp, 4 warps, 64 keys a tile, exponentials two at a time in half
// (the one wired into the pipeline in session 17); 7 the same with exponentials in float (the fastest).
// (The other tilings, 16 rows a warp, 8 warps, 128 keys, measured slower and were dropped.)
extern "C" int hd40_mma(int variant, const void* q, const void* k, const void* v, void* o, const long long* qs,
                        const long long* ks, const long long* vs, const long long* os, int batch, int heads, int lq,
                        int lk, float scale_log2, void* stream) {
  const Params p = make_params(q, k, v, o, qs, ks, vs, os, heads, lq, lk, scale_log2);
  const auto s = static_cast<cudaStream_t>(stream);
  switch (variant) {
    case 1:
      return run_mma<2, 4>(p, batch, s);
    case 7:
      return run_mma<2, 4, 64, false>(p, batch, s);
    default:
      return -1;
  }
}

// wgmma variants (64 keys a tile, float exponentials unless said; numbers as in session 17's runs, the
// ones measured slower and dropped are gaps): 1 two warpgroups, K and V read from the projection (V
// transposed first), 2 tiles in shared memory; 12 its loads alone; 17 its products alone (no softmax, no
// loads after the first tiles; 3 tiles); 27-30 K and Vᵀ packed a tile a block first (pack_kv_tiles):
// 27 the packing alone, 28, 29 3 or 4 tiles in shared memory, 30 28's loads alone; 31-35 28 lean
// (descriptors made once, half exponentials summed in half, O rescaled only where a row's maximum grew):
// 31 float exponentials, 32 half, 33 half exponentials not lean, 34 32 without P·V, 35 31 without the
// softmax; 36 32 in at most 85 registers (three blocks an SM), 37 32 with 4 tiles; 38, 39 32 and 31 with
// the two warpgroups' S = Q·Kᵀ issued in turn (ping-pong). 40-43 tma.cuh (bulk copies, a producer warp,
// mbarriers): 40 3 slots, the row sums in float; 41 3 slots, the row sums by P·V (a ones row in Vᵀ; the
// library's kernel, src/kernels/attention_hd40.cuh), 42 4 slots, 43 2 slots; 44, 45 41 with 4 or 8 of a
// lane's 32 exponentials a tile by a polynomial; 46-50 tma_pipelined_kernel (the next tile's Q·Kᵀ and this
// tile's P·V issued together, the softmax between): 46 in two blocks an SM (spills), 47 in one, 48 one with
// 4 slots; 49, 50 three consumer warpgroups, 3 or 4 slots; 51, 52 tma_half_pipelined_kernel (the same by
// half tiles, two blocks an SM), 3 or 4 slots; 53 51 with Q read by descriptor from shared memory. 12, 17,
// 27, 30, 34, 35: timing only, wrong results. 54-57 41 with Q read by descriptor from shared memory (12
// registers fewer, for more blocks an SM): 54 two blocks, 55 three; 56, 57 one consumer warpgroup a block
// (with its producer warp), four or five blocks. 58, 59 tma_tensor_kernel (41 without the packing: box copies
// of tensor maps straight from the projection), V's descriptor offsets one way or the other (the probe).
// 60-62 41 with consume_tiles_lean (unrolled by the slot, O's factors only where a maximum moved): 60 3 slots,
// 61 with the lazy maximum, 62 61 with 4 slots; 63, 64 58 and 59 with 61's loop.
extern "C" int hd40_wgmma(int variant, int swap, const void* q, const void* k, const void* v, void* o, void* vt,
                          const long long* qs, const long long* ks, const long long* vs, const long long* os, int batch,
                          int heads, int lq, int lk, float scale_log2, void* stream) {
  const Params p = make_params(q, k, v, o, qs, ks, vs, os, heads, lq, lk, scale_log2);
  const auto s = static_cast<cudaStream_t>(stream);
  const int tiles = (lk + kWgKeys - 1) / kWgKeys, lk_pad = tiles * kWgKeys;
  const WgParams tp{p, nullptr, lk_pad, swap, static_cast<const uint4*>(vt)};
  switch (variant) {  // tma.cuh: the packing (its own) and the kernel
    case 40:
      return run_tma<3, false>(tp, batch, tiles, s);
    case 41:
      return run_tma<3, true>(tp, batch, tiles, s);
    case 42:
      return run_tma<4, true>(tp, batch, tiles, s);
    case 43:
      return run_tma<2, true>(tp, batch, tiles, s);
    case 44:
      return run_tma<3, true, 1>(tp, batch, tiles, s);
    case 45:
      return run_tma<3, true, 2>(tp, batch, tiles, s);
    case 46:
      return run_pipelined<3, 2>(tp, batch, tiles, s);
    case 47:
      return run_pipelined<3, 1>(tp, batch, tiles, s);
    case 48:
      return run_pipelined<4, 1>(tp, batch, tiles, s);
    case 49:
      return run_pipelined<3, 1, 3>(tp, batch, tiles, s);
    case 50:
      return run_pipelined<4, 1, 3>(tp, batch, tiles, s);
    case 51:
      return run_half_pipelined<3>(tp, batch, tiles, s);
    case 52:
      return run_half_pipelined<4>(tp, batch, tiles, s);
    case 53:
      return run_half_pipelined<3, true>(tp, batch, tiles, s);
    case 54:
      return run_tma<3, true, 0, 2, 2, true>(tp, batch, tiles, s);
    case 55:
      return run_tma<3, true, 0, 2, 3, true>(tp, batch, tiles, s);
    case 56:
      return run_tma<3, true, 0, 1, 4, true>(tp, batch, tiles, s);
    case 57:
      return run_tma<3, true, 0, 1, 5, true>(tp, batch, tiles, s);
    case 58:
      return run_tensor<false>(tp, batch, s);
    case 59:
      return run_tensor<true>(tp, batch, s);
    case 60:
      return run_lean<3, false>(tp, batch, tiles, s);
    case 61:
      return run_lean<3, true>(tp, batch, tiles, s);
    case 62:
      return run_lean<4, true>(tp, batch, tiles, s);
    case 63:
      return run_tensor<false, true>(tp, batch, s);
    case 64:
      return run_tensor<true, true>(tp, batch, s);
  }
  const bool packed = variant >= 27;  // vt has room for them (bench.py sizes it)
  if (packed)
    diffbench::kernels::hd40::pack_kv_tiles<5>
        <<<dim3(tiles, batch * heads), 128, 0, s>>>(p, static_cast<uint4*>(vt), tiles);
  else
    transpose_v_kernel<<<dim3(lk_pad / 64, batch * heads), 256, 0, s>>>(p, static_cast<__half*>(vt), lk_pad);
  const WgParams wp{p, static_cast<const __half*>(vt), lk_pad, swap, static_cast<const uint4*>(vt)};
  switch (variant) {
    case 1:
      return run_wgmma<2>(wp, batch, s);
    case 12:
      return run_wgmma<2, 4>(wp, batch, s);
    case 17:
      return run_wgmma<2, 5, 3>(wp, batch, s);
    case 27:
      return static_cast<int>(cudaGetLastError());  // the packing alone
    case 28:
      return run_wgmma<2, 0, 3, true>(wp, batch, s);
    case 29:
      return run_wgmma<2, 0, 4, true>(wp, batch, s);
    case 30:
      return run_wgmma<2, 4, 3, true>(wp, batch, s);
    case 31:
      return run_wgmma<2, 0, 3, true, true, false>(wp, batch, s);
    case 32:
      return run_wgmma<2, 0, 3, true, true, true>(wp, batch, s);
    case 33:
      return run_wgmma<2, 0, 3, true, false, true>(wp, batch, s);
    case 34:
      return run_wgmma<2, 2, 3, true, true, true>(wp, batch, s);
    case 35:
      return run_wgmma<2, 1, 3, true, true, false>(wp, batch, s);
    case 36:
      return run_wgmma<2, 0, 3, true, true, true, 3>(wp, batch, s);
    case 37:
      return run_wgmma<2, 0, 4, true, true, true>(wp, batch, s);
    case 38:
      return run_wgmma<2, 0, 3, true, true, true, 1, true>(wp, batch, s);
    case 39:
      return run_wgmma<2, 0, 3, true, true, false, 1, true>(wp, batch, s);
    default:
      return -1;
  }
}
