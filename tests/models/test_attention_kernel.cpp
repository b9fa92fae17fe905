// The own attention kernels of the CUDA build through the Attention module that uses them, against the same
// module in float and in half with the kernel off (LibTorch's fused SDPA).
//
// The head-dim-40 attention kernel (kernels/attention_hd40.cuh, Hopper) through the Attention
// module that uses it, against the same module in float (LibTorch's SDPA) and in half with the kernel off
// (DIFFBENCH_HD40_ATTENTION=0: LibTorch's fused SDPA): SD 1.5's first-level self-attention at 512² (batch 1
// and 4 with guidance) and 1024², ToMe's merged token count at 1024², a length that is not a whole number of
// the kernel's tiles or blocks, sharp and flat softmaxes; and the shapes it leaves to the other paths (fewer
// than 3,072 keys: cross-attention to 77 tokens, ToMe's 2,048 at 512²). Skipped without CUDA, without the
// kernels, or on a device other than compute capability 9.0.
//
// The few-key kernel (kernels/short_attention.cu, compute capability 8.0 and later; DIFFBENCH_SHORT_ATTENTION=0
// turns it off): cross-attention to 77 text tokens at SD 1.5's head dims 40, 80, 160 and SD 2's 64, batch 1
// and 4 with guidance, query counts that are not whole blocks or warps, two keys (one would give both kernels
// v itself), 80 keys, sharp softmaxes, the 64-token self-attention of SD 1.5's 8² level; and 81 keys, which
// it leaves to LibTorch.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include <string>

#include "diffbench/models/blocks/attention.hpp"
#include "diffbench/models/blocks/norm.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

struct Case {
  int64_t batch, tokens, context;  // context: cross-attention's tokens (0: self-attention over `tokens`)
  int64_t query_dim, heads, dim_head;
  double spread;  // the inputs' standard deviation: larger is a sharper softmax
  bool own;       // whether the module takes the own kernel for it
};

// The module for `c` in float (the reference), then in half twice with the kernel and once with `off_switch`
// at "0": the same bits from call to call, the kernel taken where `c.own` says, and as close to the float
// module as LibTorch's half attention.
void expect_as_close_as_libtorch(const Case& c, const char* off_switch) {
  SCOPED_TRACE("batch=" + std::to_string(c.batch) + " tokens=" + std::to_string(c.tokens) + " context=" +
               std::to_string(c.context) + " head dim=" + std::to_string(c.dim_head) +
               " spread=" + std::to_string(c.spread));
  AttentionOptions options;
  options.query_dim = c.query_dim, options.heads = c.heads, options.dim_head = c.dim_head;
  options.cross_attention_dim = c.context > 0 ? 768 : 0;
  Attention attention(options);
  attention->to(torch::kCUDA);
  const auto cuda = torch::TensorOptions().device(torch::kCUDA);
  const at::Tensor x = torch::randn({c.batch, c.tokens, c.query_dim}, cuda) * c.spread;
  const at::Tensor context = c.context > 0 ? torch::randn({c.batch, c.context, 768}, cuda) * c.spread : at::Tensor();
  const at::Tensor reference = attention(x, context);
  attention->to(torch::kHalf);
  const at::Tensor xh = x.to(torch::kHalf), ch = context.defined() ? context.to(torch::kHalf) : context;
  const at::Tensor own = attention(xh, ch);
  const at::Tensor again = attention(xh, ch);
  at::Tensor libtorch;
  {
    test::ScopedEnv off(off_switch, "0");
    libtorch = attention(xh, ch);
  }
  EXPECT_TRUE(torch::equal(own, again)) << "not the same bits from one call to the next";
  if (c.own)
    EXPECT_FALSE(torch::equal(own, libtorch)) << "the kernel was not used";
  else
    EXPECT_TRUE(torch::equal(own, libtorch)) << "the kernel was used for a shape it leaves to the others";
  const double own_max = (own.to(torch::kFloat) - reference).abs().max().item<double>();
  const double lib_max = (libtorch.to(torch::kFloat) - reference).abs().max().item<double>();
  const double own_mean = (own.to(torch::kFloat) - reference).abs().mean().item<double>();
  const double lib_mean = (libtorch.to(torch::kFloat) - reference).abs().mean().item<double>();
  const double scale = reference.abs().max().item<double>();
  EXPECT_LE(own_max, 2.0 * lib_max + 1e-3 * scale) << "LibTorch's half attention: " << lib_max;
  EXPECT_LE(own_mean, 1.5 * lib_mean + 1e-5 * scale) << "LibTorch's half attention: " << lib_mean;
}

}  // namespace

TEST(AttentionHd40Kernel, AsCloseToFloatAsLibTorchsHalfAttention) {
  std::string why = test::cuda_kernels_unavailable(have_fused_group_norm());
  if (why.empty() && !have_hd40_attention_kernel(torch::kCUDA)) why = "the kernel runs on compute capability 9.0 alone";
  if (!why.empty()) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const Case cases[] = {{2, 4096, 0, 320, 8, 40, 1.0, true},   {2, 4096, 0, 320, 8, 40, 4.0, true},
                        {8, 4096, 0, 320, 8, 40, 1.0, true},   {1, 3333, 0, 320, 8, 40, 2.0, true},
                        {2, 16384, 0, 320, 8, 40, 1.0, true},  {2, 8192, 0, 320, 8, 40, 3.0, true},
                        {2, 2048, 0, 320, 8, 40, 1.0, false},  {2, 4096, 77, 320, 8, 40, 1.0, false},
                        {1, 65, 77, 320, 8, 40, 3.0, false}};
  for (const Case& c : cases) expect_as_close_as_libtorch(c, "DIFFBENCH_HD40_ATTENTION");
}

TEST(ShortAttentionKernel, AsCloseToFloatAsLibTorchsHalfAttention) {
  std::string why = test::cuda_kernels_unavailable(have_fused_group_norm());
  if (why.empty() && !have_short_attention_kernel(torch::kCUDA)) why = "the kernel needs compute capability 8.0";
  if (!why.empty()) GTEST_SKIP() << why;
  torch::NoGradGuard no_grad;
  torch::manual_seed(0);
  const Case cases[] = {{2, 4096, 77, 320, 8, 40, 1.0, true},   {8, 4096, 77, 320, 8, 40, 1.0, true},
                        {2, 1024, 77, 640, 8, 80, 1.0, true},   {2, 256, 77, 1280, 8, 160, 1.0, true},
                        {2, 64, 0, 1280, 8, 160, 1.0, true},    {2, 4096, 77, 320, 5, 64, 1.0, true},
                        {2, 1000, 77, 640, 8, 80, 4.0, true},   {1, 65, 77, 320, 8, 40, 3.0, true},
                        {2, 333, 2, 1280, 8, 160, 1.0, true},   {2, 200, 80, 640, 10, 64, 2.0, true},
                        {2, 200, 81, 640, 8, 80, 1.0, false},   {2, 4096, 77, 1280, 8, 160, 2.0, true}};
  for (const Case& c : cases) expect_as_close_as_libtorch(c, "DIFFBENCH_SHORT_ATTENTION");
}
