// The planned GEMMs of the CUDA build (gemm / gemm_onto with the table src/kernels/gemm_plans.inc):
// on every GEMM shape SD 1.5's UNet runs at 512² with 1, 2 and 8 images a call, in half, each result against
// a float32 product within the rounding of a half output and float accumulation, and bit-identical from one
// call to the next; with DIFFBENCH_PLANNED_GEMM=0, and for an operand cuBLASLt's plan cannot take (a
// misaligned view), exactly LibTorch's at::linear / addmm_. On an NVIDIA H200 (the table's GPU) the
// batch-1 shapes must be planned. Skipped without CUDA or without the kernels.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffbench/models/blocks/linear.hpp"
#include "diffbench/models/blocks/norm.hpp"
#include "diffbench/pipeline/device.hpp"
#include "diffbench/pipeline/environment.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

enum class Form { kNone, kBias, kOnto };

struct Gemm {
  int64_t m, n, k;
  Form form;
};

// The UNet's GEMMs (tools/gemm-lt/bench.cu lists the same): transformer levels, 1×1 shortcuts, the
// cross-attention keys and values and the time projections, at 1, 2 and 8 images a call.
std::vector<Gemm> sd15_gemms() {
  std::vector<Gemm> out;
  for (int64_t images : {1, 2, 8}) {
    for (auto [hw, c] : {std::pair<int64_t, int64_t>{4096, 320}, {1024, 640}, {256, 1280}, {64, 1280}}) {
      const int64_t m = hw * images;
      out.push_back({m, 3 * c, c, Form::kNone});
      out.push_back({m, c, c, Form::kNone});
      out.push_back({m, c, c, Form::kBias});
      out.push_back({m, 8 * c, c, Form::kBias});
      out.push_back({m, c, 4 * c, Form::kOnto});
    }
    const int64_t shortcuts[][3] = {{1024, 320, 640},  {256, 640, 1280},  {64, 2560, 1280}, {256, 2560, 1280},
                                    {256, 1920, 1280}, {1024, 1920, 640}, {1024, 1280, 640}, {1024, 960, 640},
                                    {4096, 960, 320},  {4096, 640, 320}};
    for (const auto& s : shortcuts) out.push_back({s[0] * images, s[2], s[1], Form::kBias});
    out.push_back({77 * images, 2 * 12480, 768, Form::kNone});
    out.push_back({images, 20160, 1280, Form::kBias});
  }
  return out;
}

bool skip_reason(std::string& why) {
  why = test::cuda_kernels_unavailable(have_fused_group_norm());
  return !why.empty();
}

struct Operands {
  at::Tensor x, w, b, acc;
};

// x [m, k] of unit scale, w [n, k] scaled as trained weights are (1/√k), b and acc of unit scale.
Operands operands(const Gemm& g) {
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  Operands o;
  o.x = torch::randn({g.m, g.k}, cuda).to(torch::kHalf);
  o.w = (torch::randn({g.n, g.k}, cuda) / std::sqrt(double(g.k))).to(torch::kHalf);
  if (g.form == Form::kBias) o.b = torch::randn({g.n}, cuda).to(torch::kHalf);
  if (g.form == Form::kOnto) o.acc = torch::randn({g.m, g.n}, cuda).to(torch::kHalf);
  return o;
}

// The GEMM under test: a fresh output, or acc += x·wᵀ on a copy of o.acc.
at::Tensor run(const Operands& o, Form form) {
  if (form != Form::kOnto) return gemm(o.x, o.w, o.b);
  at::Tensor acc = o.acc.clone();
  gemm_onto(acc, o.x, o.w);
  return acc;
}

at::Tensor libtorch(const Operands& o, Form form) {
  if (form != Form::kOnto) return at::linear(o.x, o.w, o.b);
  at::Tensor acc = o.acc.clone();
  acc.addmm_(o.x, o.w.t());
  return acc;
}

using test::ScopedEnv;

}  // namespace

TEST(PlannedGemm, MatchesFloat32AndRepeatsBitForBit) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  int planned = 0, total = 0;
  for (const Gemm& g : sd15_gemms()) {
    SCOPED_TRACE(std::to_string(g.m) + " x " + std::to_string(g.n) + " x " + std::to_string(g.k) + " form " +
                 std::to_string(static_cast<int>(g.form)));
    const Operands o = operands(g);
    const bool has = has_gemm_plan(o.x, o.w, g.form == Form::kBias, g.form == Form::kOnto);
    planned += has, ++total;
    const at::Tensor y1 = run(o, g.form), y2 = run(o, g.form);
    ASSERT_EQ(y1.scalar_type(), torch::kHalf);
    ASSERT_EQ(y1.sizes(), (std::vector<int64_t>{g.m, g.n}));
    EXPECT_TRUE(at::equal(y1, y2)) << "two calls on the same operands differ";
    // Float32 reference; the bound: half an ulp of the half output, plus float accumulation over k
    // terms (2⁻¹⁶ of Σ|x||w|, far above float's k·2⁻²⁴ in practice, far below a half ulp's effect).
    // Onto acc, cuBLAS(Lt) rounds the product to half before adding (LibTorch's addmm_ as well): another
    // half ulp, of the product.
    const at::Tensor x = o.x.to(torch::kFloat), w = o.w.to(torch::kFloat);
    const at::Tensor product = at::matmul(x, w.t());
    at::Tensor ref = product;
    if (o.b.defined()) ref = ref + o.b.to(torch::kFloat);
    if (o.acc.defined()) ref = ref + o.acc.to(torch::kFloat);
    const at::Tensor err = (y1.to(torch::kFloat) - ref).abs();
    const at::Tensor rounding = o.acc.defined() ? ref.abs() + product.abs() : ref.abs();
    const at::Tensor bound = rounding * 0x1p-11 * 1.01 + at::matmul(x.abs(), w.abs().t()) * 0x1p-16 + 1e-6;
    EXPECT_TRUE((err <= bound).all().item<bool>())
        << "planned: " << has << ", largest error " << err.max().item<double>() << " (worst excess "
        << (err - bound).max().item<double>() << ")";
  }
  std::printf("planned GEMMs on %s: %d of %d shapes\n", environment_info(torch::kCUDA).value("gpu", "?").c_str(),
              planned, total);
}

TEST(PlannedGemm, SwitchedOffOrMisalignedIsLibTorchExactly) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  for (const Gemm& g : {Gemm{8192, 960, 320, Form::kNone}, Gemm{8192, 2560, 320, Form::kBias},
                        Gemm{8192, 320, 1280, Form::kOnto}, Gemm{128, 1280, 5120, Form::kOnto}}) {
    SCOPED_TRACE(std::to_string(g.m) + " x " + std::to_string(g.n) + " x " + std::to_string(g.k));
    const Operands o = operands(g);
    {
      ScopedEnv off("DIFFBENCH_PLANNED_GEMM", "0");
      EXPECT_FALSE(has_gemm_plan(o.x, o.w, g.form == Form::kBias, g.form == Form::kOnto));
      EXPECT_TRUE(at::equal(run(o, g.form), libtorch(o, g.form)));
    }
    // x 8 halves into a larger tensor: its start 16 bytes off the 256-byte alignment the plans assume.
    Operands shifted = o;
    shifted.x = torch::cat({o.x.flatten().narrow(0, 0, 8), o.x.flatten()}).narrow(0, 8, g.m * g.k).view({g.m, g.k});
    ASSERT_NE(reinterpret_cast<uintptr_t>(shifted.x.data_ptr()) % 256, 0u);
    EXPECT_TRUE(at::equal(run(shifted, g.form), libtorch(o, g.form)));
  }
}

// The table was written on an NVIDIA H200 with the wheel's cuBLASLt: there the batch-1 GEMMs it lists
// must be planned (a renamed device, another cuBLASLt or a table left out of the build would silently
// fall back to LibTorch's GEMMs).
TEST(PlannedGemm, TheTablesGpuRunsItsPlans) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  const std::string name = environment_info(torch::kCUDA).value("gpu", "");
  EXPECT_EQ(environment_info(torch::kCUDA).value("gemm_plans", -1), gemm_plan_rows(torch::kCUDA));
  if (name != "NVIDIA H200") GTEST_SKIP() << "the table has no rows for " << name;
  EXPECT_GE(gemm_plan_rows(torch::kCUDA), 40);
  {
    ScopedEnv off("DIFFBENCH_PLANNED_GEMM", "0");
    EXPECT_EQ(gemm_plan_rows(torch::kCUDA), 0);
  }
  torch::NoGradGuard no_grad;
  for (const Gemm& g : {Gemm{8192, 960, 320, Form::kNone}, Gemm{8192, 320, 320, Form::kBias},
                        Gemm{2048, 5120, 640, Form::kBias}, Gemm{128, 1280, 5120, Form::kOnto}}) {
    const Operands o = operands(g);
    EXPECT_TRUE(has_gemm_plan(o.x, o.w, g.form == Form::kBias, g.form == Form::kOnto))
        << g.m << " x " << g.n << " x " << g.k;
  }
}
