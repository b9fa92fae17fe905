// docs/cli.md's option lists are the commands' own --help output, for every command.
#include <gtest/gtest.h>

#include <fstream>
#include <iterator>
#include <map>
#include <regex>

#include "cli/cli_support.hpp"

namespace {

// COMMAND -> the ```text block after each `<!-- help: COMMAND -->` line of docs/cli.md.
std::map<std::string, std::string> help_blocks(const std::string& doc) {
  std::map<std::string, std::string> out;
  const std::regex marker("<!-- help: ([a-z-]+) -->\n```text\n");
  for (auto it = std::sregex_iterator(doc.begin(), doc.end(), marker); it != std::sregex_iterator(); ++it) {
    const size_t start = static_cast<size_t>(it->position(0) + it->length(0));
    const size_t end = doc.find("\n```\n", start - 1);
    out[(*it)[1]] = end == std::string::npos ? "" : doc.substr(start, end + 1 - start);
  }
  return out;
}

}  // namespace

TEST(CliDocs, OptionListsAreTheHelpOutput) {
  std::ifstream in(std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "docs" / "cli.md");
  ASSERT_TRUE(in) << "docs/cli.md is missing";
  const std::string doc((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  const auto blocks = help_blocks(doc);
  const auto top = run_diffbench("--help");
  ASSERT_EQ(top.exit_code, 0) << top.output;
  // Every command the program lists has its block, and no block names a command that is gone.
  const std::string subcommands = top.output.substr(top.output.find("SUBCOMMANDS:") == std::string::npos
                                                        ? top.output.find("Subcommands:")
                                                        : top.output.find("SUBCOMMANDS:"));
  std::vector<std::string> commands = {"diffbench"};
  const std::regex entry("\n  ([a-z][a-z-]*) ");
  for (auto it = std::sregex_iterator(subcommands.begin(), subcommands.end(), entry); it != std::sregex_iterator(); ++it)
    commands.push_back((*it)[1]);
  ASSERT_GE(commands.size(), 8u) << top.output;
  for (const auto& c : commands) EXPECT_TRUE(blocks.count(c)) << "docs/cli.md has no `<!-- help: " << c << " -->` block";
  EXPECT_EQ(blocks.size(), commands.size());
  for (const auto& [command, text] : blocks) {
    const auto r = run_diffbench(command == "diffbench" ? "--help" : command + " --help");
    EXPECT_EQ(r.exit_code, 0) << command;
    EXPECT_EQ(text, r.output) << "docs/cli.md's options of `" << command
                              << "` differ from its --help: run tools/update-cli-docs.sh build/bin/diffbench";
  }
}

TEST(CliDocs, ReadmeIsShortAndPointsToTheReference) {
  std::ifstream in(std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "README.md");
  const std::string readme((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_NE(readme.find("docs/cli.md"), std::string::npos);
  EXPECT_NE(readme.find("make demo"), std::string::npos);
  EXPECT_NE(readme.find("report.html"), std::string::npos);
  EXPECT_LT(std::count(readme.begin(), readme.end(), '\n'), 120) << "the README is a quick start; the reference is docs/cli.md";
}
