// An interrupted `diffbench eval` resumes to the same images and scores as an uninterrupted run
// (issue 18): SIGTERM after the first journaled batch, exit 143 with the staging folder kept,
// a --resume with a changed option refused, --resume finishing the run, stale folders removed.
#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <map>
#include <sstream>
#include <thread>

#include "cli/cli_support.hpp"
#include "diffbench/io/json_config.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

std::string read_text(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// Splits a command line of plain words (no quoting needed: the test's paths have no spaces).
std::vector<std::string> words(const std::string& line) {
  std::istringstream in(line);
  std::vector<std::string> out;
  for (std::string w; in >> w;) out.push_back(w);
  return out;
}

class EvalResume : public test::EvalFixture {
 protected:
  // 4 prompts in batches of 1, both sides, 3 steps, no warm-up: 8 timed batches, so a SIGTERM
  // sent when the first is journaled arrives while later ones still run. Diffusers noise (one
  // generator through the pass) is the mode whose state a resumed pass must restore. --repeats 1:
  // no automatic timing passes, so the 8 batches are all there is.
  std::string args(const fs::path& out, const std::string& extra = "") const {
    const std::string spec = (dir_ / "cand.toml").string();
    return "eval " + spec + " --prompts coco:" + test::shared_data("captions_val2017.json").string() +
           " --num-samples 4 --batch-size 1 --repeats 1 --warmup 0 --noise diffusers --clip " + test::fixture("tiny-clip").string() +
           " --max-quality-loss 100 --baseline-cache off --out " + out.string() + " " + extra;
  }
  void write_candidate() {
    write_spec("cand", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                           "\"\nsteps = 3\nguidance = 7.5\n[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = 2\n");
  }

  // Starts diffbench with `line`'s words, stdout and stderr into `log`.
  pid_t spawn(const std::string& line, const fs::path& log) const {
    std::vector<std::string> argv_s = words(line);
    argv_s.insert(argv_s.begin(), DIFFBENCH_BINARY);
    const pid_t pid = ::fork();
    if (pid == 0) {
      const int fd = ::open(log.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0644);
      ::dup2(fd, 1);
      ::dup2(fd, 2);
      std::vector<char*> argv;
      for (auto& a : argv_s) argv.push_back(a.data());
      argv.push_back(nullptr);
      ::setenv("DIFFBENCH_BASELINE_CACHE", "off", 1);
      ::execv(argv[0], argv.data());
      ::_exit(127);
    }
    return pid;
  }

  // The exit code, or 1000 + the signal that ended it.
  static int wait_exit(pid_t pid) {
    int status = 0;
    ::waitpid(pid, &status, 0);
    return WIFEXITED(status) ? WEXITSTATUS(status) : 1000 + WTERMSIG(status);
  }

  // The journal's finished-batch lines in `partial` (0 while it does not exist).
  static size_t journaled_batches(const fs::path& partial) {
    const std::string text = read_text(partial / "journal.jsonl");
    size_t n = 0;
    for (size_t pos = 0; (pos = text.find("\"type\":\"batch\"", pos)) != std::string::npos; ++pos) ++n;
    return n;
  }

  // Every PNG under `dir`, by relative path, as bytes.
  static std::map<std::string, std::string> pngs(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.path().extension() == ".png") out[e.path().lexically_relative(dir).string()] = read_text(e.path());
    return out;
  }
};

}  // namespace

TEST_F(EvalResume, SigtermThenResumeEqualsAnUninterruptedRun) {
  write_candidate();
  const fs::path out = dir_ / "report";

  // 1. Interrupted: SIGTERM once the first batch is journaled.
  const pid_t pid = spawn(args(out), dir_ / "first.log");
  ASSERT_GT(pid, 0);
  const fs::path partial = dir_ / (".report.partial-" + std::to_string(pid));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(300);
  while (journaled_batches(partial) == 0 && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_GT(journaled_batches(partial), 0u) << read_text(dir_ / "first.log");
  ::kill(pid, SIGTERM);
  const int rc = wait_exit(pid);
  const std::string first_log = read_text(dir_ / "first.log");
  ASSERT_EQ(rc, 143) << first_log;
  EXPECT_NE(first_log.find("interrupted by SIGTERM"), std::string::npos) << first_log;
  EXPECT_NE(first_log.find("run the same command with --resume"), std::string::npos) << first_log;
  EXPECT_FALSE(fs::exists(out)) << "no half-written output folder";
  ASSERT_TRUE(fs::is_directory(partial)) << first_log;
  const size_t done = journaled_batches(partial);
  EXPECT_LT(done, 8u) << "the run was interrupted before its last batch";
  EXPECT_TRUE(fs::exists(partial / "baseline" / "000000.png"));
  // A copy of the interrupted run's folder as another output's stale folder (its process is dead).
  fs::copy(partial, dir_ / (".stale.partial-" + std::to_string(pid)), fs::copy_options::recursive);

  // 2. --resume with another option: refused, naming what differs; the folder is kept.
  auto r = run_diffbench(args(out, "--resume --seed 43"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("protocol.seeds"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(out));
  size_t partials = 0;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind(".report.partial-", 0) == 0) {
      ++partials;
      EXPECT_EQ(journaled_batches(e.path()), done);
    }
  EXPECT_EQ(partials, 1u);

  // 3. --resume: continues, skipping the finished batches.
  r = run_diffbench(args(out, "--resume --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming the interrupted run"), std::string::npos) << r.output;
  const auto resumed = read_json_file(out / "report.json");
  EXPECT_EQ(resumed["timing"]["processes"], 2);
  EXPECT_FALSE(fs::exists(out / "journal.jsonl"));
  std::vector<int> processes;
  for (const char* side : {"baseline", "candidate"})
    for (const auto& p : resumed[side]["batch_process"]) processes.push_back(p.get<int>());
  EXPECT_EQ(processes.size(), 8u);
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 0), static_cast<long>(done));
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 1), static_cast<long>(8 - done));
  bool warned = false;
  for (const auto& w : resumed["warnings"]) warned = warned || w["code"] == "resumed";
  EXPECT_TRUE(warned) << resumed["warnings"].dump();
  for (const auto& e : fs::directory_iterator(dir_))
    EXPECT_NE(e.path().filename().string().rfind(".report.partial-", 0), 0u) << e.path();

  // 4. Uninterrupted, into the output whose stale folder was left: removed, with --resume named.
  const fs::path ref = dir_ / "stale";
  r = run_diffbench(args(ref, "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("removed " + (dir_ / (".stale.partial-" + std::to_string(pid))).string()),
            std::string::npos) << r.output;
  EXPECT_NE(r.output.find("--resume"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(dir_ / (".stale.partial-" + std::to_string(pid))));
  const auto whole = read_json_file(ref / "report.json");
  EXPECT_EQ(whole["timing"]["processes"], 1);

  // The same images, byte for byte, and the same scores.
  const auto a = pngs(out), b = pngs(ref);
  EXPECT_EQ(a.size(), 12u);  // baseline, candidate and difference maps, 4 each
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, bytes] : a) EXPECT_TRUE(b.at(name) == bytes) << name;
  for (const char* side : {"baseline", "candidate"}) {
    EXPECT_EQ(resumed[side]["per_sample_clip"], whole[side]["per_sample_clip"]) << side;
    EXPECT_EQ(resumed[side]["methods"], whole[side]["methods"]) << side;
    EXPECT_EQ(resumed[side]["unet_calls_per_image"], whole[side]["unet_calls_per_image"]) << side;
  }
  EXPECT_EQ(resumed["per_prompt"], whole["per_prompt"]);
  EXPECT_EQ(resumed["metrics"], whole["metrics"]);
  EXPECT_EQ(resumed["quality_loss_pct"], whole["quality_loss_pct"]);
}
