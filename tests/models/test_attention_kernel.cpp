// The head-dim-40 attention kernel of the CUDA build (kernels/attention_hd40.cuh, Hopper) through the Attention
// module that uses it, against the same module in float (LibTorch's SDPA) and in half with the kernel off
// (DIFFBENCH_HD40_ATTENTION=0: LibTorch's fused SDPA): SD 1.5's first-level self-attention at 512² (batch 1
// and 4 with guidance) and 1024², ToMe's merged token count at 1024², a length that is not a whole number of
// the kernel's tiles or blocks, sharp and flat softmaxes; and the shapes it leaves to LibTorch (fewer than
// 3,072 keys: cross-attention to 77 tokens, ToMe's 2,048 at 512²). Skipped without CUDA, without the
// kernels, or on a device other than compute capability 9.0.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/blocks/norm.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

struct Case {
  int64_t batch, tokens, context;  // context: cross-attention's tokens (0: self-attention)
  double spread;                   // the input's standard deviation: larger is a sharper softmax
  bool own;                        // whether the module takes the own kernel for it
};

bool skip_reason(std::string& why) {
  why = test::cuda_kernels_unavailable(have_fused_group_norm());
  if (why.empty() && !have_hd40_attention_kernel(torch::kCUDA))
    why = "the kernel runs on compute capability 9.0 alone";
  return !why.empty();
}

}  // namespace

TEST(AttentionHd40Kernel, AsCloseToFloatAsLibTorchsHalfAttention) {
  std::string why;
  if (skip_reason(why)) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const Case cases[] = {{2, 4096, 0, 1.0, true},  {2, 4096, 0, 4.0, true},   {8, 4096, 0, 1.0, true},
                        {1, 3333, 0, 2.0, true},  {2, 16384, 0, 1.0, true},  {2, 8192, 0, 3.0, true},
                        {2, 2048, 0, 1.0, false}, {2, 4096, 77, 1.0, false}, {1, 65, 77, 3.0, false}};
  for (const Case& c : cases) {
    SCOPED_TRACE("batch=" + std::to_string(c.batch) + " tokens=" + std::to_string(c.tokens) +
                 " context=" + std::to_string(c.context) + " spread=" + std::to_string(c.spread));
    AttentionOptions options;
    options.query_dim = 320, options.heads = 8, options.dim_head = 40;
    options.cross_attention_dim = c.context > 0 ? 768 : 0;
    Attention attention(options);
    attention->to(torch::kCUDA);
    const auto cuda = torch::TensorOptions().device(torch::kCUDA);
    const at::Tensor x = torch::randn({c.batch, c.tokens, 320}, cuda) * c.spread;
    const at::Tensor context = c.context > 0 ? torch::randn({c.batch, c.context, 768}, cuda) : at::Tensor();
    const at::Tensor reference = attention(x, context);
    attention->to(torch::kHalf);
    const at::Tensor xh = x.to(torch::kHalf), ch = context.defined() ? context.to(torch::kHalf) : context;
    const at::Tensor own = attention(xh, ch);
    const at::Tensor again = attention(xh, ch);
    at::Tensor libtorch;
    {
      test::ScopedEnv off("DIFFBENCH_HD40_ATTENTION", "0");
      libtorch = attention(xh, ch);
    }
    EXPECT_TRUE(torch::equal(own, again)) << "not the same bits from one call to the next";
    if (c.own)
      EXPECT_FALSE(torch::equal(own, libtorch)) << "the kernel was not used";
    else
      EXPECT_TRUE(torch::equal(own, libtorch)) << "the kernel was used where LibTorch's is as fast";
    const double own_max = (own.to(torch::kFloat) - reference).abs().max().item<double>();
    const double lib_max = (libtorch.to(torch::kFloat) - reference).abs().max().item<double>();
    const double own_mean = (own.to(torch::kFloat) - reference).abs().mean().item<double>();
    const double lib_mean = (libtorch.to(torch::kFloat) - reference).abs().mean().item<double>();
    const double scale = reference.abs().max().item<double>();
    EXPECT_LE(own_max, 2.0 * lib_max + 1e-3 * scale) << "LibTorch's half attention: " << lib_max;
    EXPECT_LE(own_mean, 1.5 * lib_mean + 1e-5 * scale) << "LibTorch's half attention: " << lib_mean;
  }
}
