// Content hashes: XXH3-64 equal to xxHash's own command (`xxhsum -H3`) up to a chunk, the chunks'
// hashes hashed again beyond, and the hash cache that spares rehashing a file whose path, device,
// inode, size and mtime are unchanged.
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <vector>

#include <xxhash.h>

#include "diffbench/error.hpp"
#include "diffbench/io/file_identity.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

void write(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// 100,003 bytes (i * 31 + 7) mod 256: longer than XXH3's 240-byte short-input path.
std::string pattern() {
  std::string s(100003, '\0');
  for (size_t i = 0; i < s.size(); ++i) s[i] = static_cast<char>((i * 31 + 7) % 256);
  return s;
}

// A file that is not "racy": its mtime lies an hour (plus `offset_s`) in the past.
void age(const fs::path& p, int offset_s = 0) {
  fs::last_write_time(p, fs::file_time_type::clock::now() - std::chrono::hours(1) + std::chrono::seconds(offset_s));
}

class FileIdentity : public ::testing::Test {
 protected:
  void SetUp() override { dir_ = test::temp_dir("file-identity"); }
  void TearDown() override { fs::remove_all(dir_); }
  fs::path dir_;
};

}  // namespace

// A file longer than a chunk: XXH3-64, seeded with the file's size, of its chunks' XXH3-64 values
// (little-endian, in order), made here from the bytes by the library's one-shot functions.
std::string chunked_reference(const std::string& bytes, size_t chunk) {
  std::string sums;
  for (size_t at = 0; at < bytes.size(); at += chunk) {
    const uint64_t c = XXH3_64bits(bytes.data() + at, std::min(chunk, bytes.size() - at));
    for (int k = 0; k < 8; ++k) sums.push_back(static_cast<char>((c >> (8 * k)) & 0xff));
  }
  char buf[17];
  std::snprintf(buf, sizeof buf, "%016llx",
                static_cast<unsigned long long>(XXH3_64bits_withSeed(sums.data(), sums.size(), bytes.size())));
  return buf;
}

// Expected values printed by xxhsum 0.8.1 (Debian package xxhash): `xxhsum -H3 FILE` on the same bytes.
TEST_F(FileIdentity, HashIsXxh3OfTheBytes) {
  write(dir_ / "empty", "");
  write(dir_ / "abc", "abc");
  write(dir_ / "pattern", pattern());
  EXPECT_EQ(content_hash_uncached(dir_ / "empty"), "2d06800538d394c2");
  EXPECT_EQ(content_hash_uncached(dir_ / "abc"), "78af5f94892f3950");
  EXPECT_EQ(content_hash_uncached(dir_ / "pattern"), "e0950e66cf107fe8");
  // Up to one chunk, whatever the threads: the bytes' XXH3 as above.
  EXPECT_EQ(content_hash_uncached(dir_ / "pattern", 100003, 4), "e0950e66cf107fe8");
  EXPECT_EQ(content_hash_uncached(dir_ / "abc", 3, 1), "78af5f94892f3950");
  EXPECT_EQ(content_hash_uncached(dir_ / "empty", 1, 1), "2d06800538d394c2");
  HashCache cache(dir_ / "hashes.tsv");
  EXPECT_EQ(cache.hash(dir_ / "pattern"), "e0950e66cf107fe8");
  EXPECT_THROW(content_hash_uncached(dir_ / "missing"), InputError);
  EXPECT_THROW(cache.hash(dir_), InputError);  // a folder
}

// Longer than a chunk: the chunks' hashes hashed again, the same on any number of threads, and
// another value than the whole file's XXH3 (a file of one more byte, or its chunks reordered, differs).
TEST_F(FileIdentity, LongFileIsHashedByChunksOnSeveralThreads) {
  const std::string bytes = pattern();
  write(dir_ / "pattern", bytes);
  for (size_t chunk : {size_t{240}, size_t{4096}, size_t{100003 / 7}, size_t{100002}}) {
    const std::string expected = chunked_reference(bytes, chunk);
    for (unsigned threads : {1u, 3u, 16u, 0u})
      EXPECT_EQ(content_hash_uncached(dir_ / "pattern", chunk, threads), expected) << chunk << " " << threads;
    EXPECT_NE(expected, "e0950e66cf107fe8");
  }
  // (The pattern repeats every 256 bytes: chunks of 4,000 bytes differ.)
  const std::string swapped = bytes.substr(4000, 4000) + bytes.substr(0, 4000) + bytes.substr(8000);
  write(dir_ / "swapped", swapped);
  EXPECT_NE(content_hash_uncached(dir_ / "swapped", 4000), content_hash_uncached(dir_ / "pattern", 4000));
  write(dir_ / "longer", bytes + "x");
  EXPECT_NE(content_hash_uncached(dir_ / "longer", 4000), content_hash_uncached(dir_ / "pattern", 4000));
  // The default chunk: 64 MiB; a file of one byte more than that is chunked.
  std::string big(kHashChunkBytes + 1, '\0');
  for (size_t i = 0; i < big.size(); i += 4093) big[i] = static_cast<char>(i % 251);
  write(dir_ / "big", big);
  EXPECT_EQ(content_hash_uncached(dir_ / "big"), chunked_reference(big, kHashChunkBytes));
  big.pop_back();
  write(dir_ / "big", big);
  char whole[17];
  std::snprintf(whole, sizeof whole, "%016llx", static_cast<unsigned long long>(XXH3_64bits(big.data(), big.size())));
  EXPECT_EQ(content_hash_uncached(dir_ / "big"), whole);
}

TEST_F(FileIdentity, CacheHitsUntilSizeOrMtimeChanges) {
  const fs::path f = dir_ / "weights.bin", db = dir_ / "cache" / "hashes.tsv";
  write(f, pattern());
  age(f);
  {
    HashCache cache(db);
    EXPECT_EQ(cache.hash(f), "e0950e66cf107fe8");
    EXPECT_EQ(cache.misses(), 1u);
    EXPECT_EQ(cache.hash(f), "e0950e66cf107fe8");
    EXPECT_EQ(cache.hits(), 1u);
  }
  // Another process (a fresh cache object) finds it in the file. To show the bytes are not read
  // again, the remembered hash is replaced by a made-up one: a hit returns that.
  std::ifstream in(db);
  std::string text((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  ASSERT_EQ(text.rfind("2:e0950e66cf107fe8\t", 0), 0u) << text;
  write(db, "2:00000000000000aa" + text.substr(18));
  {
    HashCache cache(db);
    EXPECT_EQ(cache.hash(f), "00000000000000aa");
    EXPECT_EQ(cache.hits(), 1u);
  }
  // Same size, new bytes and a new mtime: a miss, the true hash.
  write(f, "abc" + pattern().substr(3, 100000));
  age(f, 10);
  {
    HashCache cache(db);
    EXPECT_EQ(cache.hash(f), content_hash_uncached(f));
    EXPECT_NE(cache.hash(f), "00000000000000aa");
    EXPECT_EQ(cache.misses(), 1u);
  }
  // Another size, mtime set back to what the cache held: still a miss (the size differs).
  write(f, "abc");
  age(f, 10);
  {
    HashCache cache(db);
    EXPECT_EQ(cache.hash(f), "78af5f94892f3950");
    EXPECT_EQ(cache.misses(), 1u);
    EXPECT_EQ(cache.hash(f), "78af5f94892f3950");
    EXPECT_EQ(cache.hits(), 1u);
  }
}

// A file written just now may be written again within the same mtime tick: hashed, not remembered.
TEST_F(FileIdentity, RecentFileIsNotRemembered) {
  const fs::path f = dir_ / "fresh.bin";
  write(f, "abc");
  HashCache cache(dir_ / "hashes.tsv");
  EXPECT_EQ(cache.hash(f), "78af5f94892f3950");
  EXPECT_EQ(cache.hash(f), "78af5f94892f3950");
  EXPECT_EQ(cache.misses(), 2u);
  EXPECT_EQ(cache.hits(), 0u);
}

TEST_F(FileIdentity, MalformedCacheFileIsIgnored) {
  const fs::path f = dir_ / "w.bin", db = dir_ / "hashes.tsv";
  write(f, "abc");
  age(f);
  // Not a cache, and a line of an earlier version's whole-file hash (16 digits without "2:") for this
  // very file, which would be a wrong hit.
  struct stat st {};
  ::stat(f.c_str(), &st);
  write(db, "not a cache\n\x01\x02 zz\n00000000000000aa\t3\t" +
                std::to_string(static_cast<int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec) + "\t" +
                std::to_string(st.st_dev) + "\t" + std::to_string(st.st_ino) + "\t" +
                fs::absolute(f).lexically_normal().string() + "\n");
  HashCache cache(db);
  EXPECT_EQ(cache.hash(f), "78af5f94892f3950");
  EXPECT_EQ(cache.hash(f), "78af5f94892f3950");
  EXPECT_EQ(cache.hits(), 1u);
}

TEST_F(FileIdentity, SameContent) {
  write(dir_ / "a", pattern());
  write(dir_ / "b", pattern());
  write(dir_ / "c", "abc" + pattern().substr(3));
  EXPECT_TRUE(same_content(dir_ / "a", dir_ / "b"));
  EXPECT_TRUE(same_content(dir_ / "a", dir_ / "a"));
  EXPECT_FALSE(same_content(dir_ / "a", dir_ / "c"));
  EXPECT_THROW(same_content(dir_ / "a", dir_ / "missing"), InputError);
}

// Several files hashed at once: each file's own hash in the caller's order, every new one remembered,
// and a missing file's error thrown once the others are hashed.
TEST_F(FileIdentity, ContentHashesOfManyFilesAtOnce) {
  std::vector<fs::path> files;
  std::vector<std::string> expected;
  for (int i = 0; i < 9; ++i) {
    const fs::path f = dir_ / ("f" + std::to_string(i));
    write(f, i % 3 == 0 ? "abc" : pattern().substr(static_cast<size_t>(i) * 977));
    age(f);
    files.push_back(f);
    expected.push_back(content_hash_uncached(f));
  }
  EXPECT_EQ(expected[0], "78af5f94892f3950");
  const fs::path db = dir_ / "hashes.tsv";
  {
    HashCache cache(db);
    EXPECT_EQ(content_hashes(files, cache), expected);
    EXPECT_EQ(cache.misses(), files.size());
  }
  {
    HashCache cache(db);  // another process: all nine were written to the file
    EXPECT_EQ(content_hashes(files, cache), expected);
    EXPECT_EQ(cache.hits(), files.size());
    EXPECT_EQ(cache.misses(), 0u);
  }
  files.insert(files.begin() + 4, dir_ / "missing");
  HashCache cache(dir_ / "other.tsv");
  try {
    content_hashes(files, cache);
    ADD_FAILURE() << "no error for a missing file";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("missing"), std::string::npos) << e.what();
  }
  EXPECT_EQ(cache.misses(), files.size() - 1);
  EXPECT_TRUE(content_hashes({}, cache).empty());
}
