// Headless Chromium for the report pages' tests: finds it (or skips / fails as the fixtures do), loads
// a page, and returns its DOM after the load event and the console lines it logged.
#pragma once

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

#include "cli/cli_support.hpp"
#include "report/page_text.hpp"
#include "test_support.hpp"

namespace diffbench::test {


// $DIFFBENCH_CHROMIUM, else the first of chromium, chromium-headless-shell, google-chrome on PATH.
inline std::string find_chromium() {
  if (const char* env = std::getenv("DIFFBENCH_CHROMIUM"); env && *env) return env;
  for (const char* name : {"chromium", "chromium-headless-shell", "google-chrome"}) {
    const auto r = run_shell(std::string("command -v ") + name);
    if (r.exit_code == 0 && !r.output.empty()) return r.output.substr(0, r.output.find('\n'));
  }
  return "";
}

inline std::string read_text(const std::filesystem::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

struct Browser {
  std::string dom;      // --dump-dom after the load event
  std::string console;  // the browser's log lines that carry the page's console messages and errors
  int exit_code = -1;
};

// Loads `page` in headless Chromium (a fresh profile in `profile`); with `screenshot`, also renders it.
inline Browser load(const std::string& chromium, const std::filesystem::path& page, const std::filesystem::path& profile,
                    const std::filesystem::path& screenshot = {}) {
  const std::string common = shell_quote(chromium) + " --headless --no-sandbox --disable-gpu --no-first-run" +
                             " --disable-background-networking --user-data-dir=" + shell_quote(profile.string()) +
                             " --enable-logging=stderr --v=0 --window-size=1280,2400 ";
  const std::string url = shell_quote("file://" + std::filesystem::absolute(page).string());
  Browser b;
  const std::filesystem::path err = profile.string() + ".stderr";
  const auto r = run_shell("timeout 120 " + common + "--virtual-time-budget=5000 --dump-dom " + url + " 2>" +
                           shell_quote(err.string()));
  b.exit_code = r.exit_code;
  b.dom = r.output;
  std::istringstream lines(read_text(err));
  for (std::string line; std::getline(lines, line);)
    if (line.find(":CONSOLE") != std::string::npos || line.find("Uncaught") != std::string::npos) b.console += line + "\n";
  if (!screenshot.empty()) {
    const auto s = run_shell("timeout 120 " + common + "--screenshot=" + shell_quote(screenshot.string()) + " " + url);
    EXPECT_EQ(s.exit_code, 0) << s.output;
  }
  return b;
}

// The <body ...> start tag of a dumped DOM.
inline std::string body_tag(const std::string& dom) {
  const size_t at = dom.find("<body");
  return at == std::string::npos ? "" : dom.substr(at, dom.find('>', at) - at + 1);
}

}  // namespace diffbench::test

// Skips the test (fails it under DIFFBENCH_REQUIRE_FIXTURES) when no Chromium is installed.
#define REQUIRE_CHROMIUM(var)                                                                                 \
  const std::string var = ::diffbench::test::find_chromium();                                                 \
  if (var.empty()) {                                                                                          \
    if (::diffbench::test::fixtures_required())                                                               \
      GTEST_FAIL() << "Chromium not found (DIFFBENCH_REQUIRE_FIXTURES is set; `make test` installs chromium)"; \
    GTEST_SKIP() << "Chromium not found: install Debian's chromium (`make test` does) or set DIFFBENCH_CHROMIUM"; \
  }
