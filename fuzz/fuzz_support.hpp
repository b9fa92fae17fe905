// What the libFuzzer targets share: a scratch folder of this process for the files an input becomes
// (the readers under test take paths), and a check that stops the run with a message.
#pragma once

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <string>

namespace diffbench::fuzz {

inline const std::filesystem::path& scratch_dir() {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("diffbench-fuzz-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  return dir;
}

// Writes `size` bytes to scratch_dir()/name and returns the path.
inline std::filesystem::path write_scratch(const std::string& name, const void* data, size_t size) {
  const auto file = scratch_dir() / name;
  std::ofstream(file, std::ios::binary | std::ios::trunc)
      .write(static_cast<const char*>(data), static_cast<std::streamsize>(size));
  return file;
}

// A property every accepted input must have; libFuzzer saves the input that broke it.
inline void check(bool ok, const char* what) {
  if (ok) return;
  std::fprintf(stderr, "fuzz property violated: %s\n", what);
  std::abort();
}

}  // namespace diffbench::fuzz
