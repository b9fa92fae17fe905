// Running the real diffbench binary from tests.
#pragma once

#include <sys/wait.h>

#include <array>
#include <cstdio>
#include <string>

struct CommandResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr together
};

inline std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs a shell command line and returns its exit code and output (stdout and stderr together).
inline CommandResult run_shell(const std::string& cmd) {
  CommandResult r;
  FILE* p = ::popen((cmd + " 2>&1").c_str(), "r");
  if (!p) return r;
  std::array<char, 4096> buf{};
  size_t n;
  while ((n = std::fread(buf.data(), 1, buf.size(), p)) > 0) r.output.append(buf.data(), n);
  const int status = ::pclose(p);
  r.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

// Runs `diffbench ARGS` (ARGS already quoted as needed) and returns its exit code and output. The
// baseline cache is off unless a test names one (--baseline-cache): a test's result must not depend
// on what an earlier run stored.
inline CommandResult run_diffbench(const std::string& args) {
  return run_shell("DIFFBENCH_BASELINE_CACHE=off " + shell_quote(DIFFBENCH_BINARY) + " " + args);
}
