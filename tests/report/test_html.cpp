// The HTML/SVG writer, the heat maps and report.html's page, without a browser.
#include <gtest/gtest.h>

#include <cmath>
#include <regex>

#include "diffbench/eval/preference_quality.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/metrics/psnr.hpp"
#include "diffbench/report/html.hpp"
#include "diffbench/report/html_report.hpp"
#include "diffbench/report/svg.hpp"
#include "report/heatmap.hpp"
#include "report/quality_markdown.hpp"
#include "test_support.hpp"
#include "report/page_text.hpp"

using namespace diffbench;
using diffbench::test::count;
using nlohmann::json;

namespace {

// A report.json of three prompts as the evaluator writes it (schema diffbench.eval/2), prompt 1
// carrying markup.
json small_report() {
  json r;
  r["schema"] = "diffbench.eval/2";
  r["protocol"] = {{"prompts", {"a cat", "<script>alert(1)</script>", "a \"quoted\" & 'odd' one"}},
                   {"num_samples", 3}, {"batch_size", 2}, {"seeds", {42}}, {"noise", "per-prompt"},
                   {"warmup", 1}, {"clip", "tiny-clip"}, {"clip_layout", "transformers"},
                   {"clip_score", "per-sample-clamp"}, {"metrics", "clip,psnr"}, {"prompts_source", "test"},
                   {"repeats", 1}};
  auto side = [](double spi, json clip) {
    return json{{"spec", {{"name", "cand<b>"}, {"scheduler", "pndm"}, {"steps", 10}}},
                {"methods", json::array()}, {"seconds_per_image", spi},
                {"batch_seconds", {2 * spi, spi}}, {"batch_images", {2, 1}}, {"batch_start_s", {0.0, 1.5}},
                {"stages", {{"text_encoder_s", 0.1}, {"denoise_s", 3 * spi - 0.3}, {"vae_decode_s", 0.2}}},
                {"unet_calls_per_image", 21.0}, {"peak_memory_bytes", 1 << 20}, {"peak_memory_kind", "host-rss"},
                {"clip_score", 20.0}, {"per_sample_clip", clip}};
  };
  r["baseline"] = side(2.0, {20.0, 21.0, 19.0});
  r["candidate"] = side(1.0, {19.0, 21.5, 17.0});
  r["speedup"] = 2.0;
  r["speedup_ci"] = {1.9, 2.1};
  r["quality_loss_pct"] = 3.3333;
  // As the evaluator writes it whenever CLIP was scored (the page shows CLIP rows only then).
  r["paired"] = {{"diff", "baseline - candidate, per prompt"}, {"mean_diff", 0.8333}, {"ci95", {-0.5, 2.0}},
                 {"resamples", 10000}};
  r["thresholds"] = {{"max_quality_loss_pct", 5.0}};
  r["metrics"] = {{"psnr", {{"mean", 30.0}, {"ci95", {29.0, 31.0}}, {"worst", 25.0}, {"worst_index", 2},
                            {"threshold", {{"min_mean", 35.0}, {"option", "--min-psnr"}, {"passed", false}}}}}};
  r["per_prompt"] = {{{"index", 2}, {"clip_baseline", 19.0}, {"clip_candidate", 17.0}, {"clip_drop", 2.0}, {"psnr_db", 25.0}},
                     {{"index", 0}, {"clip_baseline", 20.0}, {"clip_candidate", 19.0}, {"clip_drop", 1.0}, {"psnr_db", 30.0}},
                     {{"index", 1}, {"clip_baseline", 21.0}, {"clip_candidate", 21.5}, {"clip_drop", -0.5}, {"psnr_db", 35.0}}};
  r["per_prompt_order"] = "psnr_db ascending";
  r["consistency"] = {{"same_model", true}, {"differences", {"steps <i>"}}};
  r["warnings"] = {{{"code", "timing_noise"}, {"message", "noisy <em>"}}};
  r["passed"] = false;
  r["failures"] = {"PSNR below <35>"};
  r["environment"] = {{"device", "cpu"}, {"threads", 2}};
  return r;
}

}  // namespace

TEST(Html, EscapeCoversTextAndAttributes) {
  EXPECT_EQ(html::escape("<a href=\"x\">'&'</a>"), "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39;&lt;/a&gt;");
  EXPECT_EQ(html::escape("plain ü"), "plain ü");
  html::Writer w;
  w.open("p", {{"title", "\"><script>"}}).text("<script>alert(1)</script>").close();
  EXPECT_EQ(w.str(), "<p title=\"&quot;&gt;&lt;script&gt;\">&lt;script&gt;alert(1)&lt;/script&gt;</p>");
}

TEST(Html, WriterRefusesBadNamesAndOpenTags) {
  html::Writer w;
  EXPECT_THROW(w.open("p onclick=x"), std::logic_error);
  EXPECT_THROW(w.open("p", {{"on click", "x"}}), std::logic_error);
  html::Writer open;
  open.open("div");
  EXPECT_THROW(open.str(), std::logic_error);
  EXPECT_THROW(html::Writer().close(), std::logic_error);
}

TEST(Html, PageIsWellFormedAndSelfContained) {
  const std::string page = html::page("t <1>", "<p>x</p>", ".a{}", "var a=1;");
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  EXPECT_NE(page.find("<title>t &lt;1&gt;</title>"), std::string::npos);
  EXPECT_NE(page.find("<script>var a=1;</script></body></html>"), std::string::npos);
  EXPECT_EQ(page.find("http://"), std::string::npos);
  EXPECT_EQ(page.find("https://"), std::string::npos);
}

TEST(Svg, NiceTicksAreRoundAndCoverTheRange) {
  const auto unit = svg::nice_ticks(0, 1, 5);
  ASSERT_EQ(unit.size(), 6u);
  for (size_t i = 0; i < unit.size(); ++i) EXPECT_NEAR(unit[i], 0.2 * static_cast<double>(i), 1e-12);
  // 14.7 / 5 = 2.94 a step: rounded up to 5.
  EXPECT_EQ(svg::nice_ticks(13.2, 27.9, 5), (std::vector<double>{15, 20, 25}));
  EXPECT_EQ(svg::nice_ticks(-3, 3, 3), (std::vector<double>{-2, 0, 2}));
}

TEST(Svg, PlotMapsPointsAndEscapesTips) {
  svg::PlotOptions o;
  o.title = "t";
  o.diagonal = true;
  const std::string s = svg::plot({{"s", "#000", {1, 2}, {1, 2}, {"<b>one</b>", "two"}, false, true}}, o);
  EXPECT_EQ(count(s, "<circle"), 2u);
  EXPECT_NE(s.find("<title>&lt;b&gt;one&lt;/b&gt;</title>"), std::string::npos);
  // With the diagonal both axes share one range, so the points (1,1) and (2,2) lie on the drawn y = x line.
  std::smatch line;
  ASSERT_TRUE(std::regex_search(s, line, std::regex("<line x1=\"([0-9.]+)\" y1=\"([0-9.]+)\" x2=\"([0-9.]+)\" "
                                                    "y2=\"([0-9.]+)\" stroke=\"#9aa4ae\"")));
  const double x1 = std::stod(line[1]), y1 = std::stod(line[2]), x2 = std::stod(line[3]), y2 = std::stod(line[4]);
  const std::regex circle("cx=\"([0-9.]+)\" cy=\"([0-9.]+)\"");
  int points = 0;
  for (auto it = std::sregex_iterator(s.begin(), s.end(), circle); it != std::sregex_iterator(); ++it, ++points) {
    const double cx = std::stod((*it)[1]), cy = std::stod((*it)[2]);
    // Cross product of (line direction) and (point - start), over the line's length: the distance in pixels.
    const double d = std::abs((x2 - x1) * (cy - y1) - (y2 - y1) * (cx - x1)) / std::hypot(x2 - x1, y2 - y1);
    EXPECT_LT(d, 0.2) << cx << "," << cy;
  }
  EXPECT_EQ(points, 2);
}

TEST(Heatmap, DifferenceAndColourScale) {
  at::Tensor a = at::zeros({3, 2, 2}, at::kByte), b = a.clone();
  b.index_put_({0, 0, 0}, 30);
  b.index_put_({1, 0, 0}, 60);
  b.index_put_({2, 1, 1}, 255);
  const at::Tensor d = abs_diff_map(a, b);
  EXPECT_FLOAT_EQ(d[0][0].item<float>(), 30.0f);
  EXPECT_FLOAT_EQ(d[1][1].item<float>(), 85.0f);
  EXPECT_FLOAT_EQ(d[0][1].item<float>(), 0.0f);
  const at::Tensor img = heat_image(d, 85.0);  // [H,W,3]
  ASSERT_EQ(img.sizes(), (at::IntArrayRef{2, 2, 3}));
  // 0 is the first stop, the scale's top the last (252, 255, 164).
  EXPECT_EQ(img[0][1][0].item<uint8_t>(), 0);
  EXPECT_EQ(img[0][1][2].item<uint8_t>(), 4);
  EXPECT_EQ(img[1][1][0].item<uint8_t>(), 252);
  EXPECT_EQ(img[1][1][2].item<uint8_t>(), 164);
  EXPECT_THROW(abs_diff_map(a, at::zeros({3, 2, 3}, at::kByte)), std::exception);
}

TEST(HtmlReport, VerdictGridAndEscaping) {
  ReportImages images;
  images.scale_max = 7.5;
  for (int i = 0; i < 3; ++i)
    images.prompts.push_back({"baseline/00000" + std::to_string(i) + ".png", "candidate/00000" + std::to_string(i) + ".png",
                              "diff/00000" + std::to_string(i) + ".png", 1.5 * i, 64});
  const std::string page = render_html(small_report(), images);
  // Untrusted text appears only escaped.
  EXPECT_EQ(page.find("<script>alert(1)"), std::string::npos);
  EXPECT_NE(page.find("&lt;script&gt;alert(1)&lt;/script&gt;"), std::string::npos);
  EXPECT_EQ(page.find("<b>"), std::string::npos);
  EXPECT_EQ(page.find("<em>"), std::string::npos);
  EXPECT_EQ(page.find("<i>"), std::string::npos);
  EXPECT_NE(page.find("a &quot;quoted&quot; &amp; &#39;odd&#39; one"), std::string::npos);
  // The verdict first, rounded for people: FAILED, 2.00× [1.90, 2.10], 3.33 %.
  const size_t verdict = page.find("id=\"verdict\"");
  ASSERT_NE(verdict, std::string::npos);
  EXPECT_LT(verdict, page.find("id=\"per-prompt\""));
  EXPECT_NE(page.find("FAILED"), std::string::npos);
  EXPECT_NE(page.find("2.00× [1.90, 2.10]"), std::string::npos);
  EXPECT_NE(page.find("3.33 %"), std::string::npos);
  EXPECT_NE(page.find("mean ≥ 35.00 dB (--min-psnr)"), std::string::npos);
  EXPECT_NE(page.find("warning (timing_noise): noisy &lt;em&gt;"), std::string::npos);
  // One row per prompt, worst (lowest PSNR) first, with sort keys; PSNR's header marked as the order.
  EXPECT_EQ(count(page, "class=\"prompt-row\""), 3u);
  const size_t r2 = page.find("data-index=\"2\""), r0 = page.find("data-index=\"0\""), r1 = page.find("data-index=\"1\"");
  EXPECT_LT(r2, r0);
  EXPECT_LT(r0, r1);
  EXPECT_NE(page.find("data-psnr=\"25\""), std::string::npos);
  EXPECT_NE(page.find("class=\"num sorted-asc\" data-sort=\"psnr\""), std::string::npos);
  EXPECT_NE(page.find("href=\"diff/000002.png\""), std::string::npos);
  // Plots: the CLIP scatter (3 points), both sides' batch times (2 + 2), the stage split; the colour bar's top.
  EXPECT_EQ(count(page, "<svg"), 4u);
  EXPECT_EQ(count(page, "<circle"), 7u);
  EXPECT_NE(page.find(">7.5</text>"), std::string::npos);
  // Bottom: protocol, consistency, environment.
  EXPECT_LT(page.find("id=\"per-prompt\""), page.find("<h2>Protocol</h2>"));
  EXPECT_NE(page.find("steps &lt;i&gt;"), std::string::npos);
  EXPECT_NE(page.find("<h2>Environment</h2>"), std::string::npos);
}

// PickScore and HPS v2 per prompt (report.html and report.md) when they were computed; without CLIP no
// CLIP column and no (empty) CLIP plot.
TEST(HtmlReport, PreferenceColumnsAndNoClipPlotWithoutClip) {
  json r = small_report();
  r.erase("paired");  // eval --metrics without clip
  r["baseline"]["per_sample_clip"] = r["candidate"]["per_sample_clip"] = json::array();
  r["baseline"]["clip_score"] = r["candidate"]["clip_score"] = nullptr;
  r["metrics"]["pickscore"] = {{"baseline_per_image", {21.0, 20.0, 22.0}}, {"candidate_per_image", {20.5, 20.25, 22.0}}};
  r["metrics"]["hps"] = {{"baseline_per_image", {0.27, 0.26, 0.25}}, {"candidate_per_image", {0.25, 0.2625, 0.25}}};
  json rows = json::array();
  for (const auto& row : r["per_prompt"]) rows.push_back({{"index", row["index"]}, {"psnr_db", row["psnr_db"]}});
  r["per_prompt"] = with_preference_columns(rows, r["metrics"]);
  // Rows keep their order (worst PSNR first: prompt 2, 0, 1) and gain NAME_baseline / _candidate / _drop.
  EXPECT_EQ(r["per_prompt"][0]["index"], 2);
  EXPECT_DOUBLE_EQ(r["per_prompt"][2]["pickscore_drop"].get<double>(), -0.25);
  EXPECT_DOUBLE_EQ(r["per_prompt"][1]["hps_baseline"].get<double>(), 0.27);
  EXPECT_DOUBLE_EQ(r["per_prompt"][1]["hps_drop"].get<double>(), 0.27 - 0.25);

  const std::string page = render_html(r, ReportImages{});
  EXPECT_NE(page.find(">PickScore baseline → candidate</th>"), std::string::npos);
  EXPECT_NE(page.find(">HPS v2 drop</th>"), std::string::npos);
  EXPECT_NE(page.find("data-pickscore-drop=\"-0.25\""), std::string::npos);
  EXPECT_NE(page.find(">21.00 → 20.50</td>"), std::string::npos);
  EXPECT_NE(page.find(">0.2700 → 0.2500</td>"), std::string::npos);
  EXPECT_EQ(page.find(">CLIP drop</th>"), std::string::npos);
  // No CLIP scatter: the batch-time plot, the stage split and the colour bar remain.
  EXPECT_EQ(page.find("CLIP score per prompt"), std::string::npos);
  EXPECT_EQ(count(page, "<svg"), 3u);
  const std::string md = render_per_prompt_markdown(r);
  EXPECT_NE(md.find("| # | prompt | baseline | candidate | PSNR (dB) | PickScore baseline / candidate | "
                    "HPS v2 baseline / candidate |\n"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find(" | 35.00 | 20.00 / 20.25 | 0.2600 / 0.2625 |\n"), std::string::npos) << md;
  EXPECT_EQ(md.find("CLIP"), std::string::npos) << md;

  // Without preference scores the rows are unchanged and the page has no such column.
  r["metrics"].erase("pickscore");
  r["metrics"].erase("hps");
  r["per_prompt"] = with_preference_columns(rows, r["metrics"]);
  EXPECT_EQ(r["per_prompt"], rows);
  EXPECT_EQ(render_html(r, ReportImages{}).find("PickScore"), std::string::npos);
}

// eval hands report.html the per-pixel differences it computed as the batches finished: the page
// and its heat maps are byte for byte those made by decoding the PNGs; a prompt without them (sizes
// differ) makes the page read the PNGs.
TEST(HtmlReport, GivenDifferencesMakeTheSamePageAsThePngs) {
  const auto dir = diffbench::test::temp_dir("html-given-diffs");
  json r = small_report();
  at::manual_seed(3);
  std::vector<at::Tensor> base, cand;
  std::filesystem::create_directories(dir / "baseline");
  std::filesystem::create_directories(dir / "candidate");
  for (int i = 0; i < 3; ++i) {
    base.push_back(at::randint(0, 256, {3, 24, 32}, at::kByte));
    cand.push_back(at::randint(0, 256, {3, 24, 32}, at::kByte));
    write_png(dir / "baseline" / png_sequence_name(static_cast<size_t>(i)), base.back());
    write_png(dir / "candidate" / png_sequence_name(static_cast<size_t>(i)), cand.back());
  }
  auto page_and_maps = [&](const HtmlReportOptions& o) {
    std::filesystem::remove_all(dir / "diff");
    write_html_report(dir, r, o);
    std::string all = diffbench::test::read_bytes(dir / "report.html");
    for (size_t i = 0; i < 3; ++i) all += diffbench::test::read_bytes(dir / "diff" / png_sequence_name(i));
    return all;
  };
  const std::string from_pngs = page_and_maps({});
  HtmlReportOptions given;
  for (int i = 0; i < 3; ++i) given.channel_abs_diff_sums.push_back(channel_abs_diff_sum(base[i], cand[i]));
  EXPECT_TRUE(at::equal(abs_diff_map_from_sum(given.channel_abs_diff_sums[1]), abs_diff_map(base[1], cand[1])));
  EXPECT_EQ(page_and_maps(given), from_pngs);
  // The same after one prompt's difference went missing, and the PNGs were what was used.
  given.channel_abs_diff_sums[2] = at::Tensor();
  EXPECT_EQ(page_and_maps(given), from_pngs);
  given.channel_abs_diff_sums[2] = at::zeros({24, 32}, at::kShort);  // not the PNGs' difference: used as given
  EXPECT_NE(page_and_maps(given), from_pngs);
  std::filesystem::remove_all(dir);
}
