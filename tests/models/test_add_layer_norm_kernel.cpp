// The fused residual add + LayerNorm of the CUDA build (add_layer_norm) against LibTorch on the
// transformer blocks' shapes of SD 1.5 at 512² and 1024² (batch 2 and 8), in half, bfloat16 and float,
// bit-identical from one call to the next (fixed-order sums, no atomics); its LayerNorm alone; and a whole
// BasicTransformerBlock and a ResNet block with a 1×1 shortcut with the fusions on and off
// (DIFFBENCH_FUSED_ADDLN=0). Skipped without CUDA or without the kernels.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cstdlib>

#include "diffbench/models/blocks/norm.hpp"
#include "diffbench/models/blocks/resnet.hpp"
#include "diffbench/models/blocks/transformer.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

struct Shape {
  int64_t hw, c;  // tokens per image (the level's H·W) and channels
};

// The levels of SD 1.5's transformer blocks: 64², 32², 16², 8² latents at 512², twice that at 1024².
const Shape kSd15[] = {{4096, 320}, {1024, 640}, {256, 1280}, {64, 1280},
                       {16384, 320}, {4096, 640}, {1024, 1280}, {256, 1280}};

bool skip_reason(std::string& why) {
  why = test::cuda_kernels_unavailable(have_fused_group_norm());
  return !why.empty();
}

// Half of the dtype's spacing at 1 (its rounding of the output), relative.
double half_ulp(torch::Dtype t) { return t == torch::kHalf ? 0x1p-11 : t == torch::kBFloat16 ? 0x1p-8 : 0x1p-24; }

using test::ScopedEnv;

// A CUDA LayerNorm over c channels in `type` with weights in [0.5, 1.5] and biases in [-0.5, 0.5], not the
// unit weights and zero biases it starts with.
torch::nn::LayerNorm random_norm(int64_t c, torch::Dtype type, double eps) {
  torch::nn::LayerNorm norm(torch::nn::LayerNormOptions({c}).eps(eps));
  norm->to(torch::kCUDA, type);
  norm->weight.uniform_(0.5, 1.5);
  norm->bias.uniform_(-0.5, 0.5);
  return norm;
}

}  // namespace

TEST(AddLayerNormKernel, MatchesLibTorchAndRepeatsBitForBit) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  for (torch::Dtype type : {torch::kHalf, torch::kBFloat16, torch::kFloat})
    for (int64_t batch : {2, 8})
      for (const Shape& s : kSd15) {
        SCOPED_TRACE(std::string(c10::toString(type)) + " batch=" + std::to_string(batch) + " HW=" +
                     std::to_string(s.hw) + " C=" + std::to_string(s.c));
        // a: an attention output, r: the running activation (larger, with an offset per token as the UNet's).
        const at::Tensor a = torch::randn({batch, s.hw, s.c}, cuda).to(type);
        const at::Tensor r = (torch::randn({batch, s.hw, s.c}, cuda) * 4 + torch::randn({batch, s.hw, 1}, cuda)).to(type);
        torch::nn::LayerNorm norm = random_norm(s.c, type, 1e-5);
        const at::Tensor extra = torch::randn({s.c}, cuda).to(type);
        ASSERT_TRUE(fused_add_layer_norm(a));

        const auto [y1, n1] = add_layer_norm(a, r, norm);
        const auto [y2, n2] = add_layer_norm(a, r, norm);
        const auto [ye, ne] = add_layer_norm(a, r, norm, extra);
        const at::Tensor a_bias = torch::randn({s.c}, cuda).to(type);  // a's GEMM left its bias to the kernel
        const auto [yb, nb] = add_layer_norm(a, r, norm, extra, a_bias);
        ASSERT_EQ(n1.scalar_type(), type);
        EXPECT_TRUE(at::equal(y1, y2) && at::equal(n1, n2)) << "two calls on the same input differ";
        EXPECT_TRUE(at::equal(ne, n1)) << "`extra` changed the norm";
        // The sum is LibTorch's add exactly: both add in float and round once to the dtype.
        const at::Tensor y_ref = a + r;
        EXPECT_TRUE(at::equal(y1, y_ref)) << "y differs from a + r by " << (y1 - y_ref).abs().max().item<double>();
        const at::Tensor ye_ref = y_ref + extra;
        EXPECT_TRUE(at::equal(ye, ye_ref)) << "y + extra differs by " << (ye - ye_ref).abs().max().item<double>();
        // a_bias: LibTorch's two adds, each rounded; the norm is of that sum.
        const at::Tensor yb_ref = (a + a_bias) + r;
        EXPECT_TRUE(at::equal(yb, yb_ref + extra)) << "(a + a_bias) + r + extra differs by "
                                                     << (yb - yb_ref - extra).abs().max().item<double>();
        EXPECT_TRUE(at::equal(nb, add_layer_norm(a + a_bias, r, norm).second)) << "a_bias's norm differs";

        // The norm against LibTorch in float32 on the same (rounded) sum: the kernel's float statistics
        // differ from LibTorch's Welford ones in the last float bits (1e-5 for C ≤ 1280 at these
        // magnitudes), then the output is rounded to the dtype (half an ulp of the value).
        const at::Tensor ref = at::layer_norm(y_ref.to(torch::kFloat), {s.c}, norm->weight.to(torch::kFloat),
                                              norm->bias.to(torch::kFloat), 1e-5);
        const at::Tensor err = (n1.to(torch::kFloat) - ref).abs();
        const at::Tensor bound = ref.abs() * half_ulp(type) * 1.01 + 1e-5;
        EXPECT_TRUE((err <= bound).all().item<bool>())
            << "largest difference from LibTorch float32: " << err.max().item<double>() << " (worst excess "
            << (err - bound).max().item<double>() << ")";
        // And LibTorch's own LayerNorm in this dtype: at most one ulp apart (both round near values).
        const at::Tensor own = norm(y_ref);
        const at::Tensor err_own = (n1.to(torch::kFloat) - own.to(torch::kFloat)).abs();
        EXPECT_TRUE((err_own <= ref.abs() * 2 * half_ulp(type) * 1.01 + 2e-5).all().item<bool>())
            << "largest difference from LibTorch's LayerNorm in the same dtype: " << err_own.max().item<double>();
      }
}

TEST(AddLayerNormKernel, OddRowCountsAndWidths) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(1);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  // 77 rows (not a multiple of the block's 8 warps), widths whose 16-byte vectors do not fill the
  // warp's last round, the widest taken (2048), and one that LibTorch does (2056 > 2048).
  for (int64_t c : {8, 72, 768, 1032, 2048, 2056})
    for (torch::Dtype type : {torch::kHalf, torch::kFloat}) {
      SCOPED_TRACE(std::string(c10::toString(type)) + " C=" + std::to_string(c));
      const at::Tensor a = torch::randn({77, c}, cuda).to(type), r = torch::randn({77, c}, cuda).to(type);
      torch::nn::LayerNorm norm = random_norm(c, type, 1e-6);
      const auto [y, n] = add_layer_norm(a, r, norm);
      const at::Tensor y_ref = a + r;
      EXPECT_TRUE(at::equal(y, y_ref));
      const at::Tensor ref = at::layer_norm(y_ref.to(torch::kFloat), {c}, norm->weight.to(torch::kFloat),
                                            norm->bias.to(torch::kFloat), 1e-6);
      const at::Tensor err = (n.to(torch::kFloat) - ref).abs();
      EXPECT_TRUE((err <= ref.abs() * half_ulp(type) * 1.01 + 1e-5).all().item<bool>())
          << "largest difference from LibTorch float32: " << err.max().item<double>();
    }
}

// The LayerNorm alone (the transformer blocks' norm1) by the same kernel: the bits of add_layer_norm's
// norm of 0 + x (the same statistics in the same order), within rounding of LibTorch's float32 norm,
// at most an ulp from LibTorch's own in the dtype; LibTorch's own when switched off, or for a width
// the kernel does not take.
TEST(AddLayerNormKernel, LayerNormAloneIsTheKernelsNorm) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(4);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  struct Case {
    int64_t rows, c;
  };
  for (const Case& k : {Case{2 * 4096, 320}, Case{2 * 1024, 640}, Case{8 * 256, 1280}, Case{77, 72}, Case{5, 2056}})
    for (torch::Dtype type : {torch::kHalf, torch::kBFloat16, torch::kFloat}) {
      SCOPED_TRACE(std::string(c10::toString(type)) + " " + std::to_string(k.rows) + "x" + std::to_string(k.c));
      const at::Tensor x = (torch::randn({k.rows, k.c}, cuda) * 3 + 1).to(type);
      torch::nn::LayerNorm norm = random_norm(k.c, type, 1e-5);
      const at::Tensor n = layer_norm(norm, x);
      const at::Tensor own = norm(x);
      if (k.c > 2048) {
        EXPECT_TRUE(at::equal(n, own)) << "a width the kernel does not take is LibTorch's";
        continue;
      }
      EXPECT_TRUE(at::equal(n, add_layer_norm(at::zeros_like(x), x, norm).second)) << "not the kernel's norm";
      EXPECT_TRUE(at::equal(n, layer_norm(norm, x))) << "two calls differ";
      const at::Tensor ref = at::layer_norm(x.to(torch::kFloat), {k.c}, norm->weight.to(torch::kFloat),
                                            norm->bias.to(torch::kFloat), 1e-5);
      const at::Tensor err = (n.to(torch::kFloat) - ref).abs();
      EXPECT_TRUE((err <= ref.abs() * half_ulp(type) * 1.01 + 1e-5).all().item<bool>())
          << "largest difference from LibTorch float32: " << err.max().item<double>();
      const at::Tensor err_own = (n.to(torch::kFloat) - own.to(torch::kFloat)).abs();
      EXPECT_TRUE((err_own <= ref.abs() * 2 * half_ulp(type) * 1.01 + 2e-5).all().item<bool>())
          << "largest difference from LibTorch's LayerNorm in the same dtype: " << err_own.max().item<double>();
      ScopedEnv off("DIFFBENCH_FAST_LAYER_NORM", "0");
      EXPECT_TRUE(at::equal(layer_norm(norm, x), own)) << "switched off, not LibTorch's";
    }
}

// A whole SD 1.5 transformer block (64² level at 512², batch 2 with guidance): the fused block (two
// fused adds + LayerNorms taking the attentions' to_out biases, the feed-forward's GEMM accumulating
// onto the residual) against the same
// block with LibTorch's adds and LayerNorms, in float (the kernel's float statistics against LibTorch's,
// the bias added in another order: last-bit differences through attention and GEMMs) and half (a norm
// output one half-ulp apart now and then, carried through attention and the feed-forward, and the last
// sum rounded once instead of twice).
TEST(AddLayerNormKernel, TransformerBlockFusedMatchesUnfused) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(2);
  TransformerBlockOptions o;
  o.dim = 320;
  o.heads = 8;
  o.dim_head = 40;
  o.cross_attention_dim = 768;
  for (torch::Dtype type : {torch::kFloat, torch::kHalf}) {
    SCOPED_TRACE(c10::toString(type));
    BasicTransformerBlock block(o);
    for (auto& p : block->named_parameters()) {  // LayerNorms with other than unit weights and zero biases
      if (p.key().find("norm") == std::string::npos) continue;
      const bool weight = p.key().find("weight") != std::string::npos;
      p.value().uniform_(weight ? 0.5 : -0.5, weight ? 1.5 : 0.5);
    }
    block->to(torch::kCUDA, type);
    const auto cuda = torch::TensorOptions().device(torch::kCUDA);
    const at::Tensor x = (torch::randn({2, 4096, 320}, cuda) * 2).to(type);
    const at::Tensor context = torch::randn({2, 77, 768}, cuda).to(type);
    ASSERT_TRUE(fused_add_layer_norm(x) && block->fold_out_biases(x));
    const at::Tensor fused = block(x, context), again = block(x, context);
    at::Tensor unfolded;  // the to_out biases in their GEMMs' epilogues
    {
      ScopedEnv off("DIFFBENCH_FOLD_OUT_BIAS", "0");
      unfolded = block(x, context);
    }
    // Hooks that change nothing (the path T-GATE's and ToMe's blocks take) give the unfolded bits.
    UNetHooks no_op;
    TransformerId id;
    id.name = "down_blocks.0.attentions.0.transformer_blocks.0";
    EXPECT_TRUE(at::equal(block(x, context, &no_op, &id, 64, 64), unfolded)) << "the hooked path differs";
    at::Tensor plain;
    {
      ScopedEnv off("DIFFBENCH_FUSED_ADDLN", "0");
      ASSERT_FALSE(fused_add_layer_norm(x));
      plain = block(x, context);
    }
    EXPECT_TRUE(at::equal(fused, again)) << "two calls on the same input differ";
    const double scale = plain.abs().max().item<double>();
    for (const auto& [name, out] : {std::pair{"folded", fused}, std::pair{"unfolded", unfolded}}) {
      SCOPED_TRACE(name);
      const double max_err = (out.to(torch::kFloat) - plain.to(torch::kFloat)).abs().max().item<double>();
      const double mean_err = (out.to(torch::kFloat) - plain.to(torch::kFloat)).abs().mean().item<double>();
      // float: relative 1e-5 of the output's range; half: 4 ulps of the largest value at most, half an
      // ulp of it on average.
      const double max_bound = type == torch::kFloat ? 1e-5 * scale : 4 * 0x1p-10 * scale;
      const double mean_bound = type == torch::kFloat ? 1e-6 * scale : 0x1p-11 * scale;
      EXPECT_LT(max_err, max_bound) << "largest difference, output range " << scale;
      EXPECT_LT(mean_err, mean_bound) << "mean difference, output range " << scale;
    }
    EXPECT_GT(scale, 1.0);  // the block did compute something
  }
}

// An SD 1.5 ResNet block with a 1×1 shortcut (up_blocks.3's first: 640 -> 320 channels at 64², batch 2,
// channels-last half, the fused GroupNorm path): the shortcut as a GEMM with its bias in the epilogue
// against cuDNN's 1×1 convolution and its separate bias add (DIFFBENCH_FUSED_ADDLN=0). Both accumulate
// in float; the shortcut is rounded to half once instead of twice, then added with the same kernel.
TEST(AddLayerNormKernel, ResnetShortcutGemmMatchesConvolution) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  ResnetBlock2DOptions o;
  o.in_channels = 640;
  o.out_channels = 320;
  o.temb_channels = 1280;
  o.eps = 1e-5;
  ResnetBlock2D block(o);
  block->to(torch::kCUDA, torch::kHalf);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const at::Tensor x = (torch::randn({2, 640, 64, 64}, cuda) * 2).to(torch::kHalf).contiguous(at::MemoryFormat::ChannelsLast);
  const at::Tensor temb = torch::randn({2, 1280}, cuda).to(torch::kHalf);
  ASSERT_TRUE(fused_nhwc(x) && fused_add_layer_norm(x));
  const at::Tensor fused = block(x, temb), again = block(x, temb);
  at::Tensor plain;
  {
    ScopedEnv off("DIFFBENCH_FUSED_ADDLN", "0");
    plain = block(x, temb);
  }
  EXPECT_TRUE(at::equal(fused, again)) << "two calls on the same input differ";
  EXPECT_TRUE(fused.is_contiguous(at::MemoryFormat::ChannelsLast));
  const double scale = plain.abs().max().item<double>();
  const double max_err = (fused.to(torch::kFloat) - plain.to(torch::kFloat)).abs().max().item<double>();
  // The shortcut's values differ by at most one rounding (half an ulp), the sum by one more: 2 ulps of
  // the largest value at most.
  EXPECT_LT(max_err, 2 * 0x1p-10 * scale) << "largest difference, output range " << scale;
  EXPECT_GT(scale, 1.0);
}
