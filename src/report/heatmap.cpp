#include "report/heatmap.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>

#include "diffbench/error.hpp"
#include "diffbench/metrics/psnr.hpp"

namespace diffbench {

namespace {

// Stops of a perceptually ordered dark-to-bright map (close to matplotlib's "inferno").
constexpr std::array<std::array<int, 3>, 6> kStops = {{
    {0, 0, 4}, {66, 10, 104}, {147, 38, 103}, {221, 81, 58}, {252, 165, 10}, {252, 255, 164}}};

}  // namespace

at::Tensor abs_diff_map(const at::Tensor& a, const at::Tensor& b) {
  if (a.dim() != 3 || a.size(0) != 3 || a.sizes() != b.sizes())
    throw UsageError("abs_diff_map needs two uint8 [3,H,W] images of one size", "heat map");
  return abs_diff_map_from_sum(channel_abs_diff_sum(a, b));
}

at::Tensor abs_diff_map_from_sum(const at::Tensor& channel_sum) {
  return channel_sum.to(at::kCPU).to(at::kFloat).div_(3);  // [H,W]
}

const std::vector<std::string>& heat_colours() {
  static const std::vector<std::string> colours = [] {
    std::vector<std::string> out;
    for (const auto& s : kStops) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "#%02x%02x%02x", s[0], s[1], s[2]);
      out.push_back(buf);
    }
    return out;
  }();
  return colours;
}

at::Tensor heat_image(const at::Tensor& diff_map, double scale_max) {
  const at::Tensor d = diff_map.to(at::kFloat).contiguous();
  const int64_t n = d.numel();
  at::Tensor out = at::empty({d.size(0), d.size(1), 3}, at::kByte);
  const float* src = d.data_ptr<float>();
  uint8_t* dst = out.data_ptr<uint8_t>();
  const double top = scale_max > 0 ? scale_max : 1.0;
  const double last = static_cast<double>(kStops.size() - 1);
  for (int64_t i = 0; i < n; ++i) {
    const double t = std::clamp(static_cast<double>(src[i]) / top, 0.0, 1.0) * last;
    const size_t k = std::min(static_cast<size_t>(t), kStops.size() - 2);
    const double f = t - static_cast<double>(k);
    for (int c = 0; c < 3; ++c)
      dst[3 * i + c] = static_cast<uint8_t>(std::lround((1 - f) * kStops[k][c] + f * kStops[k + 1][c]));
  }
  return out;
}

}  // namespace diffbench
