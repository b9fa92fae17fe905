#include "eval/python_ast.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdlib>
#include <cstring>

#include "diffbench/error.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// Reads source bytes from stdin, prints {"tree": ...} or {"syntax_error": ...}; never runs them.
const char* kDumpScript = R"PY(
import ast, json, math, sys
data = sys.stdin.buffer.read()
text = data.decode("utf-8-sig", errors="replace")
try:
    tree = ast.parse(text)
except SyntaxError as e:
    json.dump({"syntax_error": {"msg": str(e.msg), "line": e.lineno or 0, "text": (e.text or "").strip()}}, sys.stdout)
    sys.exit(0)
def conv(node):
    if isinstance(node, ast.AST):
        d = {"_t": type(node).__name__}
        for name, value in ast.iter_fields(node):
            d[name] = conv(value)
        for name in ("lineno", "end_lineno"):
            if hasattr(node, name):
                d[name] = getattr(node, name)
        if isinstance(node, ast.stmt):
            d["_src"] = ast.get_source_segment(text, node) or ""
        return d
    if isinstance(node, list):
        return [conv(x) for x in node]
    if isinstance(node, float) and not math.isfinite(node):
        return {"_t": "_float", "repr": repr(node)}
    if isinstance(node, (bytes, complex)) or node is Ellipsis:
        return {"_t": "_other", "repr": repr(node)}
    return node
json.dump({"tree": conv(tree), "python": sys.version.split()[0]}, sys.stdout)
)PY";

fs::path find_python() {
  if (const char* env = std::getenv("DIFFBENCH_PYTHON"); env && *env) return env;
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  size_t start = 0;
  while (start <= dirs.size()) {
    const size_t end = std::min(dirs.find(':', start), dirs.size());
    const fs::path dir = dirs.substr(start, end - start);
    if (!dir.empty() && ::access((dir / "python3").c_str(), X_OK) == 0) return dir / "python3";
    start = end + 1;
  }
  return {};
}

// Runs `python` with the script, feeding `input`; returns stdout (stderr into `err`).
int run_python(const fs::path& python, const std::string& input, std::string& out, std::string& err) {
  int in_pipe[2], out_pipe[2], err_pipe[2];
  if (::pipe(in_pipe) || ::pipe(out_pipe) || ::pipe(err_pipe)) throw RuntimeFailure("cannot create pipes", "python3");
  const pid_t pid = ::fork();
  if (pid < 0) throw RuntimeFailure("cannot start python3", python.string());
  if (pid == 0) {
    ::dup2(in_pipe[0], 0);
    ::dup2(out_pipe[1], 1);
    ::dup2(err_pipe[1], 2);
    for (int fd : {in_pipe[0], in_pipe[1], out_pipe[0], out_pipe[1], err_pipe[0], err_pipe[1]}) ::close(fd);
    const std::string py = python.string();
    ::execl(py.c_str(), py.c_str(), "-I", "-S", "-c", kDumpScript, static_cast<char*>(nullptr));
    ::_exit(127);
  }
  ::close(in_pipe[0]);
  ::close(out_pipe[1]);
  ::close(err_pipe[1]);
  const auto old_sigpipe = ::signal(SIGPIPE, SIG_IGN);  // a child that exits early must not kill us
  size_t written = 0;
  int in_fd = in_pipe[1];
  if (input.empty()) {
    ::close(in_fd);
    in_fd = -1;
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
  bool out_open = true, err_open = true;
  char buf[65536];
  while (out_open || err_open || in_fd >= 0) {
    pollfd fds[3];
    int n = 0;
    if (out_open) fds[n++] = {out_pipe[0], POLLIN, 0};
    if (err_open) fds[n++] = {err_pipe[0], POLLIN, 0};
    if (in_fd >= 0) fds[n++] = {in_fd, POLLOUT, 0};
    if (std::chrono::steady_clock::now() > deadline) {
      ::kill(pid, SIGKILL);
      break;
    }
    if (::poll(fds, n, 1000) < 0 && errno != EINTR) break;
    for (int i = 0; i < n; ++i) {
      if (!fds[i].revents) continue;
      if (fds[i].fd == in_fd) {
        const ssize_t w = ::write(in_fd, input.data() + written, std::min<size_t>(input.size() - written, 65536));
        if (w > 0) written += static_cast<size_t>(w);
        if (w < 0 || written == input.size()) {
          ::close(in_fd);
          in_fd = -1;
        }
        continue;
      }
      const ssize_t r = ::read(fds[i].fd, buf, sizeof buf);
      if (r > 0) {
        (fds[i].fd == out_pipe[0] ? out : err).append(buf, static_cast<size_t>(r));
      } else {
        (fds[i].fd == out_pipe[0] ? out_open : err_open) = false;
      }
    }
  }
  if (in_fd >= 0) ::close(in_fd);
  ::close(out_pipe[0]);
  ::close(err_pipe[0]);
  int status = 0;
  ::waitpid(pid, &status, 0);
  ::signal(SIGPIPE, old_sigpipe);
  return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

}  // namespace

nlohmann::json parse_python(const std::string& text, const fs::path& file) {
  const fs::path python = find_python();
  if (python.empty())
    throw InputError("reading a Python pipeline file needs python3 (its ast module parses the file; the file is "
                     "never run), and no python3 was found on PATH; install Python 3.8 or newer, set "
                     "DIFFBENCH_PYTHON to one, or write the pipeline spec as TOML (README)",
                     file.string());
  std::string out, err;
  const int rc = run_python(python, text, out, err);
  nlohmann::json j = nlohmann::json::parse(out, nullptr, false);
  if (rc != 0 || j.is_discarded() || !j.is_object()) {
    const std::string detail = err.substr(err.size() > 600 ? err.size() - 600 : 0);
    throw InputError("could not parse the file with " + python.string() + " (exit " + std::to_string(rc) +
                         "; Python 3.8 or newer is needed)" + (detail.empty() ? "" : ": " + detail),
                     file.string());
  }
  if (j.contains("syntax_error")) {
    const auto& e = j["syntax_error"];
    throw InputError("Python syntax error: " + e.value("msg", std::string()) +
                         (e.value("text", std::string()).empty() ? "" : " in: " + e["text"].get<std::string>()),
                     file.string() + ":" + std::to_string(e.value("line", 0)));
  }
  return std::move(j["tree"]);
}

}  // namespace diffbench
