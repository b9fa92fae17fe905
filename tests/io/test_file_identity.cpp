// Content hashes: XXH3-64 equal to xxHash's own command (`xxhsum -H3`), and the hash cache that
// spares rehashing a file whose path, device, inode, size and mtime are unchanged.
#include <fstream>

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

// Expected values printed by xxhsum 0.8.1 (Debian package xxhash): `xxhsum -H3 FILE` on the same bytes.
TEST_F(FileIdentity, HashIsXxh3OfTheBytes) {
  write(dir_ / "empty", "");
  write(dir_ / "abc", "abc");
  write(dir_ / "pattern", pattern());
  EXPECT_EQ(content_hash_uncached(dir_ / "empty"), "2d06800538d394c2");
  EXPECT_EQ(content_hash_uncached(dir_ / "abc"), "78af5f94892f3950");
  EXPECT_EQ(content_hash_uncached(dir_ / "pattern"), "e0950e66cf107fe8");
  HashCache cache(dir_ / "hashes.tsv");
  EXPECT_EQ(cache.hash(dir_ / "pattern"), "e0950e66cf107fe8");
  EXPECT_THROW(content_hash_uncached(dir_ / "missing"), InputError);
  EXPECT_THROW(cache.hash(dir_), InputError);  // a folder
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
  ASSERT_EQ(text.rfind("e0950e66cf107fe8\t", 0), 0u) << text;
  write(db, "00000000000000aa" + text.substr(16));
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
  write(db, "not a cache\n\x01\x02 zz\n");
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
