// How much a search among cuBLASLt's algorithms could buy over its heuristic's first pick (what LibTorch's
// linear takes) for SD 1.5's GEMMs at batch 1 with guidance (issue 21, round 13; docs/performance.md): for each
// shape, y[M, N] = x[M, K] · W[N, K]ᵀ (+ bias in the epilogue), half in, float accumulation, half out, the
// heuristic's first 16 algorithms each timed (CUDA events, the mean of 200 calls after 20) in two rounds, the
// first against the fastest; whether each algorithm's result has the first's bits; and the fastest one's
// configuration ("== plan" lines: what a table of chosen algorithms would hold). Build and run (tools/gpu-gemm-lt.sh): nvcc -O2 -o gemm-lt bench.cu -lcublasLt
#include <cublasLt.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <cstdio>
#include <vector>

#define CHECK(x)                                                                           \
  do {                                                                                     \
    auto e_ = (x);                                                                         \
    if (static_cast<int>(e_) != 0) {                                                       \
      std::printf("== error %d at %s:%d\n", static_cast<int>(e_), __FILE__, __LINE__);     \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

struct Shape {
  const char* name;
  int m, n, k, per_call;  // per_call: such GEMMs a UNet call (SD 1.5, batch 1 with guidance)
  bool bias;
};

int main() {
  // Per UNet call: the 64² level has 5 transformer blocks, 32² 5, 16² 5, 8² 1 (the mid block).
  const Shape shapes[] = {
      {"64² qkv", 8192, 960, 320, 5, false},      {"64² out", 8192, 320, 320, 5, false},
      {"64² cross q", 8192, 320, 320, 5, false},  {"64² ff1 (geglu)", 8192, 2560, 320, 5, true},
      {"64² ff2", 8192, 320, 1280, 5, true},      {"64² proj in/out", 8192, 320, 320, 10, true},
      {"32² qkv", 2048, 1920, 640, 5, false},     {"32² out", 2048, 640, 640, 5, false},
      {"32² ff1", 2048, 5120, 640, 5, true},      {"32² ff2", 2048, 640, 2560, 5, true},
      {"32² proj in/out", 2048, 640, 640, 10, true}, {"16² qkv", 512, 3840, 1280, 5, false},
      {"16² out", 512, 1280, 1280, 5, false},     {"16² ff1", 512, 10240, 1280, 5, true},
      {"16² ff2", 512, 1280, 5120, 5, true},      {"16² proj in/out", 512, 1280, 1280, 10, true},
      {"8² qkv", 128, 3840, 1280, 1, false},      {"8² ff1", 128, 10240, 1280, 1, true},
      {"8² ff2", 128, 1280, 5120, 1, true},       {"8² proj/out", 128, 1280, 1280, 3, true}};
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("== %s, cuBLASLt %zu\n", prop.name, cublasLtGetVersion());
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt));
  const size_t ws_bytes = 32u << 20;
  void* ws;
  CHECK(cudaMalloc(&ws, ws_bytes));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  double total_first = 0, total_best = 0;
  for (const Shape& s : shapes) {
    half *x, *w, *y, *b;
    CHECK(cudaMalloc(&x, size_t(s.m) * s.k * 2));
    CHECK(cudaMalloc(&w, size_t(s.n) * s.k * 2));
    CHECK(cudaMalloc(&y, size_t(s.m) * s.n * 2));
    CHECK(cudaMalloc(&b, size_t(s.n) * 2));
    CHECK(cudaMemset(b, 0, size_t(s.n) * 2));
    // Column-major: C[N, M] = op(A)[N, K] · B[K, M] with A = W (stored [N][K]: Kᵀ... transa = T), B = x.
    cublasLtMatmulDesc_t op;
    CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (s.bias) {
      const cublasLtEpilogue_t epi = CUBLASLT_EPILOGUE_BIAS;
      CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_EPILOGUE, &epi, sizeof epi));
      CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_BIAS_POINTER, &b, sizeof b));
    }
    cublasLtMatrixLayout_t la, lb, lc;
    CHECK(cublasLtMatrixLayoutCreate(&la, CUDA_R_16F, s.k, s.n, s.k));
    CHECK(cublasLtMatrixLayoutCreate(&lb, CUDA_R_16F, s.k, s.m, s.k));
    CHECK(cublasLtMatrixLayoutCreate(&lc, CUDA_R_16F, s.n, s.m, s.n));
    cublasLtMatmulPreference_t pref;
    CHECK(cublasLtMatmulPreferenceCreate(&pref));
    CHECK(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &ws_bytes,
                                               sizeof ws_bytes));
    std::vector<cublasLtMatmulHeuristicResult_t> res(16);
    int found = 0;
    CHECK(cublasLtMatmulAlgoGetHeuristic(lt, op, la, lb, lc, lc, pref, 16, res.data(), &found));
    const float alpha = 1.f, beta = 0.f;
    // Inputs of varied values (a ramp, not a constant: so that different summation orders can show).
    std::vector<half> hx(size_t(s.m) * s.k), hw(size_t(s.n) * s.k);
    for (size_t i = 0; i < hx.size(); ++i) hx[i] = __float2half(float((i * 7919) % 1000) / 1000.f - 0.5f);
    for (size_t i = 0; i < hw.size(); ++i) hw[i] = __float2half(float((i * 104729) % 1000) / 20000.f - 0.025f);
    CHECK(cudaMemcpy(x, hx.data(), hx.size() * 2, cudaMemcpyHostToDevice));
    CHECK(cudaMemcpy(w, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
    half* y0;
    CHECK(cudaMalloc(&y0, size_t(s.m) * s.n * 2));
    std::vector<half> out0(size_t(s.m) * s.n), out(size_t(s.m) * s.n);
    // Two rounds of timing: is the fastest the same algorithm both times? And do the algorithms' results
    // differ in their bits from the first pick's?
    double first = -1, best[2] = {1e30, 1e30};
    int best_i[2] = {-1, -1}, differ = 0, ran = 0;
    for (int round = 0; round < 2; ++round)
      for (int i = 0; i < found; ++i) {
        half* dst = i == 0 ? y0 : y;
        auto run = [&] {
          return cublasLtMatmul(lt, op, &alpha, w, la, x, lb, &beta, dst, lc, dst, lc, &res[i].algo, ws, ws_bytes,
                                stream);
        };
        if (run() != CUBLAS_STATUS_SUCCESS) continue;
        if (round == 0 && i > 0) {
          CHECK(cudaStreamSynchronize(stream));
          CHECK(cudaMemcpy(out0.data(), y0, out0.size() * 2, cudaMemcpyDeviceToHost));
          CHECK(cudaMemcpy(out.data(), y, out.size() * 2, cudaMemcpyDeviceToHost));
          ++ran;
          for (size_t e = 0; e < out.size(); ++e)
            if (reinterpret_cast<const uint16_t&>(out[e]) != reinterpret_cast<const uint16_t&>(out0[e])) {
              ++differ;
              break;
            }
        }
        for (int r = 0; r < 20; ++r) run();
        CHECK(cudaEventRecord(e0, stream));
        for (int r = 0; r < 200; ++r) run();
        CHECK(cudaEventRecord(e1, stream));
        CHECK(cudaEventSynchronize(e1));
        float ms = 0;
        CHECK(cudaEventElapsedTime(&ms, e0, e1));
        const double us = ms * 1000.0 / 200;
        if (i == 0 && round == 0) first = us;
        if (us < best[round]) best[round] = us, best_i[round] = i;
      }
    std::printf("== %-18s %5d x %5d x %5d%s: %2d algorithms, first %.2f us, best %.2f us (#%d; again #%d %.2f), "
                "%d of %d others' bits differ from the first's\n",
                s.name, s.m, s.n, s.k, s.bias ? " +bias" : "      ", found, first, best[0], best_i[0], best_i[1],
                best[1], differ, ran);
    // The fastest algorithm's configuration, enough to rebuild it (cublasLtMatmulAlgoInit and
    // ConfigSetAttribute) without a heuristic or timing: one line a shape, for a table.
    if (best_i[0] >= 0) {
      const cublasLtMatmulAlgo_t& a = res[best_i[0]].algo;
      int32_t id = 0, splitk = 0;
      uint32_t tile = 0, reduction = 0, swizzle = 0, custom = 0, stages = 0;
      uint16_t inner = 0, cluster = 0;
      size_t got = 0;
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_ID, &id, sizeof id, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_TILE_ID, &tile, sizeof tile, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_SPLITK_NUM, &splitk, sizeof splitk, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_REDUCTION_SCHEME, &reduction, sizeof reduction,
                                           &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CTA_SWIZZLING, &swizzle, sizeof swizzle, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CUSTOM_OPTION, &custom, sizeof custom, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_STAGES_ID, &stages, sizeof stages, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_INNER_SHAPE_ID, &inner, sizeof inner, &got);
      cublasLtMatmulAlgoConfigGetAttribute(&a, CUBLASLT_ALGO_CONFIG_CLUSTER_SHAPE_ID, &cluster, sizeof cluster, &got);
      std::printf("== plan {\"m\": %d, \"n\": %d, \"k\": %d, \"bias\": %s, \"algo\": %d, \"tile\": %u, "
                  "\"splitk\": %d, \"reduction\": %u, \"swizzle\": %u, \"custom\": %u, \"stages\": %u, "
                  "\"inner\": %u, \"cluster\": %u, \"us\": %.2f, \"first_us\": %.2f}\n",
                  s.m, s.n, s.k, s.bias ? "true" : "false", id, tile, splitk, reduction, swizzle, custom, stages,
                  unsigned(inner), unsigned(cluster), best[0], first);
    }
    cudaFree(y0);
    total_first += first * s.per_call;
    total_best += best[0] * s.per_call;
    cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(b);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
  }
  std::printf("== a UNet call's listed GEMMs: heuristic's first %.1f us, fastest %.1f us (%.1f ms a 51-call generation)\n",
              total_first, total_best, (total_first - total_best) * 51 / 1000);
  return 0;
}
