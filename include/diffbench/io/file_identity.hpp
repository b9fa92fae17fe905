// Whether two files hold the same bytes: same file, or same size and same 64-bit content hash.
#pragma once

#include <filesystem>
#include <string>

namespace diffbench {

// A 64-bit content hash (FNV-1a over 8-byte words, then the tail bytes), hex; reads through mmap.
std::string content_hash(const std::filesystem::path& file);

// True when `a` and `b` are the same file or have the same size and content hash.
bool same_content(const std::filesystem::path& a, const std::filesystem::path& b);

}  // namespace diffbench
