// report.html: an evaluation's report.json as one self-contained page a person reads at a glance.
// The verdict on top; the per-prompt grid (baseline | candidate | |Δ| heat map, with each prompt's
// metrics, sortable, worst first); plots as inline SVG; protocol, consistency and environment at
// the bottom. CSS and script are inline and nothing is fetched: images are files beside the page or,
// with embed_images, data URIs in it.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <ATen/ATen.h>

#include <nlohmann/json.hpp>

namespace diffbench {

struct HtmlReportOptions {
  bool embed_images = false;  // images as data URIs in report.html (one portable file)
  // Per prompt, channel_abs_diff_sum of its baseline and candidate images (int16 [H,W], metrics/psnr.hpp)
  // when the caller has them (eval computes them as the batches finish), so that the page need not
  // decode the PNGs again; empty, or one undefined: the PNGs are read.
  std::vector<at::Tensor> channel_abs_diff_sums;
};

// One prompt's images as the page shows them: a relative path or a data URI each ("" when absent),
// and the mean per-pixel |Δ| (0..255) of the two images (NaN when the sizes differ or one is missing).
struct PromptImages {
  std::string baseline, candidate, diff;
  double mean_abs_diff = 0;
  int width = 0;  // of the baseline image (small images are drawn with sharp pixels)
};

struct ReportImages {
  std::vector<PromptImages> prompts;  // in prompt order
  double scale_max = 0;               // the heat maps' colour scale runs from 0 to this |Δ|
};

// The page for `report` (report.json, schema diffbench.eval/2) with `images`.
std::string render_html(const nlohmann::json& report, const ReportImages& images);

// Writes `dir`/report.html for the evaluation whose report.json is `report` and whose images are in
// `dir` (report["image_dirs"]), and each prompt's |Δ| heat map as `dir`/diff/NNNNNN.png, all on one
// colour scale: the largest |Δ| of any pixel of any prompt.
void write_html_report(const std::filesystem::path& dir, const nlohmann::json& report,
                       const HtmlReportOptions& options = {});

}  // namespace diffbench
