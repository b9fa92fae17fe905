// How much a choice among cuBLASLt's algorithms buys over what LibTorch runs for SD 1.5's GEMMs (issue 21,
// rounds 13-14; docs/performance.md), and the choices as rows of diffbench's table of planned GEMMs
// (src/kernels/gemm_plans.inc, written from this program's output by tools/gemm-lt/make-table.py).
//
// Every GEMM form the UNet's fast path runs, at 512² with 1, 2 and 8 images a call (batch 1 without and with
// guidance, batch 4 with; 1024² at batch 1 runs batch 4's shapes): y[M, N] = x[M, K] · W[N, K]ᵀ, half in
// and out, float accumulation, with nothing, a bias in the epilogue, or onto y itself (beta = 1: the
// feed-forward's last GEMM onto the residual sum). For each: what LibTorch runs (cuBLAS's cublasGemmEx
// without a bias, cuBLASLt's heuristic first pick with one) and each of the heuristic's first 16 algorithms,
// timed in two rounds (CUDA events, the mean of 100 calls after 10, the weights read from memory each
// call as in the UNet, not from L2); whether each algorithm's result has
// the first pick's bits; and the fastest one's configuration ("== plan" lines). With --after-producer each
// timed GEMM follows a kernel that writes its input (see produce), closer to the UNet than calls back to back.
// With --in-graph the 100 timed calls are captured into a CUDA graph and replayed, as the UNet's fast path
// runs them: an algorithm that needs workspace has cuBLASLt zero it with a memset first, and in a graph the
// GPU idles ~5 us after a memset node (docs/performance.md, round 16), which calls on a stream hide.
// Build and run: tools/gpu-gemm-lt.sh (nvcc -O2 -o gemm-lt bench.cu -lcublasLt -lcublas).
#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <string>
#include <vector>

#define CHECK(x)                                                                           \
  do {                                                                                     \
    auto e_ = (x);                                                                         \
    if (static_cast<int>(e_) != 0) {                                                       \
      std::printf("== error %d at %s:%d\n", static_cast<int>(e_), __FILE__, __LINE__);     \
      return 1;                                                                            \
    }                                                                                      \
  } while (0)

// Writes x as the layer before a GEMM does (a ramp, the same values every time): with --after-producer
// each timed GEMM follows it, as the UNet's GEMMs follow a normalisation or activation kernel, not another
// GEMM of the same shape, and the GEMM's time is the pair's less the producer's alone.
__global__ void produce(half* x, size_t n) {
  for (size_t i = blockIdx.x * size_t(blockDim.x) + threadIdx.x; i < n; i += size_t(gridDim.x) * blockDim.x)
    x[i] = __float2half(float((i * 7919) % 1000) / 1000.f - 0.5f);
}

enum Epilogue { kNone = 0, kBias = 1, kAccumulate = 2 };
const char* const kEpilogueName[] = {"none", "bias", "accumulate"};

struct Shape {
  std::string name;
  int m, n, k;
  Epilogue epi;
  int per_call;  // such GEMMs a UNet call
  int images;    // images a UNet call (1, 2 or 8)
};

std::vector<Shape> unet_shapes() {
  std::vector<Shape> out;
  for (int images : {1, 2, 8}) {
    // Transformer levels at 512²: (pixels, channels, transformer blocks a call).
    const struct { int hw, c, blocks; } levels[] = {{4096, 320, 5}, {1024, 640, 5}, {256, 1280, 5}, {64, 1280, 1}};
    for (const auto& l : levels) {
      const int m = l.hw * images, c = l.c;
      const std::string at = std::to_string(l.hw) + "px " + std::to_string(images) + "img ";
      out.push_back({at + "qkv", m, 3 * c, c, kNone, l.blocks, images});
      out.push_back({at + "q/out/proj_out", m, c, c, kNone, 4 * l.blocks, images});
      out.push_back({at + "proj_in", m, c, c, kBias, l.blocks, images});
      out.push_back({at + "ff1 (geglu)", m, 8 * c, c, kBias, l.blocks, images});
      out.push_back({at + "ff2 onto sum", m, c, 4 * c, kAccumulate, l.blocks, images});
    }
    // The ResNet blocks' 1×1 shortcuts (in → out channels at a level's pixels), bias in the epilogue.
    const struct { int hw, cin, cout, count; } shortcuts[] = {
        {1024, 320, 640, 1},  {256, 640, 1280, 1},  {64, 2560, 1280, 3},  {256, 2560, 1280, 2}, {256, 1920, 1280, 1},
        {1024, 1920, 640, 1}, {1024, 1280, 640, 1}, {1024, 960, 640, 1},  {4096, 960, 320, 1},  {4096, 640, 320, 2}};
    for (const auto& s : shortcuts)
      out.push_back({std::to_string(s.hw) + "px " + std::to_string(images) + "img shortcut " + std::to_string(s.cin) +
                         "->" + std::to_string(s.cout),
                     s.hw * images, s.cout, s.cin, kBias, s.count, images});
    // Every cross-attention layer's keys and values from the text (16 layers, Σ channels 12480), and every
    // ResNet block's time projection (22 blocks, Σ out channels 20160), each one GEMM a call.
    out.push_back({std::to_string(images) + "img cross kv", 77 * images, 2 * 12480, 768, kNone, 1, images});
    out.push_back({std::to_string(images) + "img time proj", images, 20160, 1280, kBias, 1, images});
  }
  return out;
}

int main(int argc, char** argv) {
  bool after_producer = false, in_graph = false;
  for (int i = 1; i < argc; ++i) {
    const std::string a = argv[i];
    if (a == "--after-producer") {
      after_producer = true;
    } else if (a == "--in-graph") {
      in_graph = true;
    } else {
      std::printf("usage: %s [--after-producer] [--in-graph]\n", argv[0]);
      return 2;
    }
  }
  cudaDeviceProp prop;
  CHECK(cudaGetDeviceProperties(&prop, 0));
  std::printf("== %s, cuBLASLt %zu\n", prop.name, cublasLtGetVersion());
  std::printf("== device {\"name\": \"%s\", \"cublaslt\": %zu, \"after_producer\": %s, \"in_graph\": %s}\n",
              prop.name, cublasLtGetVersion(), after_producer ? "true" : "false", in_graph ? "true" : "false");
  cublasLtHandle_t lt;
  CHECK(cublasLtCreate(&lt));
  cublasHandle_t blas;
  CHECK(cublasCreate(&blas));
  const size_t ws_bytes = 32u << 20;
  void* ws;
  CHECK(cudaMalloc(&ws, ws_bytes));
  cudaStream_t stream;
  CHECK(cudaStreamCreate(&stream));
  CHECK(cublasSetStream(blas, stream));
  CHECK(cublasSetWorkspace(blas, ws, ws_bytes));
  cudaEvent_t e0, e1;
  CHECK(cudaEventCreate(&e0));
  CHECK(cudaEventCreate(&e1));
  double total_torch[9] = {}, total_best[9] = {};
  for (const Shape& s : unet_shapes()) {
    half *x, *w, *y, *y0, *yinit, *b;
    const size_t ny = size_t(s.m) * s.n;
    CHECK(cudaMalloc(&x, size_t(s.m) * s.k * 2));
    CHECK(cudaMalloc(&w, size_t(s.n) * s.k * 2));
    CHECK(cudaMalloc(&y, ny * 2));
    CHECK(cudaMalloc(&y0, ny * 2));
    CHECK(cudaMalloc(&yinit, ny * 2));
    CHECK(cudaMalloc(&b, size_t(s.n) * 2));
    // The weights in copies enough to pass through 64 MB, taken in turn: each call reads its weights from
    // memory, not from the 50 MB L2, as the UNet's layers do (each layer's weights are read once a call),
    // while x and y stay in L2, as an activation just written by the layer before does.
    const size_t w_bytes = size_t(s.n) * s.k * 2;
    const int copies = int(std::min<size_t>(256, std::max<size_t>(1, (64u << 20) / w_bytes)));
    std::vector<half*> wc(copies, w);
    for (int c = 1; c < copies; ++c) CHECK(cudaMalloc(&wc[c], w_bytes));
    // Inputs of varied values (ramps, not constants: so that different summation orders can show).
    {
      std::vector<half> hw(size_t(s.n) * s.k), hy(ny), hb(s.n);
      for (size_t i = 0; i < hw.size(); ++i) hw[i] = __float2half(float((i * 104729) % 1000) / 20000.f - 0.025f);
      for (size_t i = 0; i < hy.size(); ++i) hy[i] = __float2half(float((i * 31) % 997) / 997.f - 0.5f);
      for (size_t i = 0; i < hb.size(); ++i) hb[i] = __float2half(float(i % 13) / 13.f - 0.5f);
      produce<<<264, 256, 0, stream>>>(x, size_t(s.m) * s.k);
      CHECK(cudaStreamSynchronize(stream));
      for (half* c : wc) CHECK(cudaMemcpy(c, hw.data(), hw.size() * 2, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(yinit, hy.data(), ny * 2, cudaMemcpyHostToDevice));
      CHECK(cudaMemcpy(b, hb.data(), hb.size() * 2, cudaMemcpyHostToDevice));
    }
    // Column-major view: C[N, M] = Wᵀ-op(A)[N, K] · B[K, M], A = W stored [N][K] (transa = T), B = x.
    cublasLtMatmulDesc_t op;
    CHECK(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    const cublasOperation_t ta = CUBLAS_OP_T, tb = CUBLAS_OP_N;
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSA, &ta, sizeof ta));
    CHECK(cublasLtMatmulDescSetAttribute(op, CUBLASLT_MATMUL_DESC_TRANSB, &tb, sizeof tb));
    if (s.epi == kBias) {
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
    const float alpha = 1.f, beta = s.epi == kAccumulate ? 1.f : 0.f;
    const size_t nx = size_t(s.m) * s.k;
    auto loop_us = [&](auto&& run, bool gemm) -> double {
      auto step = [&](int r) {
        if (after_producer) produce<<<264, 256, 0, stream>>>(x, nx);
        if (gemm) run(wc[r % copies]);
      };
      for (int r = 0; r < 10; ++r) step(r);
      cudaGraphExec_t exec = nullptr;
      if (in_graph) {  // the 100 calls as one graph, replayed once before the timed replay
        cudaGraph_t graph = nullptr;
        if (cudaStreamBeginCapture(stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) return 1e30;
        for (int r = 0; r < 100; ++r) step(r);
        const cudaError_t captured = cudaStreamEndCapture(stream, &graph);
        const bool made = captured == cudaSuccess && cudaGraphInstantiate(&exec, graph, 0) == cudaSuccess;
        if (graph) cudaGraphDestroy(graph);
        if (!made) {  // an algorithm that cannot be captured is never the plan
          cudaGetLastError();
          return 1e30;
        }
        cudaGraphLaunch(exec, stream);
      }
      cudaEventRecord(e0, stream);
      if (in_graph)
        cudaGraphLaunch(exec, stream);
      else
        for (int r = 0; r < 100; ++r) step(r);
      cudaEventRecord(e1, stream);
      cudaEventSynchronize(e1);
      if (exec) cudaGraphExecDestroy(exec);
      float ms = 0;
      cudaEventElapsedTime(&ms, e0, e1);
      return ms * 1000.0 / 100;
    };
    const double producer_us = after_producer ? loop_us([](const half*) { return 0; }, false) : 0.0;
    auto time_us = [&](auto&& run) -> double { return loop_us(run, true) - producer_us; };
    // What LibTorch runs: cuBLAS's GEMM without a bias (mm, addmm_ onto y), cuBLASLt's first pick with one.
    double torch_us = -1;
    if (s.epi != kBias)
      torch_us = time_us([&](const half* wi) {
        return cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, s.n, s.m, s.k, &alpha, wi, CUDA_R_16F, s.k, x, CUDA_R_16F,
                            s.k, &beta, y, CUDA_R_16F, s.n, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
      });
    std::vector<char> out0(ny * 2), out(ny * 2);
    double mean[16];
    int differ = 0, ran = 0, best_i = -1, best_r[2] = {-1, -1};
    double best_round[2] = {1e30, 1e30};
    for (int i = 0; i < found; ++i) mean[i] = -1;
    for (int round = 0; round < 2; ++round)
      for (int i = 0; i < found; ++i) {
        half* dst = i == 0 ? y0 : y;
        auto run = [&](const half* wi = nullptr) {
          return cublasLtMatmul(lt, op, &alpha, wi ? wi : w, la, x, lb, &beta, dst, lc, dst, lc, &res[i].algo, ws,
                                ws_bytes, stream);
        };
        if (round == 0) {  // one call from y's initial values: its bits against the first pick's
          CHECK(cudaMemcpyAsync(dst, yinit, ny * 2, cudaMemcpyDeviceToDevice, stream));
          if (run() != CUBLAS_STATUS_SUCCESS) continue;
          CHECK(cudaStreamSynchronize(stream));
          CHECK(cudaMemcpy((i == 0 ? out0 : out).data(), dst, ny * 2, cudaMemcpyDeviceToHost));
          if (i > 0) {
            ++ran;
            for (size_t e = 0; e < out.size(); ++e)
              if (out[e] != out0[e]) {
                ++differ;
                break;
              }
          }
        } else if (mean[i] < 0) {
          continue;
        }
        const double us = time_us(run);
        mean[i] = round == 0 ? us : (mean[i] + us) / 2;
        if (us < best_round[round]) best_round[round] = us, best_r[round] = i;
      }
    for (int i = 0; i < found; ++i)
      if (mean[i] >= 0 && (best_i < 0 || mean[i] < mean[best_i])) best_i = i;
    if (s.epi == kBias) torch_us = mean[0];
    std::printf("== %-34s %6d x %5d x %5d %-10s: %2d algorithms, torch's %.2f us, lt first %.2f, best %.2f (#%d; "
                "rounds #%d %.2f, #%d %.2f), %d of %d others' bits differ from the first's\n",
                s.name.c_str(), s.m, s.n, s.k, kEpilogueName[s.epi], found, torch_us, mean[0],
                best_i >= 0 ? mean[best_i] : -1.0, best_i, best_r[0], best_round[0], best_r[1], best_round[1], differ,
                ran);
    if (best_i >= 0) {
      total_torch[s.images] += torch_us * s.per_call;
      total_best[s.images] += mean[best_i] * s.per_call;
      // The fastest algorithm's configuration, enough to rebuild it (cublasLtMatmulAlgoInit and
      // ConfigSetAttribute) without a heuristic or timing: one line a shape, a row of the table.
      const cublasLtMatmulAlgo_t& a = res[best_i].algo;
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
      std::printf("== plan {\"m\": %d, \"n\": %d, \"k\": %d, \"epilogue\": \"%s\", \"algo\": %d, \"tile\": %u, "
                  "\"splitk\": %d, \"reduction\": %u, \"swizzle\": %u, \"custom\": %u, \"stages\": %u, "
                  "\"inner\": %u, \"cluster\": %u, \"workspace\": %zu, \"rank\": %d, \"us\": %.2f, "
                  "\"torch_us\": %.2f, \"per_call\": %d, \"images\": %d}\n",
                  s.m, s.n, s.k, kEpilogueName[s.epi], id, tile, splitk, reduction, swizzle, custom, stages,
                  unsigned(inner), unsigned(cluster), res[best_i].workspaceSize, best_i, mean[best_i], torch_us,
                  s.per_call, s.images);
    }
    for (int c = 1; c < copies; ++c) cudaFree(wc[c]);
    cudaFree(x), cudaFree(w), cudaFree(y), cudaFree(y0), cudaFree(yinit), cudaFree(b);
    cublasLtMatmulPreferenceDestroy(pref);
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(lc);
    cublasLtMatmulDescDestroy(op);
  }
  for (int images : {1, 2, 8})
    std::printf("== %d image(s) a call: the listed GEMMs %.1f us a UNet call as LibTorch runs them, %.1f with the "
                "fastest (%.2f ms a 51-call generation)\n",
                images, total_torch[images], total_best[images],
                (total_torch[images] - total_best[images]) * 51 / 1000);
  return 0;
}
