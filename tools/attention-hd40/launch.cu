// C entry points of the head-dim-40 attention experiments for bench.py (ctypes): one variant number
// names a kernel and its tiling (the tables below). Build: nvcc -O3 -gencode arch=compute_90a,code=sm_90a
// -shared -Xcompiler -fPIC -o libhd40.so launch.cu (tools/gpu-attention-hd40.sh does).
#include <cuda_runtime.h>

#include "wgmma.cuh"

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

template <int WG, int KEYS, int MODE = 0, int STAGES = 2, bool PACKED = false, bool LEAN = false, bool HALF_EXP = false,
          int MINB = 1, bool PINGPONG = false>
int run_wgmma(const WgParams& wp, int batch, cudaStream_t s) {
  auto kern = wgmma_attention_kernel<WG, KEYS, HALF_EXP, MODE, STAGES, PACKED, LEAN, MINB, PINGPONG>;
  const int bytes = wgmma_smem_bytes<WG, KEYS, STAGES>();
  cudaFuncSetAttribute(kern, cudaFuncAttributeMaxDynamicSharedMemorySize, bytes);
  const dim3 grid((wp.p.lq + 64 * WG - 1) / (64 * WG), batch * wp.p.heads);
  kern<<<grid, 128 * WG, bytes, s>>>(wp);
  return static_cast<int>(cudaGetLastError());
}

}  // namespace

// mma.sync variants: 0-3: 1 or 2 m16 tiles a warp × 4 or 8 warps, 64 keys a tile, exponentials two at a
// time in half; 4-6: 128 keys; 7, 8: exponentials in float.
extern "C" int hd40_mma(int variant, const void* q, const void* k, const void* v, void* o, const long long* qs,
                        const long long* ks, const long long* vs, const long long* os, int batch, int heads, int lq,
                        int lk, float scale_log2, void* stream) {
  const Params p = make_params(q, k, v, o, qs, ks, vs, os, heads, lq, lk, scale_log2);
  const auto s = static_cast<cudaStream_t>(stream);
  switch (variant) {
    case 0:
      return run_mma<1, 4>(p, batch, s);
    case 1:
      return run_mma<2, 4>(p, batch, s);
    case 2:
      return run_mma<1, 8>(p, batch, s);
    case 3:
      return run_mma<2, 8>(p, batch, s);
    case 4:
      return run_mma<1, 4, 128>(p, batch, s);
    case 5:
      return run_mma<2, 4, 128>(p, batch, s);
    case 6:
      return run_mma<1, 8, 128>(p, batch, s);
    case 7:
      return run_mma<2, 4, 64, false>(p, batch, s);
    case 8:
      return run_mma<1, 4, 64, false>(p, batch, s);
    default:
      return -1;
  }
}

// The key tile of each wgmma variant (vt, the transposed V, is padded to a whole number of them).
extern "C" int hd40_wgmma_keys(int variant) {
  switch (variant) {
    case 2:
    case 11:
    case 15:
      return 128;
    default:
      return 64;
  }
}

// wgmma variants (float exponentials unless said): 0, 1 with 1 or 2 warpgroups of 64 query rows, 2 two
// warpgroups and 128 keys a tile (3-7, the pipelined kernel, are gone); timing only, wrong results: 8 no
// softmax, 9 no P·V, 10 neither, 11 same at 128 keys, 12 the loads alone; 13-15 with 3 or 4 tiles in
// shared memory (2 warpgroups, 64 keys 3 or 4 stages, 128 keys 3), 16 their loads alone (4 stages), 17 the
// products alone (no softmax, no loads after the first tiles; 3 stages), 18 one warpgroup 4 stages, 19
// three warpgroups 3 stages; 20-26 K and Vᵀ packed tile by tile first (pack_kv_kernel): 20 2 warpgroups
// 3 stages, 21 4 warpgroups, 22, 23 their loads alone, 25 2 warpgroups 4 stages, 26 3 warpgroups; 27-30
// packed a tile a block (pack_kv_tile_kernel): 27 the packing alone, 28, 29 2 warpgroups 3 or 4 stages, 30
// 28's loads alone; 31-35 28 lean (descriptors made once, half exponentials summed in half): 31 float
// exponentials, 32 half, 33 half exponentials not lean, 34 32 without P·V, 35 31 without the softmax
// (34, 35 timing only), 36 32 in at most 85 registers (three blocks an SM), 37 32 with 4 stages; 38, 39
// 32 and 31 with the two warpgroups' S = Q·Kᵀ issued in turn (ping-pong).
extern "C" int hd40_wgmma(int variant, int swap, const void* q, const void* k, const void* v, void* o, void* vt,
                          const long long* qs, const long long* ks, const long long* vs, const long long* os, int batch,
                          int heads, int lq, int lk, float scale_log2, void* stream) {
  const Params p = make_params(q, k, v, o, qs, ks, vs, os, heads, lq, lk, scale_log2);
  const auto s = static_cast<cudaStream_t>(stream);
  const int keys = hd40_wgmma_keys(variant), lk_pad = (lk + keys - 1) / keys * keys;
  if (variant < 20)
    transpose_v_kernel<<<dim3(lk_pad / 64, batch * heads), 256, 0, s>>>(p, static_cast<__half*>(vt), lk_pad);
  const bool packed = variant >= 20;
  if (packed && variant < 27) {  // vt has room for them (bench.py sizes it)
    constexpr int rows = 64 / 8 * 6 * 8 + 5 * 64 / 8 * 8;
    const int tiles = lk_pad / 64;
    pack_kv_kernel<64>
        <<<dim3((tiles * rows + 255) / 256, batch * heads), 256, 0, s>>>(p, static_cast<uint4*>(vt), tiles);
  } else if (packed) {
    pack_kv_tile_kernel<64><<<dim3(lk_pad / 64, batch * heads), 128, 0, s>>>(p, static_cast<uint4*>(vt), lk_pad / 64);
  }
  const WgParams wp{p, static_cast<const __half*>(vt), lk_pad, swap, static_cast<const uint4*>(vt)};
  switch (variant) {
    case 0:
      return run_wgmma<1, 64>(wp, batch, s);
    case 1:
      return run_wgmma<2, 64>(wp, batch, s);
    case 2:
      return run_wgmma<2, 128>(wp, batch, s);
    case 8:
      return run_wgmma<2, 64, 1>(wp, batch, s);
    case 9:
      return run_wgmma<2, 64, 2>(wp, batch, s);
    case 10:
      return run_wgmma<2, 64, 3>(wp, batch, s);
    case 11:
      return run_wgmma<2, 128, 3>(wp, batch, s);
    case 12:
      return run_wgmma<2, 64, 4>(wp, batch, s);
    case 13:
      return run_wgmma<2, 64, 0, 3>(wp, batch, s);
    case 14:
      return run_wgmma<2, 64, 0, 4>(wp, batch, s);
    case 15:
      return run_wgmma<2, 128, 0, 3>(wp, batch, s);
    case 16:
      return run_wgmma<2, 64, 4, 4>(wp, batch, s);
    case 17:
      return run_wgmma<2, 64, 5, 3>(wp, batch, s);
    case 18:
      return run_wgmma<1, 64, 0, 4>(wp, batch, s);
    case 19:
      return run_wgmma<3, 64, 0, 3>(wp, batch, s);
    case 20:
      return run_wgmma<2, 64, 0, 3, true>(wp, batch, s);
    case 21:
      return run_wgmma<4, 64, 0, 3, true>(wp, batch, s);
    case 22:
      return run_wgmma<2, 64, 4, 3, true>(wp, batch, s);
    case 23:
      return run_wgmma<4, 64, 4, 3, true>(wp, batch, s);
    case 25:
      return run_wgmma<2, 64, 0, 4, true>(wp, batch, s);
    case 26:
      return run_wgmma<3, 64, 0, 3, true>(wp, batch, s);
    case 27:
      return static_cast<int>(cudaGetLastError());  // the tile-wise packing alone
    case 28:
      return run_wgmma<2, 64, 0, 3, true>(wp, batch, s);
    case 29:
      return run_wgmma<2, 64, 0, 4, true>(wp, batch, s);
    case 30:
      return run_wgmma<2, 64, 4, 3, true>(wp, batch, s);
    case 31:
      return run_wgmma<2, 64, 0, 3, true, true, false>(wp, batch, s);
    case 32:
      return run_wgmma<2, 64, 0, 3, true, true, true>(wp, batch, s);
    case 33:
      return run_wgmma<2, 64, 0, 3, true, false, true>(wp, batch, s);
    case 34:
      return run_wgmma<2, 64, 2, 3, true, true, true>(wp, batch, s);
    case 35:
      return run_wgmma<2, 64, 1, 3, true, true, false>(wp, batch, s);
    case 36:
      return run_wgmma<2, 64, 0, 3, true, true, true, 3>(wp, batch, s);
    case 37:
      return run_wgmma<2, 64, 0, 4, true, true, true>(wp, batch, s);
    case 38:
      return run_wgmma<2, 64, 0, 3, true, true, true, 1, true>(wp, batch, s);
    case 39:
      return run_wgmma<2, 64, 0, 3, true, true, false, 1, true>(wp, batch, s);
    default:
      return -1;
  }
}
