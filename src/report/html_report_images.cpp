// report.html's images: the |Δ| heat maps written beside the report, and data URIs for --embed-images.
#include <algorithm>
#include <cmath>
#include <cstdio>
#include <limits>

#include "diffbench/io/image.hpp"
#include "diffbench/io/read_file.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "diffbench/report/html_report.hpp"
#include "report/heatmap.hpp"
#include "util/parallel.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

std::string base64(const std::string& bytes) {
  static const char* const kAlphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const uint32_t v = (uint32_t(uint8_t(bytes[i])) << 16) | (uint32_t(uint8_t(bytes[i + 1])) << 8) | uint8_t(bytes[i + 2]);
    for (int s = 18; s >= 0; s -= 6) out += kAlphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    uint32_t v = uint32_t(uint8_t(bytes[i])) << 16;
    if (i + 1 < bytes.size()) v |= uint32_t(uint8_t(bytes[i + 1])) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// The page's reference to an image file: its path relative to the report, or its bytes.
std::string source(const fs::path& dir, const std::string& rel, bool embed) {
  if (!embed) return rel;
  return "data:image/png;base64," + base64(read_regular_file(dir / rel));
}

}  // namespace

void write_html_report(const fs::path& dir, const nlohmann::json& r, const HtmlReportOptions& o) {
  const std::string base_dir = r.contains("image_dirs") ? r["image_dirs"]["baseline"].get<std::string>() : "baseline";
  const std::string cand_dir = r.contains("image_dirs") ? r["image_dirs"]["candidate"].get<std::string>() : "candidate";
  const size_t n = r["protocol"]["prompts"].size();
  // Every difference first: the colour scale is the largest |Δ| of the whole report.
  std::vector<at::Tensor> maps(n);
  std::vector<int> widths(n, 0);
  const auto& sums = o.channel_abs_diff_sums;
  const bool given = sums.size() == n && std::all_of(sums.begin(), sums.end(), [](const at::Tensor& t) { return t.defined(); });
  parallel_for(n, [&](size_t i) {  // images decoded on several threads, unless the caller has the differences
    const fs::path b = dir / base_dir / png_sequence_name(i), c = dir / cand_dir / png_sequence_name(i);
    if (!fs::exists(b) || !fs::exists(c)) return;
    if (given) {
      maps[i] = abs_diff_map_from_sum(sums[i]);
      widths[i] = static_cast<int>(maps[i].size(1));
      return;
    }
    const at::Tensor bi = read_png(b), ci = read_png(c);
    widths[i] = static_cast<int>(bi.size(2));
    if (bi.sizes() != ci.sizes()) return;  // sizes differ (--allow-task-change): no per-pixel difference
    maps[i] = abs_diff_map(bi, ci);
  });
  double scale_max = 0;
  for (const auto& m : maps)
    if (m.defined()) scale_max = std::max(scale_max, m.max().item<double>());
  scale_max = std::max(scale_max, 1.0);  // identical images: a scale of one grey level, all dark
  std::vector<size_t> heat;  // the prompts with a heat map, coloured and encoded on several threads
  for (size_t i = 0; i < n; ++i)
    if (maps[i].defined()) heat.push_back(i);
  if (!heat.empty()) fs::create_directories(dir / "diff");
  parallel_for(heat.size(), [&](size_t j) {
    // Fast zlib: a heat map is a look, made when the report is, at the end of the run.
    write_png(dir / "diff" / png_sequence_name(heat[j]), heat_image(maps[heat[j]], scale_max), 1);
  });
  ReportImages images;
  images.scale_max = scale_max;
  for (size_t i = 0; i < n; ++i) {
    PromptImages p;
    p.width = widths[i];
    p.mean_abs_diff = std::numeric_limits<double>::quiet_NaN();
    if (fs::exists(dir / base_dir / png_sequence_name(i))) p.baseline = source(dir, base_dir + "/" + png_sequence_name(i), o.embed_images);
    if (fs::exists(dir / cand_dir / png_sequence_name(i))) p.candidate = source(dir, cand_dir + "/" + png_sequence_name(i), o.embed_images);
    if (maps[i].defined()) {
      p.diff = source(dir, "diff/" + png_sequence_name(i), o.embed_images);
      p.mean_abs_diff = maps[i].mean().item<double>();
    }
    images.prompts.push_back(std::move(p));
  }
  write_file_atomic(dir / "report.html", render_html(r, images));
}

}  // namespace diffbench
