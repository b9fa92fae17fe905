// Opening and reading files a user names, without hanging or exhausting memory on odd ones: a
// FIFO, socket, device or folder is refused before anything blocks on it, and sizes are bounded.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>

namespace diffbench {

// Opens `file` read-only (close-on-exec) and checks that it is a regular file; returns the
// descriptor, which the caller closes. The open itself does not block (O_NONBLOCK, cleared after
// the check), so a FIFO is an InputError rather than a hang.
int open_regular_file(const std::filesystem::path& file);

// The bytes of a regular file of at most `max_bytes` (InputError naming the file otherwise).
std::string read_regular_file(const std::filesystem::path& file, uint64_t max_bytes = 256ull << 20);

}  // namespace diffbench
