// Whether two files hold the same bytes: same file, or same size and same 64-bit content hash.
// Hashes are xxHash's XXH3 (64-bit; a file over 64 MiB as the hash of its 64 MiB chunks' hashes, made
// on several threads), remembered per (path, device, inode, size, mtime) in a small cache file so a
// multi-gigabyte checkpoint is hashed once, not on every run.
#pragma once

#include <cstddef>
#include <filesystem>
#include <mutex>
#include <string>
#include <vector>

namespace diffbench {

// Files up to this size hash as XXH3-64 of their bytes; longer ones chunk by chunk (below).
constexpr size_t kHashChunkBytes = size_t{64} << 20;

// The file's content hash as 16 hex digits, read through mmap, without the cache: for a file of up to
// `chunk_bytes` bytes XXH3-64 of its bytes (what `xxhsum -H3` prints); for a longer one, XXH3-64 with
// the file's size as seed of the concatenated little-endian XXH3-64 values of its `chunk_bytes` chunks,
// hashed on up to `threads` threads (0: the hardware's, at most 16). InputError naming the file when
// it is missing or not a regular file.
std::string content_hash_uncached(const std::filesystem::path& file, size_t chunk_bytes = kHashChunkBytes,
                                  unsigned threads = 0);

// content_hash_uncached, remembered in HashCache::shared().
std::string content_hash(const std::filesystem::path& file);

class HashCache;

// content_hash of each file, in the same order, several files at a time (up to half the hardware
// threads, largest file first; a long file's chunks on threads of their own). An error of one file
// (the first in `files`' order) is thrown after all others are hashed.
std::vector<std::string> content_hashes(const std::vector<std::filesystem::path>& files);
std::vector<std::string> content_hashes(const std::vector<std::filesystem::path>& files, HashCache& cache);

// True when `a` and `b` are the same file (same inode: nothing hashed) or have the same size and
// content hash.
bool same_content(const std::filesystem::path& a, const std::filesystem::path& b);

// Content hashes remembered in a text file, one line per file: "2:" and the hash, size, mtime (ns),
// device, inode, absolute path (lines of another format, such as the whole-file hashes of earlier
// versions, are ignored). An entry is used only when all of these still match the file; a file
// modified within the last kRacySeconds is hashed but not remembered (its mtime may not change on
// the next write within the same clock tick). The file is read at each lookup and rewritten
// atomically after each new hash; it holds at most kMaxEntries lines (the most recent). Files are
// hashed outside the object's lock, so several threads may hash at once. An unreadable or malformed
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
