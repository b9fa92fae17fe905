// Whether two files hold the same bytes: same file, or same size and same 64-bit content hash.
// Hashes are xxHash's XXH3 (64-bit), remembered per (path, device, inode, size, mtime) in a small
// cache file so a multi-gigabyte checkpoint is hashed once, not on every run.
#pragma once

#include <cstddef>
#include <filesystem>
#include <mutex>
#include <string>

namespace diffbench {

// XXH3-64 of the file's bytes as 16 hex digits (what `xxhsum -H3` prints), read through mmap,
// without the cache. InputError naming the file when it is missing or not a regular file.
std::string content_hash_uncached(const std::filesystem::path& file);

// content_hash_uncached, remembered in HashCache::shared().
std::string content_hash(const std::filesystem::path& file);

// True when `a` and `b` are the same file (same inode: nothing hashed) or have the same size and
// content hash.
bool same_content(const std::filesystem::path& a, const std::filesystem::path& b);

// Content hashes remembered in a text file, one line per file: hash, size, mtime (ns), device,
// inode, absolute path. An entry is used only when all of these still match the file; a file
// modified within the last kRacySeconds is hashed but not remembered (its mtime may not change on
// the next write within the same clock tick). The file is read once, rewritten atomically after
// each new hash, and holds at most kMaxEntries lines (the most recent). An unreadable or malformed
// cache file is treated as empty; a cache that cannot be written is only a missed speed-up.
class HashCache {
 public:
  static constexpr int kRacySeconds = 2;
  static constexpr size_t kMaxEntries = 4096;

  // `file` empty: nothing is remembered.
  explicit HashCache(std::filesystem::path file);

  // The process's cache: $DIFFBENCH_HASH_CACHE when set ("off" or empty: none), else
  // $XDG_CACHE_HOME/diffbench/file-hashes.tsv, else ~/.cache/diffbench/file-hashes.tsv.
  static HashCache& shared();

  std::string hash(const std::filesystem::path& file);

  const std::filesystem::path& file() const { return file_; }
  size_t hits() const { return hits_; }
  size_t misses() const { return misses_; }

 private:
  std::filesystem::path file_;
  std::mutex mutex_;
  size_t hits_ = 0, misses_ = 0;
};

}  // namespace diffbench
