// What tests/dist's multi-process runs share: launchers (torchrun, mpirun), a free port for the
// rendezvous store, the environment every process runs with, and byte comparisons of outputs.
#pragma once

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "cli/cli_support.hpp"
#include "test_support.hpp"

namespace diffbench::test {

// A TCP port free right now on the loopback (the rendezvous store's).
inline int free_port() {
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

inline std::string file_bytes(const std::filesystem::path& p) {
  std::ifstream in(p, std::ios::binary);
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

// The venv's torchrun (the Makefile's torch wheel), or $DIFFBENCH_TORCHRUN; empty when neither exists.
inline std::string find_torchrun() {
  if (const char* env = std::getenv("DIFFBENCH_TORCHRUN"); env && *env) return env;
  return std::filesystem::exists(DIFFBENCH_TORCHRUN) ? std::string(DIFFBENCH_TORCHRUN) : std::string();
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

// mpirun's path, or empty when Open MPI is not installed.
inline std::string find_mpirun() {
  const auto which = run_shell("command -v mpirun");
  return which.exit_code == 0 ? which.output.substr(0, which.output.find('\n')) : "";
}

// `torchrun --standalone --nproc-per-node N --no-python` (a free rendezvous port on this machine; the
// ranks join torchrun's agent store), ready for the binary and its arguments.
inline std::string torchrun_prefix(const std::string& torchrun, int processes = 2) {
  return shell_quote(torchrun) + " --standalone --nproc-per-node " + std::to_string(processes) + " --no-python ";
}

inline std::string dist_binary() { return shell_quote(DIFFBENCH_BINARY); }

// One thread per process, in the one-process run too (the same kernels, and two processes of two
// threads each on a two-core machine run several times slower than with one each).
inline std::string dist_env() { return "OMP_NUM_THREADS=1 DIFFBENCH_BASELINE_CACHE=off "; }

// "000003.png"
inline std::string png_name(int i) {
  char name[32];
  std::snprintf(name, sizeof name, "%06d.png", i);
  return name;
}

}  // namespace diffbench::test
