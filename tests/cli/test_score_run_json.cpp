// `diffbench score` without --prompts takes the prompts of the run.json that generate wrote beside the images.
#include <fstream>

#include "cli/cli_support.hpp"
#include "test_support.hpp"

#include <nlohmann/json.hpp>

TEST(ScoreRunJson, PromptsComeFromRunJsonBesideTheImages) {
  DIFFBENCH_REQUIRE_FIXTURE(diffbench::test::fixture("tiny-sd/model_index.json"));
  DIFFBENCH_REQUIRE_FIXTURE(diffbench::test::fixture("tiny-clip/config.json"));
  const auto dir = diffbench::test::temp_dir("score-run-json");
  const std::string clip = shell_quote(diffbench::test::fixture("tiny-clip").string());
  auto r = run_diffbench("generate --model " + shell_quote(diffbench::test::fixture("tiny-sd").string()) +
                         " --prompt 'a red square' --prompt 'a blue circle' --steps 2 --quiet --out " +
                         shell_quote((dir / "gen").string()));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  std::ofstream(dir / "prompts.txt") << "a red square\na blue circle\n";
  const auto from_file = run_shell_split(shell_quote(DIFFBENCH_BINARY) + " score --images " +
                                         shell_quote((dir / "gen").string()) + " --clip " + clip + " --prompts " +
                                         shell_quote((dir / "prompts.txt").string()) + " --json");
  const auto from_run = run_shell_split(shell_quote(DIFFBENCH_BINARY) + " score --images " +
                                        shell_quote((dir / "gen").string()) + " --clip " + clip + " --json");
  ASSERT_EQ(from_file.exit_code, 0) << from_file.err;
  ASSERT_EQ(from_run.exit_code, 0) << from_run.err;
  const auto a = nlohmann::json::parse(from_file.out), b = nlohmann::json::parse(from_run.out);
  EXPECT_EQ(a["per_sample"], b["per_sample"]);
  EXPECT_EQ(b["prompts"], (dir / "gen" / "run.json").string());
  // The terminal summary rounds for people.
  r = run_diffbench("score --images " + shell_quote((dir / "gen").string()) + " --clip " + clip);
  ASSERT_EQ(r.exit_code, 0) << r.output;
  char expected[64];
  std::snprintf(expected, sizeof expected, ": %.2f over 2 images", b["clip_score"].get<double>());
  EXPECT_NE(r.output.find(expected), std::string::npos) << r.output;
  // Without run.json and without --prompts: exit 2, saying what to give.
  std::filesystem::remove(dir / "gen" / "run.json");
  r = run_diffbench("score --images " + shell_quote((dir / "gen").string()) + " --clip " + clip);
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("--prompts SOURCE (or a run.json beside the images"), std::string::npos) << r.output;
  std::filesystem::remove_all(dir);
}
