// `diffbench eval` spread over two processes on the CPU (Gloo): under torchrun and mpirun its images
// are byte-identical to the one-process run's and its scores equal; a rank killed mid-run ends the
// other within the heartbeat timeout, naming the rank. tiny-sd, the tiny-clip scorer, COCO captions.
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <fstream>
#include <regex>

#include "cli/cli_support.hpp"
#include "diffbench/io/json_config.hpp"
#include "eval/eval_fixture.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

// A TCP port free right now on the loopback (the rendezvous store's).
int free_port() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in a{};
  a.sin_family = AF_INET;
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  a.sin_port = 0;
  socklen_t len = sizeof a;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&a), sizeof a) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&a), &len) == 0)
    port = ntohs(a.sin_port);
  ::close(fd);
  return port;
}

std::string file_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The venv's torchrun (the Makefile's torch wheel), or $DIFFBENCH_TORCHRUN; empty when neither exists.
std::string find_torchrun() {
  if (const char* env = std::getenv("DIFFBENCH_TORCHRUN"); env && *env) return env;
  return fs::exists(DIFFBENCH_TORCHRUN) ? std::string(DIFFBENCH_TORCHRUN) : std::string();
}

// A launcher the test needs: skipped when missing, a failure under DIFFBENCH_REQUIRE_FIXTURES (CI,
// where `make test` installs it), as the browser tests treat Chromium.
#define REQUIRE_LAUNCHER(path, what)                                                              \
  do {                                                                                            \
    if ((path).empty()) {                                                                         \
      if (::diffbench::test::fixtures_required()) GTEST_FAIL() << what << " is missing";          \
      GTEST_SKIP() << what << " is missing: the two-process run is not tested";                  \
    }                                                                                             \
  } while (0)

class DistCli : public test::EvalFixture {
 protected:
  // DeepCache against its baseline: two different image sets, so scores and fidelity metrics are
  // exercised. 4 prompts in batches of 1: two batches per rank.
  std::string args(const fs::path& out) {
    const fs::path spec = write_spec("deepcache", "[pipeline]\nmodel = \"" + test::fixture("tiny-sd").string() +
                                                      "\"\nsteps = 10\nguidance = 7.5\n\n[[accelerate]]\n"
                                                      "method = \"deepcache\"\ncache_interval = 3\n"
                                                      "cache_branch_id = 0\n");
    return "eval " + shell_quote(spec.string()) + " --prompts " +
           shell_quote("coco:" + test::shared_data("captions_val2017.json").string()) +
           " --num-samples 4 --batch-size 1 --warmup 0 --max-quality-loss 100 --clip " +
           shell_quote(test::fixture("tiny-clip").string()) + " --out " + shell_quote(out.string()) + " --json";
  }
  std::string binary() const { return shell_quote(DIFFBENCH_BINARY); }
  // One thread per process, in the one-process run too (the same kernels, and two processes of two
  // threads each on a two-core machine run several times slower than with one each).
  static std::string env() { return "OMP_NUM_THREADS=1 DIFFBENCH_BASELINE_CACHE=off "; }

  // The one-process run's report folder (made once per test).
  fs::path single_run() {
    const fs::path out = dir_ / "single";
    const auto r = run_shell(env() + binary() + " " + args(out));
    EXPECT_EQ(r.exit_code, 0) << r.output;
    return out;
  }

  // Images byte-identical, scores equal, and the two-process run's "distributed" section.
  void expect_same_report(const fs::path& single, const fs::path& multi, const std::string& launcher) {
    const auto one = read_json_file(single / "report.json");
    const auto two = read_json_file(multi / "report.json");
    EXPECT_FALSE(one.contains("distributed"));
    for (const char* side : {"baseline", "candidate"})
      for (int i = 0; i < 4; ++i) {
        char name[32];
        std::snprintf(name, sizeof name, "%06d.png", i);
        const fs::path a = single / side / name, b = multi / side / name;
        ASSERT_TRUE(fs::exists(b)) << b;
        EXPECT_TRUE(file_bytes(a) == file_bytes(b)) << side << "/" << name << " differs from the one-process run's";
      }
    // Scores come from the same images, computed by rank 0 as one process would: equal, not close.
    for (const char* side : {"baseline", "candidate"}) {
      EXPECT_EQ(one[side]["per_sample_clip"], two[side]["per_sample_clip"]) << side;
      EXPECT_EQ(one[side]["clip_score"], two[side]["clip_score"]) << side;
      EXPECT_EQ(one[side]["unet_calls_per_image"], two[side]["unet_calls_per_image"]) << side;
      EXPECT_EQ(two[side]["batch_seconds"].size(), 4u) << side;  // every rank's batches
    }
    EXPECT_EQ(one["quality_loss_pct"], two["quality_loss_pct"]);
    EXPECT_EQ(one["paired"], two["paired"]);
    EXPECT_EQ(one["metrics"]["psnr"], two["metrics"]["psnr"]);
    EXPECT_EQ(one["metrics"]["ssim"], two["metrics"]["ssim"]);
    EXPECT_EQ(one["per_prompt"], two["per_prompt"]);
    EXPECT_EQ(one["protocol"], two["protocol"]);
    const auto& d = two["distributed"];
    EXPECT_EQ(d["world_size"], 2);
    EXPECT_EQ(d["launcher"], launcher);
    EXPECT_EQ(d["backend"], "gloo");
    ASSERT_EQ(d["ranks"].size(), 2u);
    EXPECT_EQ(d["ranks"][0]["prompts"], nlohmann::json({0, 2}));
    EXPECT_EQ(d["ranks"][1]["prompts"], nlohmann::json({2, 4}));
    for (const auto& r : d["ranks"]) {
      EXPECT_GT(r["baseline_seconds_per_image"].get<double>(), 0) << r.dump();
      EXPECT_GT(r["candidate_seconds_per_image"].get<double>(), 0) << r.dump();
    }
    EXPECT_EQ(d["images"], 8);  // 4 prompts, baseline and candidate
    EXPECT_GT(d["images_per_second"].get<double>(), 0);
    const std::string md = file_bytes(multi / "report.md");
    EXPECT_NE(md.find("Processes: 2 (" + launcher + ", gloo); rank 0 on cpu, prompts 0-1, "), std::string::npos) << md;
    const std::string html = file_bytes(multi / "report.html");
    EXPECT_NE(html.find("<th>processes</th><td>2 (" + launcher + ", gloo), "), std::string::npos);
  }
};

}  // namespace

TEST_F(DistCli, TorchrunTwoProcessesMatchOneProcess) {
  const std::string torchrun = find_torchrun();
  REQUIRE_LAUNCHER(torchrun, "torchrun (the torch wheel's virtualenv)");
  const fs::path single = single_run();
  const fs::path multi = dir_ / "torchrun";
  // --standalone: a free rendezvous port on this machine; the ranks join torchrun's agent store.
  const auto r = run_shell(env() + shell_quote(torchrun) +
                           " --standalone --nproc-per-node 2 --no-python " + binary() + " " + args(multi));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_report(single, multi, "torchrun");
}

TEST_F(DistCli, MpirunTwoProcessesMatchOneProcess) {
  const auto which = run_shell("command -v mpirun");
  const std::string mpirun = which.exit_code == 0 ? which.output.substr(0, which.output.find('\n')) : "";
  REQUIRE_LAUNCHER(mpirun, "mpirun (Debian's openmpi-bin)");
  const fs::path single = single_run();
  const fs::path multi = dir_ / "mpirun";
  // Root in a container: Open MPI asks for both variables before it starts processes as root.
  const std::string root_env = "OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1 MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
                               std::to_string(free_port()) + " ";
  const auto r = run_shell(env() + root_env + shell_quote(mpirun) + " -n 2 --oversubscribe -x MASTER_ADDR -x MASTER_PORT " + binary() +
                           " " + args(multi));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  expect_same_report(single, multi, "mpirun");
}

// Rank 1 is killed (SIGKILL: no chance to say why) once it generates; rank 0 must end within the
// heartbeat timeout (5 s here) plus a margin for this loaded machine, naming rank 1, not hang.
TEST_F(DistCli, KilledRankEndsTheOtherWithinTheTimeout) {
  const fs::path out = dir_ / "killed";
  // More work than the kill needs, so rank 1 is still generating when it is killed.
  std::string run_args = args(out);
  run_args = std::regex_replace(run_args, std::regex("--num-samples 4"), "--num-samples 16");
  const std::string script =
      "cd " + shell_quote(dir_.string()) + " && export MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
      std::to_string(free_port()) + " WORLD_SIZE=2 DIFFBENCH_DIST_TIMEOUT=5 " + env() + "\n" +
      "RANK=0 LOCAL_RANK=0 " + binary() + " " + run_args + " > rank0.log 2>&1 & p0=$!\n" +
      "RANK=1 LOCAL_RANK=1 " + binary() + " " + run_args + " > rank1.log 2>&1 & p1=$!\n" +
      "for i in $(seq 1200); do grep -q 'generating prompts' rank1.log && break; sleep 0.1; done\n"
      "kill -9 $p1; t0=$(date +%s%N)\n"
      "for i in $(seq 1200); do kill -0 $p0 2>/dev/null || break; sleep 0.1; done\n"
      "t1=$(date +%s%N); if kill -0 $p0 2>/dev/null; then kill -9 $p0; echo 'rank 0 hung'; fi\n"
      "wait $p0; echo \"rc=$? ms=$(( (t1 - t0) / 1000000 ))\"\n";
  const auto r = run_shell(script);
  const std::string rank0 = file_bytes(dir_ / "rank0.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("rc=(\\d+) ms=(\\d+)"))) << r.output << rank0;
  EXPECT_EQ(std::stoi(m[1]), 3) << rank0;
  // 5 s without a heartbeat; 25 s of margin for a machine whose cores the test's own runs share.
  EXPECT_LT(std::stoi(m[2]), 30000) << rank0;
  EXPECT_NE(rank0.find("rank 1 stopped responding"), std::string::npos) << rank0;
  EXPECT_FALSE(fs::exists(out / "report.json"));  // no report from half a run
}

// Rank 0 fails on bad input (its --out is occupied; the other ranks never look at --out) while
// rank 1 is loading: rank 1 ends with rank 0's exit code and message, not after its whole run.
TEST_F(DistCli, FailedRankEndsTheOtherWithItsMessage) {
  const fs::path out = dir_ / "occupied";
  fs::create_directories(out);
  std::ofstream(out / "notes.txt") << "not diffbench's\n";
  const std::string run_args = std::regex_replace(args(out), std::regex("--num-samples 4"), "--num-samples 16");
  const std::string script =
      "cd " + shell_quote(dir_.string()) + " && export MASTER_ADDR=127.0.0.1 MASTER_PORT=" +
      std::to_string(free_port()) + " WORLD_SIZE=2 DIFFBENCH_DIST_TIMEOUT=5 " + env() + "\n" +
      "RANK=0 LOCAL_RANK=0 " + binary() + " " + run_args + " > rank0.log 2>&1 & p0=$!\n" +
      "RANK=1 LOCAL_RANK=1 " + binary() + " " + run_args + " > rank1.log 2>&1 & p1=$!\n" +
      "t0=$(date +%s%N); wait $p0; rc0=$?\n"
      "for i in $(seq 600); do kill -0 $p1 2>/dev/null || break; sleep 0.1; done\n"
      "t1=$(date +%s%N); if kill -0 $p1 2>/dev/null; then kill -9 $p1; echo 'rank 1 did not stop'; fi\n"
      "wait $p1; echo \"rc0=$rc0 rc1=$? ms=$(( (t1 - t0) / 1000000 ))\"\n";
  const auto r = run_shell(script);
  const std::string rank0 = file_bytes(dir_ / "rank0.log"), rank1 = file_bytes(dir_ / "rank1.log");
  std::smatch m;
  ASSERT_TRUE(std::regex_search(r.output, m, std::regex("rc0=(\\d+) rc1=(\\d+) ms=(\\d+)"))) << r.output << rank1;
  EXPECT_EQ(std::stoi(m[1]), 2) << rank0;
  EXPECT_EQ(std::stoi(m[2]), 2) << rank1;  // rank 0's exit code: a usage error
  EXPECT_LT(std::stoi(m[3]), 60000) << rank1;  // from rank 0's start to rank 1's end, on a loaded machine
  EXPECT_NE(rank1.find("rank 1 stops: rank 0 ("), std::string::npos) << rank1;
  EXPECT_NE(rank1.find("output folder exists and is not empty"), std::string::npos) << rank1;
  EXPECT_TRUE(fs::exists(out / "notes.txt"));
}

TEST_F(DistCli, LauncherMistakesAreUsageErrors) {
  const std::string bin = binary();
  // A multi-process launch without the rendezvous address: exit 2 naming the variable.
  auto r = run_shell("RANK=0 WORLD_SIZE=2 " + bin + " " + args(dir_ / "a"));
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("MASTER_ADDR"), std::string::npos) << r.output;
  // Commands not spread over processes yet refuse to run under a launcher.
  r = run_shell("RANK=0 WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=1 " + bin + " methods");
  EXPECT_EQ(r.exit_code, 2) << r.output;
  EXPECT_NE(r.output.find("only eval is spread over processes"), std::string::npos) << r.output;
}
