// suite.html and sweep.html from fixed suite.json / sweep.json, without a browser.
#include <gtest/gtest.h>

#include <regex>

#include "diffbench/eval/sweep.hpp"
#include "diffbench/report/suite_html.hpp"
#include "report/page_text.hpp"

using namespace diffbench;
using diffbench::test::count;
using nlohmann::json;

namespace {

// A suite.json as run_suite writes it: one passed, one failed on quality, one that did not run,
// with markup in its file name and message, and one whose report path leaves the folder.
json small_suite() {
  json s = {{"schema", "diffbench.suite/1"}, {"passed", false}, {"candidates", 4}, {"passed_count", 1},
            {"failed_count", 3}, {"reasons_vocabulary", {"invalid_spec", "quality_loss", "error"}},
            {"tally", {{"invalid_spec", 1}, {"passed", 1}, {"quality_loss", 1}, {"error", 1}}},
            {"baseline_runs", {{"generated", 1}, {"from_cache", 0}, {"retimed_with_candidate", 1}}},
            {"baseline_reuse_rule", "one baseline run per distinct baseline"},
            {"thresholds", {{"max_quality_loss_pct", 5.0}}},
            {"protocol", {{"prompts_source", "coco"}, {"num_samples", 2}}}};
  auto row = [](const std::string& name, const std::string& status, json reason, json speedup, json loss) {
    return json{{"name", name}, {"file", name + ".toml"}, {"params", nullptr}, {"status", status},
                {"reason", reason}, {"reasons", reason.is_null() ? json::array() : json::array({reason})},
                {"messages", json::array()}, {"speedup", speedup},
                {"speedup_ci", speedup.is_null() ? json() : json::array({speedup.get<double>() - 0.1, speedup.get<double>() + 0.1})},
                {"quality_loss_pct", loss}, {"psnr_db", nullptr}, {"ssim", nullptr}, {"lpips", nullptr},
                {"metric_loss_pct", {{"clip", loss}, {"pickscore", 1.5}}},
                {"seconds_per_image", {{"baseline", 2.0}, {"candidate", 1.0}}},
                {"report", name + "/report.json"}, {"baseline", {{"group", 0}, {"source", "run"}, {"timing", "measured_now"}}}};
  };
  s["rows"] = {row("fast", "passed", nullptr, 2.0, 1.0), row("lossy", "failed", "quality_loss", 3.0, 9.0),
               row("broken", "failed", "invalid_spec", nullptr, nullptr), row("odd", "failed", "error", nullptr, nullptr)};
  s["rows"][2]["file"] = "<img src=x onerror=alert(1)>.toml";
  s["rows"][2]["messages"] = {"cannot parse <script>alert(2)</script>"};
  s["rows"][2]["report"] = "broken/error.json";
  s["rows"][2].erase("baseline");
  s["rows"][2]["metric_loss_pct"] = json::object();
  s["rows"][3]["report"] = "../../elsewhere/report.json";
  return s;
}

}  // namespace

TEST(SuiteHtml, TallyRowsLinksAndEscaping) {
  const std::string page = render_suite_html(small_suite());
  EXPECT_EQ(page.rfind("<!DOCTYPE html>", 0), 0u);
  // The tally before the table: passed first, then the vocabulary's order.
  const size_t tally = page.find("id=\"tally\""), table = page.find("id=\"candidates\"");
  ASSERT_NE(tally, std::string::npos);
  EXPECT_LT(tally, table);
  const size_t passed = page.find("data-reason=\"passed\""), invalid = page.find("data-reason=\"invalid_spec\""),
               quality = page.find("data-reason=\"quality_loss\""), error = page.find("data-reason=\"error\"");
  EXPECT_LT(passed, invalid);
  EXPECT_LT(invalid, quality);
  EXPECT_LT(quality, error);
  EXPECT_LT(error, table);
  EXPECT_NE(page.find("1 of 4 candidates passed"), std::string::npos);
  // One row per candidate, with the speedup's interval and the losses computed (CLIP, PickScore).
  EXPECT_EQ(count(page, "class=\"candidate-row\""), 4u);
  EXPECT_NE(page.find("2.00× [1.90, 2.10]"), std::string::npos);
  EXPECT_NE(page.find(">CLIP loss %</th>"), std::string::npos);
  EXPECT_NE(page.find(">pickscore loss %</th>"), std::string::npos);
  EXPECT_EQ(page.find(">PSNR dB</th>"), std::string::npos);  // computed for none
  EXPECT_NE(page.find("data-clip-loss=\"9\""), std::string::npos);
  // Links to each report.html (or error.json); a path out of the folder is no link.
  EXPECT_NE(page.find("href=\"fast/report.html\""), std::string::npos);
  EXPECT_NE(page.find("href=\"lossy/report.html\""), std::string::npos);
  EXPECT_NE(page.find("href=\"broken/error.json\""), std::string::npos);
  EXPECT_EQ(page.find("href=\"../"), std::string::npos);
  EXPECT_EQ(count(page, "<a href="), 3u);
  // Untrusted text only escaped.
  EXPECT_EQ(page.find("<img src=x"), std::string::npos);
  EXPECT_EQ(page.find("<script>alert(2)"), std::string::npos);
  EXPECT_NE(page.find("&lt;img src=x onerror=alert(1)&gt;.toml"), std::string::npos);
  EXPECT_NE(page.find("cannot parse &lt;script&gt;alert(2)&lt;/script&gt;"), std::string::npos);
}

// sweep.json from fixed numbers (as in the Sweep tests), rendered: per metric one plotted point per
// candidate with a value, the Pareto ones marked and joined in the frontier's order.
TEST(SweepHtml, FrontierPlotsFollowParetoFlags) {
  json suite = {{"baseline_runs", {{"generated", 1}}}, {"tally", {{"passed", 3}, {"invalid_spec", 1}}}};
  auto row = [](const std::string& interval, double speedup, double loss, double psnr) {
    return json{{"name", "dc-i=" + interval}, {"params", {{"deepcache.cache_interval", interval}}}, {"status", "passed"},
                {"reason", nullptr}, {"speedup", speedup}, {"speedup_ci", {speedup - 0.1, speedup + 0.1}},
                {"quality_loss_pct", loss}, {"psnr_db", psnr}, {"ssim", nullptr}, {"lpips", nullptr},
                {"report", "dc-i=" + interval + "/report.json"}};
  };
  // interval 3 is slower and worse than 4 on the CLIP loss: dominated; on PSNR every point trades.
  suite["rows"] = {row("2", 1.5, 1.0, 30.0), row("3", 1.8, 4.0, 27.0), row("4", 2.2, 3.0, 25.0),
                   {{"name", "dc-i=<b>0</b>"}, {"params", {{"deepcache.cache_interval", "<b>0</b>"}}}, {"status", "failed"},
                    {"reason", "invalid_spec"}, {"report", "dc-i=_b_0__b_/error.json"}}};
  const PipelineSpec spec = parse_spec("[pipeline]\nmodel = \"m\"\nsteps = 20\n[[accelerate]]\nmethod = \"deepcache\"\n", "dc.toml");
  const json sweep = sweep_json(spec, {parse_grid("deepcache.cache_interval=2,3,4")}, suite);
  const std::string page = render_sweep_html(sweep);
  ASSERT_EQ(count(page, "<figure"), 2u);  // quality_loss_pct and psnr_db: the metrics with values
  for (const char* metric : {"quality_loss_pct", "psnr_db"}) {
    const json& f = sweep["frontiers"][metric];
    size_t on = 0;
    for (const auto& p : f["points"]) on += p["pareto"].get<bool>();
    const size_t at = page.find(std::string("data-metric=\"") + metric + "\"");
    ASSERT_NE(at, std::string::npos) << metric;
    const std::string fig = page.substr(at, page.find("</figure>", at) - at);
    EXPECT_NE(fig.find("data-points=\"3\""), std::string::npos) << metric;
    EXPECT_EQ(count(fig, "class=\"point pareto\""), on) << metric;
    EXPECT_EQ(count(fig, "class=\"point\""), 3 - on) << metric;
    EXPECT_EQ(count(fig, "class=\"point-label\""), 3u) << metric;
    // The not-plotted point is named with its reason; its markup is text.
    EXPECT_NE(fig.find("&lt;b&gt;0&lt;/b&gt; (invalid_spec)"), std::string::npos) << metric;
    // The line joins as many points as sweep.json's frontier lists.
    std::smatch m;
    ASSERT_TRUE(std::regex_search(fig, m, std::regex("<polyline points=\"([^\"]*)\""))) << metric;
    EXPECT_EQ(count(m[1].str(), ","), f["frontier"].size()) << metric;
  }
  EXPECT_EQ(sweep["frontiers"]["quality_loss_pct"]["frontier"], json({"dc-i=2", "dc-i=4"}));
  // The dominated point's tooltip does not claim the frontier; the others do.
  EXPECT_NE(page.find("deepcache.cache_interval=3: speedup 1.80× [1.70, 1.90], CLIP quality loss % 4.00</title>"),
            std::string::npos);
  EXPECT_NE(page.find("deepcache.cache_interval=4: speedup 2.20× [2.10, 2.30], CLIP quality loss % 3.00 (Pareto-optimal)"),
            std::string::npos);
  // The table: one row per point, ★ where sweep.json says pareto, links to the reports.
  EXPECT_EQ(count(page, "class=\"point-row\""), 4u);
  EXPECT_EQ(count(page, " ★</td>"), 2u + 3u);
  EXPECT_NE(page.find("href=\"dc-i=2/report.html\""), std::string::npos);
  EXPECT_EQ(page.find("<b>"), std::string::npos);
}
