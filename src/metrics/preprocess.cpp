#include "diffbench/metrics/preprocess.hpp"

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "diffbench/error.hpp"

namespace diffbench {

namespace {

constexpr int kPrecisionBits = 32 - 8 - 2;  // Pillow's PRECISION_BITS

double bicubic_filter(double x) {
  constexpr double a = -0.5;
  if (x < 0.0) x = -x;
  if (x < 1.0) return ((a + 2.0) * x - (a + 3.0)) * x * x + 1;
  if (x < 2.0) return (((x - 5) * x + 8) * x - 4) * a;
  return 0.0;
}
constexpr double kBicubicSupport = 2.0;

// Fixed-point weights of one axis: output pixel i reads `count[i]` input pixels from `first[i]`,
// weights at coeffs[i * ksize + j].
struct AxisCoeffs {
  int ksize = 0;
  std::vector<int> first, count;
  std::vector<int32_t> coeffs;
};

// Pillow's precompute_coeffs + normalize_coeffs_8bpc for the box [0, in_size].
AxisCoeffs precompute_coeffs(int in_size, int out_size) {
  const float in0 = 0.0f, in1 = static_cast<float>(in_size);
  const double scale = static_cast<double>(in1 - in0) / out_size;
  const double filterscale = scale < 1.0 ? 1.0 : scale;
  const double support = kBicubicSupport * filterscale;
  AxisCoeffs ax;
  ax.ksize = static_cast<int>(std::ceil(support)) * 2 + 1;
  ax.first.resize(size_t(out_size));
  ax.count.resize(size_t(out_size));
  ax.coeffs.assign(size_t(out_size) * size_t(ax.ksize), 0);
  std::vector<double> k(size_t(ax.ksize));
  for (int xx = 0; xx < out_size; ++xx) {
    const double center = in0 + (xx + 0.5) * scale;
    const double ss = 1.0 / filterscale;
    int xmin = static_cast<int>(center - support + 0.5);  // truncation, as the C cast
    if (xmin < 0) xmin = 0;
    int xmax = static_cast<int>(center + support + 0.5);
    if (xmax > in_size) xmax = in_size;
    xmax -= xmin;
    double ww = 0.0;
    for (int x = 0; x < xmax; ++x) {
      const double w = bicubic_filter((x + xmin - center + 0.5) * ss);
      k[size_t(x)] = w;
      ww += w;
    }
    int32_t* out = &ax.coeffs[size_t(xx) * size_t(ax.ksize)];
    for (int x = 0; x < xmax; ++x) {
      const double w = ww != 0.0 ? k[size_t(x)] / ww : k[size_t(x)];
      out[x] = w < 0 ? static_cast<int32_t>(-0.5 + w * (1 << kPrecisionBits))
                     : static_cast<int32_t>(0.5 + w * (1 << kPrecisionBits));
    }
    ax.first[size_t(xx)] = xmin;
    ax.count[size_t(xx)] = xmax;
  }
  return ax;
}

inline uint8_t clip8(int64_t in) {
  if (in >= (int64_t(1) << kPrecisionBits << 8)) return 255;
  if (in <= 0) return 0;
  return static_cast<uint8_t>(in >> kPrecisionBits);
}

// One pass along the last axis of a [C,H,W] uint8 buffer: out[c][y][i] = Σ_j in[c][y][first+j]·w.
void resample_rows(const uint8_t* in, int channels, int h, int w_in, const AxisCoeffs& ax, int w_out, uint8_t* out) {
  for (int c = 0; c < channels; ++c)
    for (int y = 0; y < h; ++y) {
      const uint8_t* row = in + (size_t(c) * h + y) * w_in;
      uint8_t* orow = out + (size_t(c) * h + y) * w_out;
      for (int xx = 0; xx < w_out; ++xx) {
        const int32_t* k = &ax.coeffs[size_t(xx) * size_t(ax.ksize)];
        const uint8_t* src = row + ax.first[size_t(xx)];
        int64_t ss = int64_t(1) << (kPrecisionBits - 1);
        for (int x = 0; x < ax.count[size_t(xx)]; ++x) ss += int64_t(src[x]) * k[x];
        orow[xx] = clip8(ss);
      }
    }
}

// One pass along the middle axis: out[c][i][x] = Σ_j in[c][first+j][x]·w.
void resample_cols(const uint8_t* in, int channels, int h_in, int w, const AxisCoeffs& ax, int h_out, uint8_t* out) {
  std::vector<int64_t> acc(static_cast<size_t>(w));
  for (int c = 0; c < channels; ++c)
    for (int yy = 0; yy < h_out; ++yy) {
      const int32_t* k = &ax.coeffs[size_t(yy) * size_t(ax.ksize)];
      std::fill(acc.begin(), acc.end(), int64_t(1) << (kPrecisionBits - 1));
      for (int y = 0; y < ax.count[size_t(yy)]; ++y) {
        const uint8_t* row = in + (size_t(c) * h_in + size_t(ax.first[size_t(yy)] + y)) * w;
        const int64_t ky = k[y];
        for (int x = 0; x < w; ++x) acc[size_t(x)] += int64_t(row[x]) * ky;
      }
      uint8_t* orow = out + (size_t(c) * h_out + yy) * w;
      for (int x = 0; x < w; ++x) orow[x] = clip8(acc[size_t(x)]);
    }
}

void check_rgb_u8(const at::Tensor& img, const char* fn) {
  if (!img.defined() || img.scalar_type() != at::kByte || img.dim() != 3 || img.size(0) != 3 || img.size(1) == 0 ||
      img.size(2) == 0)
    throw UsageError(std::string(fn) + ": expects a non-empty uint8 image [3,H,W], got " +
                     (img.defined() ? c10::str(img.scalar_type(), " ", img.sizes()) : std::string("undefined")));
}

}  // namespace

at::Tensor resize_bicubic_pil(const at::Tensor& img_u8, int out_h, int out_w) {
  check_rgb_u8(img_u8, "resize_bicubic_pil");
  if (out_h <= 0 || out_w <= 0)
    throw UsageError("resize_bicubic_pil: output size must be positive, got " + std::to_string(out_h) + "x" +
                     std::to_string(out_w));
  at::Tensor src = img_u8.to(at::kCPU).contiguous();
  const int c = 3, h = int(src.size(1)), w = int(src.size(2));
  // Pass order as Pillow 13 (python-pillow/Pillow#9549): vertical first when the height loses more
  // than twice as many pixels as the width, otherwise horizontal first. An unchanged axis is skipped.
  const bool vertical_first = out_h < h && (h - out_h) > 2 * (w - out_w);
  auto horizontal = [&](const at::Tensor& in) {
    const int rows = int(in.size(1));
    at::Tensor out = at::empty({c, rows, out_w}, at::kByte);
    resample_rows(in.data_ptr<uint8_t>(), c, rows, w, precompute_coeffs(w, out_w), out_w, out.data_ptr<uint8_t>());
    return out;
  };
  auto vertical = [&](const at::Tensor& in) {
    const int cols = int(in.size(2));
    at::Tensor out = at::empty({c, out_h, cols}, at::kByte);
    resample_cols(in.data_ptr<uint8_t>(), c, h, cols, precompute_coeffs(h, out_h), out_h, out.data_ptr<uint8_t>());
    return out;
  };
  if (vertical_first) {
    src = vertical(src);
    if (out_w != w) src = horizontal(src);
  } else {
    if (out_w != w) src = horizontal(src);
    if (out_h != h) src = vertical(src);
  }
  return src.data_ptr() == img_u8.data_ptr() ? src.clone() : src;
}

at::Tensor clip_preprocess(const at::Tensor& img_u8, int size, std::array<double, 3> mean, std::array<double, 3> std,
                           CenterCrop crop_rule) {
  check_rgb_u8(img_u8, "clip_preprocess");
  if (size <= 0) throw UsageError("clip_preprocess: size must be positive, got " + std::to_string(size));
  const int64_t h = img_u8.size(1), w = img_u8.size(2);
  // Shorter side to `size`, longer to int(size * long / short) (Python's true division, truncated).
  const int64_t short_side = std::min(h, w), long_side = std::max(h, w);
  const auto new_long = static_cast<int64_t>(static_cast<double>(int64_t(size) * long_side) / double(short_side));
  const int64_t new_h = w <= h ? new_long : size;
  const int64_t new_w = w <= h ? size : new_long;
  at::Tensor resized = resize_bicubic_pil(img_u8, int(new_h), int(new_w));  // [3,new_h,new_w]

  // torchvision: int(round(d / 2.0)) with Python's round (ties to even); transformers: d // 2.
  auto offset = [crop_rule](int64_t extra) {
    return crop_rule == CenterCrop::Torchvision ? static_cast<int64_t>(std::nearbyint(double(extra) / 2.0))
                                                : extra / 2;
  };
  const int64_t top = offset(new_h - size), left = offset(new_w - size);
  at::Tensor crop = resized.narrow(1, top, size).narrow(2, left, size);  // [3,size,size]

  at::Tensor x = crop.to(at::kFloat).div(255.0f);
  auto m = at::tensor({float(mean[0]), float(mean[1]), float(mean[2])}).view({3, 1, 1});
  auto s = at::tensor({float(std[0]), float(std[1]), float(std[2])}).view({3, 1, 1});
  return x.sub(m).div(s).contiguous();
}

}  // namespace diffbench
