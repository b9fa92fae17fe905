// suite.html and sweep.html in headless Chromium: a small sweep on tiny-sd (tiny-clip scorer) whose
// grid carries a value with markup. Skipped without Chromium as report.html's browser tests are.
#include <fstream>

#include "cli/cli_support.hpp"
#include "diffbench/io/json_config.hpp"
#include "eval/eval_fixture.hpp"
#include "report/browser.hpp"
#include "test_support.hpp"

using namespace diffbench;
using namespace diffbench::test;
using nlohmann::json;
namespace fs = std::filesystem;

namespace {

class SuiteBrowser : public test::EvalFixture {};

// The <figure ...> start tag and content of the frontier plot of `metric` in a dumped DOM.
std::string figure(const std::string& dom, const std::string& metric) {
  const size_t at = dom.find("data-metric=\"" + metric + "\"");
  return at == std::string::npos ? "" : dom.substr(at, dom.find("</figure>", at) - at);
}

}  // namespace

// deepcache.cache_interval=2,3 x scheduler=pndm,<img ...>: four points, two of them with an unknown
// scheduler (its markup would mark the body with data-pwned if it ran).
TEST_F(SuiteBrowser, SweepAndSuitePagesRenderWithoutErrors) {
  REQUIRE_CHROMIUM(chromium);
  const fs::path spec = write_spec("dc", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                             "\"\nsteps = 4\nguidance = 7.5\n[[accelerate]]\nmethod = \"deepcache\"\n"
                                             "cache_interval = 2\ncache_branch_id = 0\n");
  const std::string evil = "<img src=x onerror=document.body.dataset.pwned=1>";
  const fs::path out = dir_ / "sweep";
  const auto r = run_diffbench("sweep " + shell_quote(spec.string()) + " --grid deepcache.cache_interval=2,3 --grid " +
                               shell_quote("scheduler=pndm," + evil) + " --prompts " +
                               shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                               " --repeats 1 --num-samples 2 --batch-size 2 --warmup 0 --max-quality-loss 100 --schedule sequential "
                               "--no-baseline-cache --clip " +
                               shell_quote(test::fixture("tiny-clip").string()) + " --out " + shell_quote(out.string()));
  ASSERT_EQ(r.exit_code, 1) << r.output;  // the two points with the unknown scheduler fail
  const json sweep = read_json_file(out / "sweep.json");
  ASSERT_EQ(sweep["points"].size(), 4u);
  EXPECT_EQ(sweep["tally"]["passed"], 2) << sweep["tally"].dump();
  // The point's folder name is made safe; its parameters keep the value as given.
  EXPECT_EQ(sweep["points"][1]["params"]["scheduler"], evil);
  EXPECT_EQ(sweep["points"][1]["name"].get<std::string>().find_first_of("<>/ "), std::string::npos);

  // sweep.html: one plot per metric computed, a point per evaluated candidate, pareto as in sweep.json.
  const Browser b = load(chromium, out / "sweep.html", dir_ / "profile-sweep");
  ASSERT_EQ(b.exit_code, 0) << b.dom;
  EXPECT_EQ(b.console, "") << "the page logged to the console";
  EXPECT_NE(body_tag(b.dom).find("data-ready=\"1\""), std::string::npos) << body_tag(b.dom);
  EXPECT_EQ(body_tag(b.dom).find("data-pwned"), std::string::npos);
  EXPECT_EQ(count(b.dom, "<img"), 0u);
  EXPECT_NE(b.dom.find("&lt;img src=x onerror=document.body.dataset.pwned=1&gt;"), std::string::npos);
  EXPECT_EQ(count(b.dom, "class=\"point-row\""), 4u);
  size_t plots = 0;
  for (const auto& [metric, f] : sweep["frontiers"].items()) {
    const std::string fig = figure(b.dom, metric);
    ASSERT_FALSE(fig.empty()) << metric;
    ++plots;
    size_t plotted = 0, on = 0;
    for (const auto& p : f["points"]) {
      plotted += p["x"].is_number() && p["y"].is_number();
      on += p["pareto"].get<bool>();
    }
    EXPECT_EQ(plotted, 2u) << metric;
    EXPECT_EQ(count(fig, "<circle"), plotted) << metric;
    EXPECT_EQ(count(fig, "class=\"point pareto\""), on) << metric;
    EXPECT_EQ(count(fig, "<polyline"), on >= 2 ? 1u : 0u) << metric;
    EXPECT_EQ(count(fig, "class=\"point-label\""), plotted) << metric;
  }
  EXPECT_EQ(count(b.dom, "<figure"), plots);
  EXPECT_GE(plots, 3u);  // CLIP loss, PSNR, SSIM

  // suite.html (beside it): the tally, one row per candidate, links to the reports that exist.
  const Browser s = load(chromium, out / "suite.html", dir_ / "profile-suite");
  ASSERT_EQ(s.exit_code, 0) << s.dom;
  EXPECT_EQ(s.console, "") << "the page logged to the console";
  EXPECT_NE(body_tag(s.dom).find("data-ready=\"1\""), std::string::npos) << body_tag(s.dom);
  EXPECT_EQ(body_tag(s.dom).find("data-pwned"), std::string::npos);
  EXPECT_EQ(count(s.dom, "<img"), 0u);
  EXPECT_EQ(count(s.dom, "class=\"candidate-row\""), 4u);
  EXPECT_EQ(count(s.dom, "data-status=\"failed\""), 2u);
  EXPECT_NE(s.dom.find("data-reason=\"passed\""), std::string::npos);
  const json suite = read_json_file(out / "suite.json");
  for (const auto& row : suite["rows"]) {
    std::string link = row["report"].get<std::string>();
    const std::string json_name = "report.json";
    if (link.size() > json_name.size() && link.compare(link.size() - json_name.size(), json_name.size(), json_name) == 0)
      link = link.substr(0, link.size() - json_name.size()) + "report.html";
    EXPECT_NE(s.dom.find("href=\"" + link + "\""), std::string::npos) << link;
    EXPECT_TRUE(fs::exists(out / link)) << link;
  }
}
