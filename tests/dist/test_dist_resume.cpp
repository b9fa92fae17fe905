// A multi-process `diffbench eval` interrupted by SIGTERM resumes with the same or another world size
// (issue 20): two ranks stopped together after their batches under way (exit 143, the staging folder
// and its journal kept), then continued by one process and by three ranks under torchrun: images
// byte-identical and scores equal to an uninterrupted one-process run's. A --resume whose spec
// changed is a usage error on every rank, naming what differs. tiny-sd, tiny-clip, COCO captions.
#include <algorithm>
#include <fstream>
#include <map>
#include <regex>

#include "diffbench/io/json_config.hpp"
#include "dist/dist_support.hpp"
#include "eval/eval_fixture.hpp"

using namespace diffbench;
using namespace diffbench::test;
namespace fs = std::filesystem;

namespace {

class DistResume : public EvalFixture {
 protected:
  // 16 prompts in batches of 1, 3 steps, no warm-up, one pass: 16 timed batches per rank of two,
  // so a stop sent once the first batch is journalled reaches both ranks while they still work.
  void write_candidate(int cache_interval) {
    write_spec("cand", "[pipeline]\nmodel = \"" + fixture("tiny-sd").string() +
                           "\"\nsteps = 3\nguidance = 7.5\n[[accelerate]]\nmethod = \"deepcache\"\ncache_interval = " +
                           std::to_string(cache_interval) + "\ncache_branch_id = 0\n");
  }
  std::string args(const fs::path& out, const std::string& extra = "") const {
    return "eval " + shell_quote((dir_ / "cand.toml").string()) + " --prompts " +
           shell_quote("coco:" + shared_data("captions_val2017.json").string()) +
           " --num-samples 16 --batch-size 1 --repeats 1 --warmup 0 --noise per-prompt --clip " +
           shell_quote(fixture("tiny-clip").string()) + " --max-quality-loss 100 --out " + shell_quote(out.string()) +
           " " + extra;
  }

  // Two ranks started by hand (RANK, WORLD_SIZE, MASTER_*), each one's output into rankR.log;
  // `after` runs in the script once both are started ($p0, $p1 their pids). Returns the script's output.
  std::string two_ranks(const std::string& run_args, const std::string& after) const {
    const std::string script =
        "cd " + shell_quote(dir_.string()) + " && export MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
        std::to_string(free_port()) + " WORLD_SIZE=2 DIFFBENCH_DIST_TIMEOUT=5 " + dist_env() + "\n" +
        "RANK=0 LOCAL_RANK=0 " + dist_binary() + " " + run_args + " > rank0.log 2>&1 & p0=$!\n" +
        "RANK=1 LOCAL_RANK=1 " + dist_binary() + " " + run_args + " > rank1.log 2>&1 & p1=$!\n" + after +
        "wait $p0; rc0=$?; wait $p1; echo \"p0=$p0 rc0=$rc0 rc1=$?\"\n";
    return run_shell(script).output;
  }

  // The batch lines of every journal file in `partial`.
  static size_t journaled_batches(const fs::path& partial) {
    size_t n = 0;
    for (const auto& e : fs::directory_iterator(partial)) {
      const std::string name = e.path().filename().string();
      if (name.rfind("journal", 0) != 0) continue;
      const std::string text = file_bytes(e.path());
      for (size_t pos = 0; (pos = text.find("\"type\":\"batch\"", pos)) != std::string::npos; ++pos) ++n;
    }
    return n;
  }

  static std::map<std::string, std::string> pngs(const fs::path& dir) {
    std::map<std::string, std::string> out;
    for (const auto& e : fs::recursive_directory_iterator(dir))
      if (e.path().extension() == ".png") out[e.path().lexically_relative(dir).string()] = file_bytes(e.path());
    return out;
  }

  // A resumed report against the uninterrupted one: images byte for byte, every score equal.
  static void expect_same_as_whole(const fs::path& resumed_dir, const fs::path& whole_dir) {
    const auto a = pngs(resumed_dir), b = pngs(whole_dir);
    EXPECT_EQ(a.size(), 48u);  // baseline, candidate and difference maps, 16 each
    ASSERT_EQ(a.size(), b.size());
    for (const auto& [name, bytes] : a) EXPECT_TRUE(b.at(name) == bytes) << resumed_dir << ": " << name;
    const auto resumed = read_json_file(resumed_dir / "report.json"), whole = read_json_file(whole_dir / "report.json");
    for (const char* side : {"baseline", "candidate"}) {
      EXPECT_EQ(resumed[side]["per_sample_clip"], whole[side]["per_sample_clip"]) << side;
      EXPECT_EQ(resumed[side]["clip_score"], whole[side]["clip_score"]) << side;
      EXPECT_EQ(resumed[side]["unet_calls_per_image"], whole[side]["unet_calls_per_image"]) << side;
      EXPECT_EQ(resumed[side]["batch_seconds"].size(), 16u) << side;  // every batch, whoever timed it
    }
    EXPECT_EQ(resumed["per_prompt"], whole["per_prompt"]);
    EXPECT_EQ(resumed["metrics"], whole["metrics"]);
    EXPECT_EQ(resumed["quality_loss_pct"], whole["quality_loss_pct"]);
    EXPECT_EQ(resumed["paired"], whole["paired"]);
    bool warned = false;
    for (const auto& w : resumed["warnings"]) warned = warned || w["code"] == "resumed";
    EXPECT_TRUE(warned) << resumed["warnings"].dump();
    EXPECT_FALSE(fs::exists(resumed_dir / "journal.jsonl"));
    EXPECT_FALSE(fs::exists(resumed_dir / "journal.rank-0.jsonl"));
  }
};

}  // namespace

TEST_F(DistResume, InterruptedTwoRanksResumeWithOneProcessAndWithThreeRanks) {
  const std::string torchrun = find_torchrun();
  REQUIRE_LAUNCHER(torchrun, "torchrun (the torch wheel's virtualenv)");
  write_candidate(2);

  // 1. Two ranks; SIGTERM to rank 1 alone once a batch is journalled: rank 1 publishes the stop,
  // both end after their batch under way with 143, rank 0's staging folder kept with the journal.
  const std::string wait_then_kill =
      "for i in $(seq 6000); do grep -qs '\"type\":\"batch\"' .run.partial-$p0/journal.rank-*.jsonl && break; "
      "sleep 0.05; done\nkill -TERM $p1\n";
  const std::string script_out = two_ranks(args(dir_ / "run"), wait_then_kill);
  const std::string rank0 = file_bytes(dir_ / "rank0.log"), rank1 = file_bytes(dir_ / "rank1.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(script_out, m, std::regex("p0=(\\d+) rc0=(\\d+) rc1=(\\d+)"))) << script_out;
  EXPECT_EQ(std::stoi(m[2]), 143) << rank0;
  EXPECT_EQ(std::stoi(m[3]), 143) << rank1;
  for (const std::string* log : {&rank0, &rank1}) {
    EXPECT_NE(log->find("interrupted by SIGTERM"), std::string::npos) << *log;
    EXPECT_NE(log->find("run the same command with --resume"), std::string::npos) << *log;
  }
  EXPECT_FALSE(fs::exists(dir_ / "run")) << "no half-written output folder";
  const fs::path partial = dir_ / (".run.partial-" + std::string(m[1]));
  ASSERT_TRUE(fs::is_directory(partial)) << rank0;
  const size_t done = journaled_batches(partial);
  EXPECT_GT(done, 0u);
  EXPECT_LT(done, 32u) << "the ranks stopped before their last batches";
  EXPECT_TRUE(fs::exists(partial / "journal.rank-0.jsonl"));
  EXPECT_TRUE(fs::exists(partial / "journal.rank-1.jsonl"));
  // The same interrupted run as the staging folder of another output, for the three-rank resume.
  fs::copy(partial, dir_ / (".other.partial-" + std::string(m[1])), fs::copy_options::recursive);

  // 2. --resume with a changed spec under the launcher: every rank exits 2 naming what differs;
  // the interrupted run's folder is kept as it was.
  write_candidate(3);
  const std::string changed = two_ranks(args(dir_ / "run", "--resume"), "");
  ASSERT_TRUE(std::regex_search(changed, m, std::regex("rc0=(\\d+) rc1=(\\d+)"))) << changed;
  const std::string changed0 = file_bytes(dir_ / "rank0.log"), changed1 = file_bytes(dir_ / "rank1.log");
  EXPECT_EQ(std::stoi(m[1]), 2) << changed0;
  EXPECT_EQ(std::stoi(m[2]), 2) << changed1;
  for (const std::string* log : {&changed0, &changed1})
    EXPECT_NE(log->find("cache_interval"), std::string::npos) << *log;
  write_candidate(2);
  size_t partials = 0;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind(".run.partial-", 0) == 0) {
      ++partials;
      EXPECT_EQ(journaled_batches(e.path()), done);
    }
  EXPECT_EQ(partials, 1u);

  // 3. The uninterrupted one-process run.
  auto r = run_shell(dist_env() + dist_binary() + " " + args(dir_ / "whole", "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;

  // 4. Resumed by one process.
  r = run_shell(dist_env() + dist_binary() + " " + args(dir_ / "run", "--resume --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_NE(r.output.find("resuming the interrupted run"), std::string::npos) << r.output;
  expect_same_as_whole(dir_ / "run", dir_ / "whole");
  const auto one = read_json_file(dir_ / "run" / "report.json");
  EXPECT_EQ(one["timing"]["processes"], 2);
  EXPECT_EQ(one["timing"]["world_sizes"], nlohmann::json({2, 1}));
  std::vector<int> processes;
  for (const char* side : {"baseline", "candidate"})
    for (const auto& p : one[side]["batch_process"]) processes.push_back(p.get<int>());
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 0), static_cast<long>(done));
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 1), static_cast<long>(32 - done));

  // 5. The copy resumed by three ranks under torchrun (another world size than the interrupted run's).
  r = run_shell(dist_env() + torchrun_prefix(torchrun, 3) + dist_binary() + " " + args(dir_ / "other", "--resume --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_as_whole(dir_ / "other", dir_ / "whole");
  const auto three = read_json_file(dir_ / "other" / "report.json");
  EXPECT_EQ(three["timing"]["world_sizes"], nlohmann::json({2, 3}));
  EXPECT_EQ(three["distributed"]["world_size"], 3);
  processes.clear();
  for (const char* side : {"baseline", "candidate"})
    for (const auto& p : three[side]["batch_process"]) processes.push_back(p.get<int>());
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 0), static_cast<long>(done));
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 1), static_cast<long>(32 - done));
}

// A one-process run interrupted, then continued by two ranks under torchrun.
TEST_F(DistResume, OneProcessRunResumedByTwoRanks) {
  const std::string torchrun = find_torchrun();
  REQUIRE_LAUNCHER(torchrun, "torchrun (the torch wheel's virtualenv)");
  write_candidate(2);
  const std::string script = "cd " + shell_quote(dir_.string()) + " && export " + dist_env() + "\n" + dist_binary() +
                             " " + args(dir_ / "run") + " > one.log 2>&1 & p=$!\n" +
                             "for i in $(seq 6000); do grep -qs '\"type\":\"batch\"' .run.partial-$p/journal.jsonl && "
                             "break; sleep 0.05; done\nkill -TERM $p; wait $p; echo \"p=$p rc=$?\"\n";
  const std::string out = run_shell(script).output;
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("p=(\\d+) rc=(\\d+)"))) << out;
  ASSERT_EQ(std::stoi(m[2]), 143) << file_bytes(dir_ / "one.log");
  const size_t done = journaled_batches(dir_ / (".run.partial-" + std::string(m[1])));
  EXPECT_GT(done, 0u);
  EXPECT_LT(done, 32u);

  auto r = run_shell(dist_env() + dist_binary() + " " + args(dir_ / "whole", "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  r = run_shell(dist_env() + torchrun_prefix(torchrun, 2) + dist_binary() + " " + args(dir_ / "run", "--resume --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_as_whole(dir_ / "run", dir_ / "whole");
  const auto two = read_json_file(dir_ / "run" / "report.json");
  EXPECT_EQ(two["timing"]["world_sizes"], nlohmann::json({1, 2}));
}

// SIGTERM to torchrun, which forwards it to both ranks: they stop after their batches under way and
// keep the run; the same command with --resume under torchrun finishes it.
TEST_F(DistResume, SigtermToTorchrunKeepsTheRunForResume) {
  const std::string torchrun = find_torchrun();
  REQUIRE_LAUNCHER(torchrun, "torchrun (the torch wheel's virtualenv)");
  write_candidate(2);
  const std::string script =
      "cd " + shell_quote(dir_.string()) + " && export " + dist_env() + "\n" + torchrun_prefix(torchrun, 2) +
      dist_binary() + " " + args(dir_ / "run") + " > torchrun.log 2>&1 & p=$!\n" +
      "for i in $(seq 6000); do grep -qs '\"type\":\"batch\"' .run.partial-*/journal.rank-*.jsonl && break; "
      "sleep 0.05; done\nkill -TERM $p; wait $p; echo \"rc=$?\"\n";
  const std::string out = run_shell(script).output;
  const std::string log = file_bytes(dir_ / "torchrun.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("rc=(\\d+)"))) << out;
  EXPECT_NE(std::stoi(m[1]), 0) << log;  // torchrun's own code after a signal (1, with its traceback)
  EXPECT_NE(log.find("interrupted by SIGTERM"), std::string::npos) << log;
  EXPECT_NE(log.find("run the same command with --resume"), std::string::npos) << log;
  EXPECT_FALSE(fs::exists(dir_ / "run"));
  fs::path partial;
  for (const auto& e : fs::directory_iterator(dir_))
    if (e.path().filename().string().rfind(".run.partial-", 0) == 0) partial = e.path();
  ASSERT_FALSE(partial.empty()) << log;
  const size_t done = journaled_batches(partial);
  EXPECT_GT(done, 0u);
  EXPECT_LT(done, 32u);

  const auto r = run_shell(dist_env() + torchrun_prefix(torchrun, 2) + dist_binary() + " " +
                           args(dir_ / "run", "--resume --json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto report = read_json_file(dir_ / "run" / "report.json");
  EXPECT_EQ(report["timing"]["world_sizes"], nlohmann::json({2, 2}));
  std::vector<int> processes;
  for (const char* side : {"baseline", "candidate"})
    for (const auto& p : report[side]["batch_process"]) processes.push_back(p.get<int>());
  EXPECT_EQ(processes.size(), 32u);
  EXPECT_EQ(std::count(processes.begin(), processes.end(), 0), static_cast<long>(done));
  EXPECT_EQ(pngs(dir_ / "run").size(), 48u);
}

// Ranks that do not see rank 0's staging folder (machines without a shared file system; here rank 1
// runs in a mount namespace with an empty tmpfs over the output's parent folder): the run is not
// journalled, rank 0 says so and gathers the images through the group, and the report still equals
// the one-process run's. Needs unshare(1) and the right to mount (root in a container); skipped
// otherwise, as that is the machine's permission, not a missing fixture.
TEST_F(DistResume, RanksWithoutASharedFolderGatherTheImagesUnjournalled) {
  if (run_shell("unshare -m --propagation private true").exit_code != 0)
    GTEST_SKIP() << "unshare -m is not permitted here: the ranks cannot be given separate file systems";
  write_candidate(2);
  const fs::path outs = dir_ / "outs";
  fs::create_directories(outs);
  const std::string run_args = args(outs / "run", "--json");
  const std::string script =
      "cd " + shell_quote(dir_.string()) + " && export MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
      std::to_string(free_port()) + " WORLD_SIZE=2 DIFFBENCH_DIST_TIMEOUT=5 " + dist_env() + "\n" +
      "RANK=0 LOCAL_RANK=0 " + dist_binary() + " " + run_args + " > rank0.log 2>&1 & p0=$!\n" +
      "RANK=1 LOCAL_RANK=1 unshare -m --propagation private sh -c " +
      shell_quote("mount -t tmpfs none " + shell_quote(outs.string()) + " && exec " + dist_binary() + " " + run_args) +
      " > rank1.log 2>&1 & p1=$!\n" + "wait $p0; rc0=$?; wait $p1; echo \"rc0=$rc0 rc1=$?\"\n";
  const std::string out = run_shell(script).output;
  const std::string rank0 = file_bytes(dir_ / "rank0.log"), rank1 = file_bytes(dir_ / "rank1.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(out, m, std::regex("rc0=(\\d+) rc1=(\\d+)"))) << out;
  ASSERT_EQ(std::stoi(m[1]), 0) << rank0;
  ASSERT_EQ(std::stoi(m[2]), 0) << rank1;
  EXPECT_NE(rank0.find("rank(s) 1 do not see the staging folder"), std::string::npos) << rank0;
  const auto report = read_json_file(outs / "run" / "report.json");
  EXPECT_TRUE(report["memory"]["bound"].is_null()) << report["memory"].dump();
  EXPECT_EQ(report["timing"]["world_sizes"], nlohmann::json({2}));

  const auto r = run_shell(dist_env() + dist_binary() + " " + args(dir_ / "whole", "--json"));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto a = pngs(outs / "run"), b = pngs(dir_ / "whole");
  EXPECT_EQ(a.size(), 48u);
  ASSERT_EQ(a.size(), b.size());
  for (const auto& [name, bytes] : a) EXPECT_TRUE(b.at(name) == bytes) << name;
  const auto whole = read_json_file(dir_ / "whole" / "report.json");
  for (const char* side : {"baseline", "candidate"})
    EXPECT_EQ(report[side]["per_sample_clip"], whole[side]["per_sample_clip"]) << side;
  EXPECT_EQ(report["metrics"], whole["metrics"]);
  for (const auto& e : fs::directory_iterator(outs / "run"))
    EXPECT_NE(e.path().filename().string().rfind("journal", 0), 0u) << e.path();
}
