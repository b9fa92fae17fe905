// Comparing weight files by content, not by path: XXH3 hashes (chunked, on several threads),
// remembered per file identity.
#include "diffbench/io/file_identity.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <fstream>
#include <sstream>
#include <thread>
#include <vector>

#include <xxhash.h>

#include "diffbench/error.hpp"
#include "diffbench/io/read_file.hpp"
#include "util/parallel.hpp"

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

// The content hash of the open file's bytes (mmap): XXH3-64 of the bytes up to `chunk` bytes; of a
// longer file, XXH3-64 seeded with the file's size of its chunks' XXH3-64 values (little-endian, in
// order), the chunks hashed by up to `threads` threads, each mapping its chunk into the page tables in
// one call first (MADV_POPULATE_READ, Linux 5.14; where the kernel lacks it, page faults do it).
uint64_t hash_fd(int fd, size_t size, const fs::path& file, size_t chunk, unsigned threads) {
  if (size == 0) return XXH3_64bits(nullptr, 0);
  void* map = ::mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  if (map == MAP_FAILED) throw InputError("cannot map for hashing", file.string());
  const auto* bytes = static_cast<const unsigned char*>(map);
  chunk = std::max<size_t>(chunk, 1);
  uint64_t h = 0;
  if (size <= chunk) {
    ::madvise(map, size, MADV_SEQUENTIAL);
    h = XXH3_64bits(bytes, size);
  } else {
    const size_t chunks = (size + chunk - 1) / chunk;
    std::vector<unsigned char> sums(chunks * 8);
    try {
      parallel_for(
          chunks,
          [&](size_t i) {
            unsigned char* begin = const_cast<unsigned char*>(bytes) + i * chunk;
            const size_t len = std::min(chunk, size - i * chunk);
#ifdef MADV_POPULATE_READ
            ::madvise(begin, len, MADV_POPULATE_READ);
#endif
            const uint64_t c = XXH3_64bits(begin, len);
            for (int k = 0; k < 8; ++k) sums[i * 8 + k] = static_cast<unsigned char>(c >> (8 * k));
          },
          std::max(1u, threads));
    } catch (...) {  // no thread to be had
      ::munmap(map, size);
      throw;
    }
    h = XXH3_64bits_withSeed(sums.data(), sums.size(), static_cast<XXH64_hash_t>(size));
  }
  ::munmap(map, size);
  return h;
}

// Threads for one long file's chunks: the hardware's, at most 16 (memory bandwidth runs out long before
// that, and content_hashes may hash several long files at once).
unsigned hash_threads() { return std::clamp(std::thread::hardware_concurrency(), 1u, 16u); }

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
    // Hashes are written "2:" + 16 hex digits: lines of the whole-file XXH3 of diffbench before the
    // chunked hash (16 digits alone) are not read as this hash, nor these by it.
    if (!(fields >> e.hash >> e.size >> e.mtime >> e.dev >> e.ino) || e.hash.size() != 18 ||
        e.hash.rfind("2:", 0) != 0)
      continue;
    e.hash.erase(0, 2);
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
    o << "2:" << e.hash << '\t' << e.size << '\t' << e.mtime << '\t' << e.dev << '\t' << e.ino << '\t' << e.path
      << '\n';
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

std::string content_hash_uncached(const fs::path& file, size_t chunk_bytes, unsigned threads) {
  const int fd = open_regular_file(file);
  struct stat st {};
  ::fstat(fd, &st);
  try {
    const uint64_t h =
        hash_fd(fd, static_cast<size_t>(st.st_size), file, chunk_bytes, threads == 0 ? hash_threads() : threads);
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
  if (!file_.empty()) {
    std::lock_guard<std::mutex> lock(mutex_);
    for (const auto& e : read_entries(file_))
      if (same_identity(e)) {
        ::close(fd);
        ++hits_;
        return e.hash;
      }
  }
  // Hashed without the lock: several files may be hashed at once (content_hashes).
  std::string h;
  try {
    h = hex16(hash_fd(fd, static_cast<size_t>(st.st_size), file, kHashChunkBytes, hash_threads()));
  } catch (...) {
    ::close(fd);
    throw;
  }
  ::close(fd);
  std::lock_guard<std::mutex> lock(mutex_);
  ++misses_;
  const auto age = std::chrono::system_clock::now().time_since_epoch() - std::chrono::nanoseconds(now.mtime);
  if (!file_.empty() && age > std::chrono::seconds(kRacySeconds)) {
    Entry e = now;
    e.hash = h;
    std::vector<Entry> kept;
    for (auto& old : read_entries(file_))  // read again: another thread may have added its file meanwhile
      if (old.path != e.path) kept.push_back(std::move(old));  // the file's older entry goes
    kept.push_back(std::move(e));
    write_entries(file_, kept);
  }
  return h;
}

std::vector<std::string> content_hashes(const std::vector<fs::path>& files, HashCache& cache) {
  std::vector<std::string> out(files.size());
  if (files.empty()) return out;
  // Largest first, so that the longest hash starts at once; each hash keeps two threads busy.
  std::vector<std::pair<uintmax_t, size_t>> order;
  for (size_t i = 0; i < files.size(); ++i) {
    std::error_code ec;
    const uintmax_t size = fs::file_size(files[i], ec);
    order.emplace_back(ec ? 0 : size, i);
  }
  std::sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  // A file's error is kept, not thrown, so that the others are still hashed.
  std::vector<std::exception_ptr> errors(files.size());
  parallel_for(
      order.size(),
      [&](size_t k) {
        const size_t i = order[k].second;
        try {
          out[i] = cache.hash(files[i]);
        } catch (...) {
          errors[i] = std::current_exception();
        }
      },
      std::max(1u, std::thread::hardware_concurrency() / 2));
  for (const auto& e : errors)  // the first file's error in the caller's order, as one at a time would
    if (e) std::rethrow_exception(e);
  return out;
}

std::vector<std::string> content_hashes(const std::vector<fs::path>& files) {
  return content_hashes(files, HashCache::shared());
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
