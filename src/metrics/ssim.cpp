#include "diffbench/metrics/ssim.hpp"

#include <cmath>
#include <string>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

// torchmetrics' _gaussian: exp(-(d/sigma)²/2) at d = (1-size)/2 ... (size-1)/2, normalised to sum 1.
at::Tensor gaussian_window(int64_t size, double sigma, const at::Device& device) {
  const at::Tensor d = at::arange((1.0 - double(size)) / 2.0, (1.0 + double(size)) / 2.0, 1.0,
                                  at::TensorOptions().dtype(at::kDouble).device(device));
  const at::Tensor g = at::exp(-(d / sigma).square() / 2.0);
  return g / g.sum();
}

}  // namespace

double ssim(const at::Tensor& a, const at::Tensor& b, const SsimOptions& o) {
  if (a.sizes() != b.sizes() || a.dim() != 3)
    throw UsageError("SSIM needs two images [C,H,W] of the same shape, got " + std::string(c10::str(a.sizes())) +
                         " and " + std::string(c10::str(b.sizes())),
                     "ssim");
  if (!(o.sigma > 0)) throw UsageError("SSIM sigma must be positive", "ssim");
  const int64_t window = int64_t(3.5 * o.sigma + 0.5) * 2 + 1;
  const int64_t r = (window - 1) / 2;
  const int64_t channels = a.size(0), h = a.size(1), w = a.size(2);
  if (channels < 1 || h <= r || w <= r)
    throw UsageError("SSIM needs images larger than " + std::to_string(r) + " pixels on each side, got " +
                         std::string(c10::str(a.sizes())),
                     "ssim");
  const double range = a.scalar_type() == at::kByte ? 255.0 : 1.0;
  const double c1 = std::pow(o.k1 * range, 2), c2 = std::pow(o.k2 * range, 2);

  auto padded = [&](const at::Tensor& t) {  // [1,C,H+2r,W+2r], float64 on a's device
    return at::reflection_pad2d(t.to(a.device(), at::kDouble).unsqueeze(0), {r, r, r, r});
  };
  const at::Tensor x = padded(a), y = padded(b);
  // The 2-D Gaussian window is the outer product of the 1-D one: filter rows, then columns.
  const at::Tensor g = gaussian_window(window, o.sigma, a.device());
  const at::Tensor gh = g.view({1, 1, window, 1}).expand({channels, 1, window, 1}).contiguous();
  const at::Tensor gw = g.view({1, 1, 1, window}).expand({channels, 1, 1, window}).contiguous();
  const at::Tensor stack = at::cat({x, y, x * x, y * y, x * y});  // [5,C,H+2r,W+2r]
  auto depthwise = [&](const at::Tensor& in, const at::Tensor& kernel) {  // valid, one kernel per channel
    return at::conv2d(in, kernel, at::Tensor(), at::IntArrayRef{1}, at::IntArrayRef{0}, at::IntArrayRef{1}, channels);
  };
  const at::Tensor filtered = depthwise(depthwise(stack, gh), gw);  // [5,C,H,W]
  const at::Tensor mu_x = filtered[0], mu_y = filtered[1];
  const at::Tensor mu_xx = mu_x * mu_x, mu_yy = mu_y * mu_y, mu_xy = mu_x * mu_y;
  const at::Tensor var_x = at::clamp_min(filtered[2] - mu_xx, 0.0);
  const at::Tensor var_y = at::clamp_min(filtered[3] - mu_yy, 0.0);
  const at::Tensor cov = filtered[4] - mu_xy;
  const at::Tensor map = ((2.0 * mu_xy + c1) * (2.0 * cov + c2)) / ((mu_xx + mu_yy + c1) * (var_x + var_y + c2));
  return map.mean().item<double>();
}

}  // namespace diffbench
