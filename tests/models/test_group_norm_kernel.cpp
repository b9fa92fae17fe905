// The fused channels-last GroupNorm (+SiLU, + per-sample and per-channel shifts) of the CUDA build
// against LibTorch's group_norm in float32 on the same values, for the channel counts of SD 1.x/2.x/SDXL
// UNets and VAEs, and bit-identical from one call to the next (its statistics add in a fixed order, no
// atomics, so an evaluation's images are the same in every process). Small groups (the 8x8 and 16x16
// levels) go to the one-pass kernel, and again with DIFFBENCH_GN_ONE_PASS=0 to the three kernels: both
// are checked, including every vector width of the one-pass kernel (group sizes of 8n, 4n, 2n and odd
// channels). Skipped without CUDA or without the kernels.
#include <cstdlib>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "diffbench/models/blocks/norm.hpp"

using namespace diffbench;

namespace {

struct Case {
  int64_t n, c, h, w, groups;
};

}  // namespace

TEST(GroupNormKernel, MatchesLibTorchAndRepeatsBitForBit) {
  if (!torch::cuda::is_available()) GTEST_SKIP() << "no CUDA device";
  if (!have_fused_group_norm()) GTEST_SKIP() << "built without the CUDA kernels";
  torch::manual_seed(0);
  const Case cases[] = {{2, 32, 16, 16, 32},  {2, 64, 8, 8, 32},    {2, 320, 64, 64, 32}, {1, 640, 32, 32, 32},
                        {4, 1280, 8, 8, 32},  {2, 1280, 16, 16, 32}, {1, 512, 64, 64, 32}, {1, 128, 128, 128, 32},
                        {2, 2560, 8, 8, 32},  {1, 96, 24, 24, 8},    {2, 640, 16, 16, 32}, {2, 1920, 16, 16, 32},
                        {2, 320, 8, 8, 32},   {2, 24, 8, 8, 8},      {2, 2560, 16, 16, 32}};
  struct RestoreEnv {
    ~RestoreEnv() { ::unsetenv("DIFFBENCH_GN_ONE_PASS"); }
  } restore;
  for (const char* one_pass : {"1", "0"})
    for (const Case& k : cases)
      for (bool silu : {false, true})
        for (int shifted : {0, 1, 2, 3, 4}) {
          ::setenv("DIFFBENCH_GN_ONE_PASS", one_pass, 1);
          SCOPED_TRACE("C=" + std::to_string(k.c) + " HW=" + std::to_string(k.h * k.w) +
                       " silu=" + std::to_string(silu) + " shifts=" + std::to_string(shifted) +
                       " one pass allowed=" + one_pass);
          const auto cuda = torch::TensorOptions().device(torch::kCUDA);
          const at::Tensor x32 = torch::randn({k.n, k.c, k.h, k.w}, cuda) * 3 + 0.5;
          const at::Tensor x = x32.to(torch::kHalf).contiguous(at::MemoryFormat::ChannelsLast);
          torch::nn::GroupNorm norm(torch::nn::GroupNormOptions(k.groups, k.c).eps(1e-5));
          norm->to(torch::kCUDA);
          {
            torch::NoGradGuard no_grad;
            norm->weight.uniform_(0.5, 1.5);
            norm->bias.uniform_(-0.5, 0.5);
          }
          // Shifts: none; a float [N, C] one; a half [N, C] one and a half [C] one (a resnet's time
          // embedding and conv1's bias); a float [1, C] one and a half [C] one; a half [N, C] column
          // block of a wider tensor (the UNet's time projections, one GEMM's output) and a half [C] one.
          at::Tensor shift, channel_shift;
          if (shifted == 1) shift = torch::randn({k.n, k.c}, cuda);
          if (shifted == 2) shift = torch::randn({k.n, k.c}, cuda).to(torch::kHalf);
          if (shifted == 3) shift = torch::randn({1, k.c}, cuda);
          if (shifted == 4) shift = torch::randn({k.n, k.c + 24}, cuda).to(torch::kHalf).narrow(1, 16, k.c);
          if (shifted >= 2) channel_shift = torch::randn({k.c}, cuda).to(torch::kHalf);
          at::Tensor y1, y2;
          {
            torch::NoGradGuard no_grad;
            y1 = group_norm_act(x, norm, silu, shift, channel_shift);
            y2 = group_norm_act(x, norm, silu, shift, channel_shift);
          }
          ASSERT_EQ(y1.scalar_type(), torch::kHalf);
          EXPECT_TRUE(at::equal(y1, y2)) << "two calls on the same input differ";
          // Reference: float32 on the half input's values (the kernel reads half, computes in float).
          at::Tensor in = x.to(torch::kFloat).contiguous();
          if (shift.defined()) in = in + shift.to(torch::kFloat).view({shift.size(0), k.c, 1, 1});
          if (channel_shift.defined()) in = in + channel_shift.to(torch::kFloat).view({1, k.c, 1, 1});
          at::Tensor ref = at::group_norm(in, k.groups, norm->weight, norm->bias, 1e-5);
          if (silu) ref = at::silu(ref);
          const double err = (y1.to(torch::kFloat) - ref).abs().max().item<double>();
          EXPECT_LT(err, 2e-2) << "largest difference from LibTorch float32";
        }
}
