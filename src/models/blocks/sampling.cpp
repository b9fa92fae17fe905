#include "diffbench/models/blocks/sampling.hpp"
#include "diffbench/models/blocks/layers.hpp"

#include <array>

#include <torch/nn/functional/upsampling.h>
#include <c10/core/InferenceMode.h>

#ifdef DIFFBENCH_WITH_CUDA_KERNELS
#include "kernels/subpixel.hpp"
#endif
#include "util/ab_switch.hpp"

namespace diffbench {

namespace nn = torch::nn;

Downsample2DImpl::Downsample2DImpl(int64_t channels, int64_t out_channels, int64_t padding) : padding_(padding) {
  conv = register_module("conv",
                         make_conv2d(nn::Conv2dOptions(channels, out_channels, 3).stride(2).padding(padding)));
}

at::Tensor Downsample2DImpl::forward(const at::Tensor& x) {
  if (padding_ == 0) return conv(at::constant_pad_nd(x, {0, 1, 0, 1}, 0));  // [B, C, H+1, W+1]
  return conv(x);
}

Upsample2DImpl::Upsample2DImpl(int64_t channels, int64_t out_channels)
    : subpixel_(ab_switch_on("DIFFBENCH_SUBPIXEL_UPSAMPLE")) {
  conv = register_module("conv", make_conv2d(nn::Conv2dOptions(channels, out_channels, 3).padding(1)));
}

namespace {

int64_t version_of(const at::Tensor& t) { return !t.defined() || t.is_inference() ? 0 : t._version(); }

// R[a][u][r]: which of the 3x3 kernel's rows r (offsets -1, 0, +1 in the doubled image) land on the 2x2
// kernel's row u for output rows of parity a. The doubled image's rows 2i-1, 2i, 2i+1 are the input's
// rows i-1, i, i; rows 2i, 2i+1, 2i+2 are i, i, i+1. With the conv's padding of 1, the 2x2 kernel at
// output row o reads input rows o-1 and o, and parity a's row i is o = i + a. Columns alike.
// Made by fills on the weights' device, no copy from the host: a refresh may happen inside a CUDA graph
// capture (weights changed between a shape's first call and its capture), where such copies may not.
at::Tensor parity_taps(const at::TensorOptions& options) {
  at::Tensor r = at::zeros({2, 2, 3}, options);
  using Tap = std::array<int64_t, 3>;  // a, u, r
  for (const Tap& t : {Tap{0, 0, 0}, Tap{0, 1, 1}, Tap{0, 1, 2}, Tap{1, 0, 0}, Tap{1, 0, 1}, Tap{1, 1, 2}})
    r[t[0]][t[1]][t[2]].fill_(1.0);
  return r;
}

}  // namespace

void Upsample2DImpl::refresh_subpixel_weights() {
  const at::Tensor& w = conv->weight;
  const std::array<int64_t, 6> of{reinterpret_cast<int64_t>(w.data_ptr()), version_of(w),
                          static_cast<int64_t>(w.scalar_type()), static_cast<int64_t>(w.device().type()),
                          w.device().index(), w.is_contiguous(at::MemoryFormat::ChannelsLast) ? 1 : 0};
  if (of == subpixel_of_) return;
  // Normal (not inference) tensors, so that a later refresh may write into them in any mode.
  c10::InferenceMode normal(false);
  at::NoGradGuard no_grad;
  const int64_t out = w.size(0), in = w.size(1);
  const at::Tensor r = parity_taps(w.options().dtype(at::kDouble));
  // K[a, b, o, i, u, v] = Σ_{r,s} R[a, u, r] · R[b, v, s] · W[o, i, r, s], the sums exact in double.
  at::Tensor k = at::einsum("aur,bvs,oirs->aboiuv", {r, r, w.to(at::kDouble)}).reshape({4 * out, in, 2, 2});
  k = k.to(w.scalar_type()).contiguous(w.suggest_memory_format());
  const bool same_shape = subpixel_weight_.defined() && subpixel_weight_.sizes() == k.sizes() &&
                          subpixel_weight_.options().type_equal(k.options()) &&
                          subpixel_weight_.strides() == k.strides();
  if (same_shape)
    subpixel_weight_.copy_(k);
  else
    subpixel_weight_ = k;
  subpixel_of_ = of;
}

at::Tensor Upsample2DImpl::forward_subpixel(const at::Tensor& x) {
  refresh_subpixel_weights();
  const int64_t n = x.size(0), c = conv->weight.size(0), h = x.size(2), w = x.size(3);
  // y[:, (2a + b)·C + c, o, p]: parity (a, b)'s output at input-grid position (o, p), o = i + a, p = j + b.
  const at::Tensor y = at::conv2d(x, subpixel_weight_, {}, 1, 1);  // [N, 4C, H+1, W+1], no bias
#ifdef DIFFBENCH_WITH_CUDA_KERNELS
  // The same values in one pass of 16-byte copies (DIFFBENCH_SUBPIXEL_KERNEL=0: LibTorch's strided add below).
  if (x.suggest_memory_format() == at::MemoryFormat::ChannelsLast &&
      kernels::subpixel_interleave_supported(y, conv->bias) && ab_switch_on("DIFFBENCH_SUBPIXEL_KERNEL"))
    return kernels::subpixel_interleave(y, conv->bias);
#endif
  // out[n, c, 2i + a, 2j + b] = y[n, (2a + b)·C + c, i + a, j + b] + bias[c]: affine in (n, c, i, a, j, b),
  // so one strided view of y, written once into the output's layout with the conv's bias added on the way
  // (on CUDA LibTorch adds a convolution's bias in a pass of its own, with the same rounding).
  const auto s = y.strides();
  const at::Tensor parities = y.as_strided({n, c, h, 2, w, 2},
                                           {s[0], s[1], s[2], 2 * c * s[1] + s[2], s[3], c * s[1] + s[3]},
                                           y.storage_offset());
  at::Tensor result = at::empty({n, c, 2 * h, 2 * w}, y.options().memory_format(x.suggest_memory_format()));
  at::Tensor out = result.view({n, c, h, 2, w, 2});
  if (conv->bias.defined())
    at::add_out(out, parities, conv->bias.view({1, c, 1, 1, 1, 1}));
  else
    out.copy_(parities);
  return result;
}

at::Tensor Upsample2DImpl::forward(const at::Tensor& x, const std::optional<std::vector<int64_t>>& output_size) {
  namespace F = torch::nn::functional;
  const bool doubling = !output_size || (output_size->size() == 2 && (*output_size)[0] == 2 * x.size(2) &&
                                         (*output_size)[1] == 2 * x.size(3));
  if (subpixel_ && doubling && x.dim() == 4 && !at::GradMode::is_enabled()) return forward_subpixel(x);
  at::Tensor h = x;
  // upsample_nearest_nhwc fails with large batches (diffusers issue 984).
  if (h.size(0) >= 64) h = h.contiguous();
  auto opts = F::InterpolateFuncOptions().mode(torch::kNearest);
  if (output_size)
    opts.size(*output_size);
  else
    opts.scale_factor(std::vector<double>{2.0, 2.0});
  h = F::interpolate(h, opts);  // [B, C, 2H, 2W] or [B, C, *output_size]
  return conv(h);
}

}  // namespace diffbench
