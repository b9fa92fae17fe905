#include "diffbench/models/blocks/resnet.hpp"

#include "diffbench/models/blocks/layers.hpp"

#include "diffbench/models/blocks/linear.hpp"
#include "diffbench/models/blocks/norm.hpp"

#include <torch/nn/functional/activation.h>

#include "util/ab_switch.hpp"

namespace diffbench {

namespace nn = torch::nn;

ResnetBlock2DImpl::ResnetBlock2DImpl(const ResnetBlock2DOptions& options) : options_(options) {
  if (options_.out_channels == 0) options_.out_channels = options_.in_channels;
  const int64_t cin = options_.in_channels, cout = options_.out_channels;
  norm1 = register_module("norm1", make_group_norm(nn::GroupNormOptions(options_.groups, cin).eps(options_.eps)));
  conv1 = register_module("conv1", make_conv2d(nn::Conv2dOptions(cin, cout, 3).stride(1).padding(1)));
  if (options_.temb_channels > 0)
    time_emb_proj = register_module("time_emb_proj", make_linear(options_.temb_channels, cout));
  norm2 = register_module("norm2", make_group_norm(nn::GroupNormOptions(options_.groups, cout).eps(options_.eps)));
  conv2 = register_module("conv2", make_conv2d(nn::Conv2dOptions(cout, cout, 3).stride(1).padding(1)));
  if (cin != cout) conv_shortcut = register_module("conv_shortcut", make_conv2d(nn::Conv2dOptions(cin, cout, 1)));
}

at::Tensor ResnetBlock2DImpl::time_shift(const TimeEmbedding& temb) const {
  if (!time_emb_proj) return {};
  if (temb.projected.defined() && projection_column_ >= 0)
    return temb.projected.narrow(1, projection_column_, options_.out_channels);
  if (!temb.emb.defined()) return {};
  return linear(time_emb_proj, at::silu(temb.emb));
}

at::Tensor ResnetBlock2DImpl::forward(const at::Tensor& x, const TimeEmbedding& temb) {
  if (fused_nhwc(x)) {
    // The same computation with conv1's bias and the time embedding added inside norm2's kernel
    // and conv2's bias inside the skip connection's add (three fewer passes over h).
    const auto conv = [](torch::nn::Conv2d& c, const at::Tensor& in) {  // 3×3, stride 1, padding 1
      return at::conv2d(in, c->weight, {}, /*stride=*/1, /*padding=*/1);
    };
    at::Tensor h = conv(conv1, group_norm_act(x, norm1, /*silu=*/true));
    const at::Tensor temb_shift = time_shift(temb);  // [B, Cout]; conv1's bias is added beside it, in the kernel
    if (!ab_switch_on("DIFFBENCH_GN_SHIFTS"))  // the two added in a pass first
      h = conv(conv2, group_norm_act(h, norm2, /*silu=*/true,
                                     temb_shift.defined() ? temb_shift + conv1->bias : conv1->bias.unsqueeze(0)));
    else
      h = conv(conv2, group_norm_act(h, norm2, /*silu=*/true, temb_shift, conv1->bias));
    at::Tensor shortcut = x;
    if (conv_shortcut && fused_add_layer_norm(x)) {
      // The 1×1 shortcut as a GEMM over the pixels' channel vectors (views of channels-last x), its
      // bias in the GEMM's epilogue: LibTorch's cuDNN convolution adds a bias in a pass of its own.
      const int64_t B = x.size(0), Cin = x.size(1), H = x.size(2), W = x.size(3);
      const at::Tensor& w = conv_shortcut->weight;  // [Cout, Cin, 1, 1]
      shortcut = gemm(x.permute({0, 2, 3, 1}).reshape({B * H * W, Cin}), w.reshape({w.size(0), Cin}),
                       conv_shortcut->bias)                         // [B·H·W, Cout]
                     .view({B, H, W, w.size(0)})
                     .permute({0, 3, 1, 2});                        // [B, Cout, H, W], channels-last
    } else if (conv_shortcut) {
      shortcut = conv_shortcut(x);
    }
    return bias_residual(h, conv2->bias, shortcut, 1.0 / options_.output_scale_factor);
  }
  at::Tensor h = conv1(group_norm_act(x, norm1, /*silu=*/true));  // [B, Cout, H, W]
  if (const at::Tensor t = time_shift(temb); t.defined()) h = h + t.unsqueeze(-1).unsqueeze(-1);  // over H, W
  h = conv2(group_norm_act(h, norm2, /*silu=*/true));  // dropout is the identity at inference
  at::Tensor shortcut = conv_shortcut ? conv_shortcut(x) : x;
  at::Tensor out = shortcut + h;
  if (options_.output_scale_factor != 1.0) out = out / options_.output_scale_factor;
  return out;
}

}  // namespace diffbench
