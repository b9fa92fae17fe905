// dtype "fp8" (models/blocks/linear.hpp): a weight's e4m3 form and the GEMMs by it. The reference is the
// product, in float64, of the operands as the documented quantization gives them: each operand divided by
// its own scale (largest magnitude / 448, rounded to the operand's dtype), the quotient rounded to that dtype
// and then to e4m3 by LibTorch's conversions, multiplied back by the scale. The fp8 GEMM must equal it to
// its accumulation and output rounding, so a scale applied wrongly or not at all shows. Against the
// unquantized product the error must be that of 3-bit mantissas: not zero, and a few per cent at most.
// On the CPU (float32 and half around the e4m3 operands); on CUDA too (half) when a GPU with fp8 tensor cores
// is present.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>
#include <vector>

#include "diffbench/models/blocks/linear.hpp"
#include "diffbench/pipeline/device.hpp"

using namespace diffbench;

namespace {

// t (on the CPU, in its dtype) as e4m3 holds it with one scale, in float64.
at::Tensor e4m3_rounded(const at::Tensor& t) {
  const double smallest = t.scalar_type() == at::kHalf ? 6.103515625e-05 : 1e-30;  // half's smallest normal
  const at::Tensor s = (t.abs().max().to(at::kFloat) / 448.0).clamp_min(smallest).to(t.scalar_type()).to(at::kDouble);
  const at::Tensor q = (t.to(at::kDouble) / s).to(t.scalar_type()).to(at::kFloat8_e4m3fn);
  return q.to(at::kDouble) * s;
}

double relative_error(const at::Tensor& a, const at::Tensor& b) {
  return ((a.to(at::kDouble) - b.to(at::kDouble)).norm() / b.to(at::kDouble).norm()).item<double>();
}

// Where and in which dtype the activations are quantized: float32 and half on the CPU (half: the division
// in half, as on the GPU), half on CUDA.
std::vector<at::TensorOptions> cases() {
  std::vector<at::TensorOptions> out = {at::TensorOptions(at::kFloat), at::TensorOptions(at::kHalf)};
  if (torch::cuda::is_available() && has_fp8_gemms(at::Device(at::kCUDA, 0)))
    out.push_back(at::TensorOptions().dtype(at::kHalf).device(at::kCUDA, 0));
  return out;
}

std::string name(const at::TensorOptions& o) { return o.device().str() + " " + c10::toString(o.dtype()); }

}  // namespace

TEST(Fp8Gemm, WeightFormKeepsEveryValueToE4m3Precision) {
  torch::manual_seed(1);
  const at::Tensor w = torch::randn({48, 64}) * 0.05;
  const Fp8Matrix q = Fp8Matrix::of(w);
  ASSERT_TRUE(q.defined());
  EXPECT_EQ(q.w8.scalar_type(), at::kFloat8_e4m3fn);
  EXPECT_EQ(q.scale.scalar_type(), at::kFloat);
  EXPECT_EQ(q.scale.numel(), 1);
  // the largest magnitude maps to e4m3's largest finite value
  EXPECT_EQ(q.w8.to(at::kFloat).abs().max().item<float>(), 448.0f);
  const at::Tensor back = q.w8.to(at::kFloat) * q.scale;
  // normal e4m3 values (above 2^-6 of the scale) round to within 2^-4 relative
  const at::Tensor normal = (w.abs() / q.scale) >= 1.0 / 64;
  const at::Tensor rel = ((back - w).abs() / w.abs()).masked_select(normal);
  EXPECT_LE(rel.max().item<double>(), 1.0 / 16 + 1e-6);
  EXPECT_GT(rel.max().item<double>(), 0.0);  // it is rounded
}

TEST(Fp8Gemm, ShapesFp8GemmsCannotTakeKeepTheirDtype) {
  EXPECT_FALSE(Fp8Matrix::of(torch::randn({48, 40})).defined());  // K not a multiple of 16
  EXPECT_FALSE(Fp8Matrix::of(torch::randn({40, 48})).defined());  // N
  EXPECT_FALSE(Fp8Matrix::of(torch::randn({48})).defined());
  EXPECT_FALSE(Fp8Matrix::of(at::Tensor()).defined());
  // an undefined form: exactly the plain GEMM
  const at::Tensor x = torch::randn({2, 5, 40}), w = torch::randn({48, 40}), b = torch::randn({48});
  EXPECT_TRUE(torch::equal(gemm(x, w, b, Fp8Matrix::of(w)), gemm(x, w, b)));
}

TEST(Fp8Gemm, ProductEqualsTheE4m3RoundedOperandsProduct) {
  for (const at::TensorOptions& opts : cases()) {
    SCOPED_TRACE(name(opts));
    const auto dtype = opts.dtype().toScalarType();
    torch::manual_seed(2);
    // activations of a transformer block's size order: a few hundred tokens, 320 channels
    const at::Tensor x = (torch::randn({2, 200, 320}) * 3).to(opts);
    const at::Tensor w = (torch::randn({640, 320}) * 0.04).to(opts);
    const at::Tensor b = torch::randn({640}).to(opts);
    const Fp8Matrix q = Fp8Matrix::of(w);
    ASSERT_TRUE(q.defined());

    const at::Tensor y = gemm(x, w, b, q);
    ASSERT_EQ(y.sizes(), (std::vector<int64_t>{2, 200, 640}));
    EXPECT_EQ(y.scalar_type(), dtype);
    // the weight's e4m3 form is made from its float32 values
    const at::Tensor reference =
        at::matmul(e4m3_rounded(x.cpu()), e4m3_rounded(w.cpu().to(at::kFloat)).t()) + b.cpu().to(at::kDouble);
    const double output_rounding = dtype == at::kHalf ? 2e-3 : 1e-5;
    EXPECT_LE(relative_error(y.cpu(), reference), output_rounding);

    const at::Tensor exact = at::linear(x.cpu().to(at::kDouble), w.cpu().to(at::kDouble), b.cpu().to(at::kDouble));
    const double quantization = relative_error(y.cpu(), exact);
    EXPECT_GT(quantization, 1e-3);
    EXPECT_LT(quantization, 0.05);

    // onto an accumulator: acc + x·wᵀ, the same product
    const at::Tensor acc0 = torch::randn({2, 200, 640}).to(opts);
    at::Tensor acc = acc0.clone();
    gemm_onto(acc, x, w, q);
    const at::Tensor onto_reference = reference - b.cpu().to(at::kDouble) + acc0.cpu().to(at::kDouble);
    EXPECT_LE(relative_error(acc.cpu(), onto_reference), output_rounding);
  }
}

TEST(Fp8Gemm, ZeroActivationsGiveTheBiasNotNaN) {
  for (const at::TensorOptions& opts : cases()) {
    SCOPED_TRACE(name(opts));
    const at::Tensor w = torch::randn({32, 64}).to(opts), b = torch::randn({32}).to(opts);
    const at::Tensor y = gemm(at::zeros({3, 64}, opts), w, b, Fp8Matrix::of(w));
    EXPECT_TRUE(torch::equal(y, b.expand({3, 32})));
  }
}
