#include "diffbench/metrics/psnr.hpp"

#include <cmath>
#include <limits>

#include "diffbench/error.hpp"

namespace diffbench {

double psnr(const at::Tensor& a, const at::Tensor& b) {
  if (a.sizes() != b.sizes() || a.numel() == 0)
    throw UsageError("PSNR needs two non-empty images of the same shape, got " + std::string(c10::str(a.sizes())) +
                         " and " + std::string(c10::str(b.sizes())),
                     "psnr");
  const double peak = a.scalar_type() == at::kByte ? 255.0 : 1.0;
  const at::Tensor da = a.to(at::kDouble), db = b.to(a.device(), at::kDouble);  // on a's device
  const double mse = (da - db).square().mean().item<double>();
  if (mse == 0) return std::numeric_limits<double>::infinity();
  return 10.0 * std::log10(peak * peak / mse);
}

CappedPsnr psnr_capped(const at::Tensor& a, const at::Tensor& b, double cap_db) {
  const double p = psnr(a, b);
  CappedPsnr out;
  out.identical = std::isinf(p);
  out.capped = p > cap_db;
  out.db = out.capped ? cap_db : p;
  return out;
}

at::Tensor channel_abs_diff_sum(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() < 3 || a.size(-3) != 3 || a.sizes() != b.sizes() || a.scalar_type() != at::kByte ||
      b.scalar_type() != at::kByte)
    throw UsageError("channel_abs_diff_sum needs two uint8 [...,3,H,W] images of one shape", "images");
  return (a.to(at::kShort) - b.to(at::kShort)).abs().sum(-3, /*keepdim=*/false, at::kShort);
}

}  // namespace diffbench
