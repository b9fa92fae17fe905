// Comparing weight files by content, not by path: XXH3 hashes, remembered per file identity.
#include "diffbench/io/file_identity.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <vector>

#include <xxhash.h>

#include "diffbench/error.hpp"
#include "diffbench/io/read_file.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

std::string hex16(uint64_t h) {
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx", static_cast<unsigned long long>(h));
  return buf;
}

int64_t mtime_ns(const struct stat& st) {
  return static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec;
}

// XXH3-64 of the open file's bytes (mmap; an empty file hashes the empty input).
uint64_t hash_fd(int fd, size_t size, const fs::path& file) {
  if (size == 0) return XXH3_64bits(nullptr, 0);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) throw InputError("cannot map for hashing", file.string());
  ::madvise(map, size, MADV_SEQUENTIAL);
  const uint64_t h = XXH3_64bits(map, size);
  ::munmap(map, size);
  return h;
}

// One line of the cache file.
struct Entry {
  std::string hash;
  uint64_t size = 0;
  int64_t mtime = 0;
  uint64_t dev = 0, ino = 0;
  std::string path;
};

std::vector<Entry> read_entries(const fs::path& file) {
  std::vector<Entry> out;
  std::ifstream in(file);
  std::string line;
  while (std::getline(in, line)) {
    std::istringstream fields(line);
    Entry e;
    if (!(fields >> e.hash >> e.size >> e.mtime >> e.dev >> e.ino) || e.hash.size() != 16) continue;
    fields.get();  // the tab before the path (a path may hold spaces)
    std::getline(fields, e.path);
    if (!e.path.empty()) out.push_back(std::move(e));
  }
  return out;
}

void write_entries(const fs::path& file, const std::vector<Entry>& entries) {
  std::ostringstream o;
  const size_t first = entries.size() > HashCache::kMaxEntries ? entries.size() - HashCache::kMaxEntries : 0;
  for (size_t i = first; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    o << e.hash << '\t' << e.size << '\t' << e.mtime << '\t' << e.dev << '\t' << e.ino << '\t' << e.path << '\n';
  }
  // A temporary name of this process's own, then a rename: concurrent runs each leave a whole file.
  // A cache that cannot be written (read-only folder, full disk) costs only the speed-up.
  std::error_code ec;
  fs::create_directories(file.parent_path(), ec);
  const fs::path tmp = file.string() + "." + std::to_string(::getpid()) + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) return;
    out << o.str();
    if (!out) {
      out.close();
      fs::remove(tmp, ec);
      return;
    }
  }
  fs::rename(tmp, file, ec);
  if (ec) fs::remove(tmp, ec);
}

}  // namespace

std::string content_hash_uncached(const fs::path& file) {
  const int fd = open_regular_file(file);
  struct stat st {};
  ::fstat(fd, &st);
  try {
    const uint64_t h = hash_fd(fd, static_cast<size_t>(st.st_size), file);
    ::close(fd);
    return hex16(h);
  } catch (...) {
    ::close(fd);
    throw;
  }
}

std::string content_hash(const fs::path& file) { return HashCache::shared().hash(file); }

HashCache::HashCache(fs::path file) : file_(std::move(file)) {}

HashCache& HashCache::shared() {
  static HashCache cache([] {
    if (const char* env = std::getenv("DIFFBENCH_HASH_CACHE"))
      return std::string(env) == "off" ? fs::path() : fs::path(env);
    if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
      return fs::path(xdg) / "diffbench" / "file-hashes.tsv";
    if (const char* home = std::getenv("HOME"); home && *home)
      return fs::path(home) / ".cache" / "diffbench" / "file-hashes.tsv";
    return fs::path();
  }());
  return cache;
}

std::string HashCache::hash(const fs::path& file) {
  const int fd = open_regular_file(file);  // InputError naming a missing file, a FIFO, a folder
  struct stat st {};
  ::fstat(fd, &st);
  std::error_code ec;
  fs::path abs = fs::absolute(file, ec).lexically_normal();
  const Entry now{"", static_cast<uint64_t>(st.st_size), mtime_ns(st), static_cast<uint64_t>(st.st_dev),
                  static_cast<uint64_t>(st.st_ino), abs.string()};
  auto same_identity = [&](const Entry& e) {
    return e.path == now.path && e.size == now.size && e.mtime == now.mtime && e.dev == now.dev && e.ino == now.ino;
  };
  std::lock_guard<std::mutex> lock(mutex_);
  std::vector<Entry> entries;
  if (!file_.empty()) {
    entries = read_entries(file_);
    for (const auto& e : entries)
      if (same_identity(e)) {
        ::close(fd);
        ++hits_;
        return e.hash;
      }
  }
  std::string h;
  try {
    h = hex16(hash_fd(fd, static_cast<size_t>(st.st_size), file));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  ++misses_;
  const auto age = std::chrono::system_clock::now().time_since_epoch() - std::chrono::nanoseconds(now.mtime);
  if (!file_.empty() && age > std::chrono::seconds(kRacySeconds)) {
    Entry e = now;
    e.hash = h;
    std::vector<Entry> kept;
    for (auto& old : entries)
      if (old.path != e.path) kept.push_back(std::move(old));  // the file's older entry goes
    kept.push_back(std::move(e));
    write_entries(file_, kept);
  }
  return h;
}

bool same_content(const fs::path& a, const fs::path& b) {
  std::error_code ec;
  if (fs::equivalent(a, b, ec)) return true;
  const auto size_a = fs::file_size(a, ec);
  if (ec) content_hash(a);  // throws InputError naming the file (missing, a FIFO, ...)
  const auto size_b = fs::file_size(b, ec);
  if (ec) content_hash(b);
  if (size_a != size_b) return false;
  return content_hash(a) == content_hash(b);
}

}  // namespace diffbench
