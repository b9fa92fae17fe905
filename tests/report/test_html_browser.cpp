// report.html in a real browser: headless Chromium loads the report of a small eval (tiny-sd,
// tiny-clip, a prompt file with injected markup), renders it to a PNG and dumps its DOM. Skipped with
// a message when no Chromium is installed (`make test` installs Debian's chromium); under
// DIFFBENCH_REQUIRE_FIXTURES (CI), a missing Chromium fails instead.
#include <fstream>
#include <regex>

#include "cli/cli_support.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "eval/eval_fixture.hpp"
#include "report/browser.hpp"
#include "test_support.hpp"

using namespace diffbench;
using namespace diffbench::test;
namespace fs = std::filesystem;

namespace {

class HtmlBrowser : public test::EvalFixture {};

}  // namespace

TEST_F(HtmlBrowser, ReportRendersWithoutErrorsAndInjectedPromptsStayText) {
  REQUIRE_CHROMIUM(chromium);
  // Five prompts, two of them trying to run script; either would mark the body with data-pwned.
  const fs::path prompts = dir_ / "prompts.txt";
  std::ofstream(prompts) << "A man is in a kitchen making pizzas.\n"
                         << "<script>document.body.setAttribute('data-pwned','1')</script>\n"
                         << "A train traveling down tracks next to lights.\n"
                         << "<img src=x onerror=\"document.body.setAttribute('data-pwned','2')\">\n"
                         << "A red bus & a \"blue\" car\n";
  const fs::path cand = write_spec("fast", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                               "\"\nsteps = 2\nguidance = 7.5\n");
  const fs::path base = write_spec("slow", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                               "\"\nsteps = 4\nguidance = 7.5\n");
  const fs::path out = dir_ / "report";
  const auto r = run_shell_split(shell_quote(DIFFBENCH_BINARY) + " eval " + shell_quote(cand.string()) + " --baseline " +
                                 shell_quote(base.string()) + " --prompts " + shell_quote(prompts.string()) +
                                 " --repeats 1 --num-samples 5 --batch-size 2 --clip " + shell_quote(test::fixture("tiny-clip").string()) +
                                 " --max-quality-loss 100 --json --out " + shell_quote(out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  // --json: stdout is report.json alone; stderr (not a terminal here) has a progress line per timed batch.
  EXPECT_EQ(nlohmann::json::parse(r.out)["schema"], "diffbench.eval/2");
  for (int k = 1; k <= 6; ++k)
    EXPECT_NE(r.err.find("timing: batch " + std::to_string(k) + "/6 ("), std::string::npos) << k << "\n" << r.err;
  EXPECT_NE(r.err.find(" images/s · ETA 0:00\n"), std::string::npos) << r.err;
  ASSERT_TRUE(fs::exists(out / "report.html"));
  for (int i = 0; i < 5; ++i) EXPECT_TRUE(fs::exists(out / "diff" / ("00000" + std::to_string(i) + ".png"))) << i;

  const fs::path shot = dir_ / "report.png";
  const Browser b = load(chromium, out / "report.html", dir_ / "profile", shot);
  ASSERT_EQ(b.exit_code, 0) << b.dom;
  EXPECT_EQ(b.console, "") << "the page logged to the console";
  const std::string body = body_tag(b.dom);
  // The page's script ran to its end after the load event, and every image loaded.
  EXPECT_NE(body.find("data-ready=\"1\""), std::string::npos) << body;
  EXPECT_NE(body.find("data-broken-images=\"0\""), std::string::npos) << body;
  // The injected markup did not run: no mark on the body, and the prompts show as text.
  EXPECT_EQ(body.find("data-pwned"), std::string::npos) << body;
  EXPECT_EQ(count(b.dom, "<img src=\"x\""), 0u);
  EXPECT_NE(b.dom.find("&lt;script&gt;document.body.setAttribute('data-pwned','1')&lt;/script&gt;"), std::string::npos);
  EXPECT_NE(b.dom.find("&lt;img src=x onerror=\"document.body.setAttribute('data-pwned','2')\"&gt;"), std::string::npos);
  // One grid row per prompt.
  EXPECT_EQ(count(b.dom, "class=\"prompt-row\""), 5u);
  // The screenshot is the page drawn at the window's size, not a blank canvas.
  const at::Tensor png = read_png(shot);
  EXPECT_EQ(png.size(2), 1280);
  EXPECT_EQ(png.size(1), 2400);
  EXPECT_GT(png.to(at::kFloat).std().item<double>(), 10.0) << "a blank screenshot";
}

TEST_F(HtmlBrowser, EmbeddedReportIsOneFile) {
  REQUIRE_CHROMIUM(chromium);
  const fs::path cand = write_spec("fast", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                               "\"\nsteps = 2\nguidance = 7.5\n");
  const fs::path base = write_spec("slow", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                               "\"\nsteps = 3\nguidance = 7.5\n");
  const fs::path out = dir_ / "report";
  const auto r = run_shell_split(shell_quote(DIFFBENCH_BINARY) + " eval " + shell_quote(cand.string()) + " --baseline " +
                                 shell_quote(base.string()) + " --prompts " +
                                 shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
                                 " --repeats 1 --num-samples 3 --batch-size 3 --clip " + shell_quote(test::fixture("tiny-clip").string()) +
                                 " --max-quality-loss 100 --embed-images --quiet --out " + shell_quote(out.string()));
  ASSERT_EQ(r.exit_code, 0) << r.out << r.err;
  EXPECT_EQ(r.err, "") << "--quiet printed on stderr";
  // The summary ends naming the report.
  EXPECT_NE(r.out.find("report: " + (out / "report.html").string() + "\n"), std::string::npos) << r.out;
  // Moved away from its image folders, the page still shows every image.
  fs::create_directories(dir_ / "alone");
  fs::copy_file(out / "report.html", dir_ / "alone" / "report.html");
  const std::string page = read_text(dir_ / "alone" / "report.html");
  EXPECT_EQ(count(page, "src=\"data:image/png;base64,"), 9u);
  EXPECT_EQ(page.find("src=\"baseline/"), std::string::npos);
  const Browser b = load(chromium, dir_ / "alone" / "report.html", dir_ / "profile");
  ASSERT_EQ(b.exit_code, 0) << b.dom;
  EXPECT_EQ(b.console, "");
  EXPECT_NE(body_tag(b.dom).find("data-broken-images=\"0\""), std::string::npos) << body_tag(b.dom);
  EXPECT_EQ(count(b.dom, "class=\"prompt-row\""), 3u);
}
