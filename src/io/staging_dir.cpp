#include "diffbench/io/staging_dir.hpp"

#include <fcntl.h>
#include <ftw.h>
#include <signal.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <fstream>

#include "diffbench/error.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

// True when `a` is `b` or a folder above it (both absolute and normal).
bool is_same_or_above(const fs::path& a, const fs::path& b) {
  auto bi = b.begin();
  for (auto ai = a.begin(); ai != a.end(); ++ai, ++bi) {
    if (ai->empty()) continue;  // a trailing separator
    if (bi == b.end() || *ai != *bi) return false;
  }
  return true;
}

fs::path canonical_or_self(const fs::path& p) {
  std::error_code ec;
  fs::path c = fs::weakly_canonical(p, ec);
  return ec ? p : c;
}

// A folder diffbench wrote: generate's run.json, eval's report.json or suite's suite.json.
bool written_by_diffbench(const fs::path& dir) {
  std::error_code ec;
  return fs::is_regular_file(dir / "run.json", ec) || fs::is_regular_file(dir / "report.json", ec) ||
         fs::is_regular_file(dir / "suite.json", ec);
}

bool is_nonempty_dir(const fs::path& p) {
  std::error_code ec;
  return fs::is_directory(p, ec) && !fs::is_empty(p, ec);
}

// Refuses a target that must never be written or replaced; see the header.
void check_target(const fs::path& target, bool replace) {
  const std::string where = target.string();
  const fs::path real = canonical_or_self(target);
  if (real == real.root_path()) throw UsageError("refusing to use the root folder as an output folder", where);
  std::error_code ec;
  const fs::path cwd = canonical_or_self(fs::current_path(ec));
  if (!ec && is_same_or_above(real, cwd))
    throw UsageError("refusing to use the current folder (or one above it) as an output folder; name a new "
                     "folder, e.g. --out runs/x",
                     where);
  if (const char* home = std::getenv("HOME"); home && *home && fs::path(home).is_absolute())
    if (is_same_or_above(real, canonical_or_self(fs::path(home).lexically_normal())))
      throw UsageError("refusing to use the home folder (or one above it) as an output folder", where);
  const auto st = fs::status(target, ec);
  if (!fs::exists(st)) return;
  if (!fs::is_directory(st)) throw UsageError("exists and is not a folder", where);
  if (!is_nonempty_dir(target)) return;
  if (!replace) throw UsageError("output folder exists and is not empty; choose another or pass --force", where);
  if (!written_by_diffbench(target))
    throw UsageError("output folder is not empty and was not written by diffbench (it has no run.json, "
                     "report.json or suite.json); --force replaces only diffbench's own output folders",
                     where);
}

// Whether process `pid` still runs (or cannot be told apart from running).
bool process_alive(long pid) { return ::kill(static_cast<pid_t>(pid), 0) == 0 || errno == EPERM; }

}  // namespace

void remove_tree(const fs::path& p, std::error_code& ec) {
  ec.clear();
  struct stat st {};
  if (::lstat(p.c_str(), &st) != 0) {
    if (errno != ENOENT) ec.assign(errno, std::generic_category());
    return;
  }
  // Depth first (children before their folder), never crossing a symbolic link: a link is removed, not
  // what it points to.
  auto remove_one = [](const char* path, const struct stat*, int type, struct FTW*) -> int {
    return (type == FTW_DP ? ::rmdir(path) : ::unlink(path)) == 0 ? 0 : -1;
  };
  if (::nftw(p.c_str(), remove_one, 16, FTW_DEPTH | FTW_PHYS) != 0) ec.assign(errno ? errno : EIO, std::generic_category());
}

fs::path normalize_output_path(const fs::path& p) {
  std::error_code ec;
  fs::path abs = fs::absolute(p, ec);
  if (ec) abs = p;
  fs::path n = abs.lexically_normal();
  // lexically_normal keeps a trailing separator ("x/" -> "x/", "x/." -> "x/"): drop it.
  while (n.has_relative_path() && n.filename().empty()) n = n.parent_path();
  return n;
}

StagingDir::StagingDir(const fs::path& target, bool replace, const StagingResume& resume) : replace_(replace) {
  if (target.empty()) throw UsageError("no output folder given", "--out");
  target_ = normalize_output_path(target);
  check_target(target_, replace_);
  const fs::path parent = target_.parent_path();
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw InputError("cannot create folder: " + ec.message(), parent.string());
  const std::string name = target_.filename().string();
  lock_file_ = parent / ("." + name + ".lock");
  lock();
  // Checked again under the lock: another writer may have finished in between.
  check_target(target_, replace_);

  // Holding the lock, every other staging folder of this target belongs to a process that ended
  // (or is not a diffbench writing this target any more): adopt the newest resumable one when
  // asked to, remove those of dead processes.
  const std::string prefix = "." + name + ".partial-";
  std::vector<fs::path> stale;
  for (const auto& entry : fs::directory_iterator(parent, ec)) {
    const std::string f = entry.path().filename().string();
    if (f.compare(0, prefix.size(), prefix) != 0) continue;
    char* end = nullptr;
    const long pid = std::strtol(f.c_str() + prefix.size(), &end, 10);
    if (!end || *end != '\0' || pid <= 0 || pid == ::getpid() || process_alive(pid)) continue;
    stale.push_back(entry.path());
  }
  auto resumable = [&](const fs::path& dir) {
    std::error_code e;
    return !resume.marker.empty() && fs::is_regular_file(dir / resume.marker, e);
  };
  staging_ = parent / (prefix + std::to_string(::getpid()));
  if (resume.adopt) {
    fs::file_time_type newest{};
    for (const auto& dir : stale) {
      std::error_code e;
      const auto t = fs::last_write_time(dir / resume.marker, e);
      if (resumable(dir) && !e && (adopted_.empty() || t > newest)) {
        adopted_ = dir;
        newest = t;
      }
    }
  }
  for (const auto& dir : stale) {
    if (dir == adopted_) continue;
    const bool had_marker = resumable(dir);
    std::error_code rm;
    remove_tree(dir, rm);
    if (rm) continue;
    removed_stale_.push_back(dir);
    if (had_marker) removed_resumable_.push_back(dir);
  }
  remove_tree(staging_, ec);
  if (!adopted_.empty()) {
    fs::rename(adopted_, staging_, ec);
    if (ec) throw InputError("cannot take over the interrupted run's folder: " + ec.message(), adopted_.string());
    return;
  }
  fs::create_directories(staging_, ec);
  if (ec) throw InputError("cannot create folder: " + ec.message(), staging_.string());
}

void StagingDir::lock() {
  for (int attempt = 0; attempt < 8; ++attempt) {
    const int fd = ::open(lock_file_.c_str(), O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0644);
    if (fd < 0) throw InputError(std::string("cannot create the lock file: ") + std::strerror(errno), lock_file_.string());
    if (::flock(fd, LOCK_EX | LOCK_NB) != 0) {
      const int err = errno;
      ::close(fd);
      if (err == EWOULDBLOCK)
        throw UsageError("another diffbench process is writing this output folder (lock " +
                             lock_file_.filename().string() + " is held); wait for it or choose another --out",
                         target_.string());
      throw InputError(std::string("cannot lock: ") + std::strerror(err), lock_file_.string());
    }
    // The holder before us unlinks the file before releasing it: make sure ours is still the one
    // at that path, else try again with a fresh file.
    struct stat a {}, b {};
    if (::fstat(fd, &a) == 0 && ::stat(lock_file_.c_str(), &b) == 0 && a.st_dev == b.st_dev && a.st_ino == b.st_ino) {
      lock_fd_ = fd;
      return;
    }
    ::close(fd);
  }
  throw InputError("cannot take the lock file (it keeps being replaced)", lock_file_.string());
}

StagingDir::~StagingDir() {
  std::error_code ec;
  if (!committed_ && !keep_ && !staging_.empty()) remove_tree(staging_, ec);
  if (lock_fd_ >= 0) {
    ::unlink(lock_file_.c_str());  // while still holding it; see lock()
    ::close(lock_fd_);
  }
}

void StagingDir::commit() {
  if (committed_) return;
  check_target(target_, replace_);
  std::error_code ec;
  fs::path old;
  if (is_nonempty_dir(target_)) {  // replace_ is set and the folder is diffbench's (check_target)
    old = target_.parent_path() / ("." + target_.filename().string() + ".old-" + std::to_string(::getpid()));
    remove_tree(old, ec);
    fs::rename(target_, old, ec);
    if (ec) throw InputError("cannot move the old output folder aside: " + ec.message(), target_.string());
  }
  fs::rename(staging_, target_, ec);  // replaces an empty folder
  if (ec) {
    std::error_code back;
    if (!old.empty()) fs::rename(old, target_, back);
    throw InputError("cannot move the finished output into place: " + ec.message(), target_.string());
  }
  committed_ = true;
  if (!old.empty()) remove_tree(old, ec);
}

void write_file_atomic(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write", tmp.string());
    out << text;
    if (!out) throw InputError("write failed", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) throw InputError("cannot rename into place: " + ec.message(), file.string());
}

}  // namespace diffbench
