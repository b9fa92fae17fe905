// libFuzzer target: the prompt-file readers (.txt, .jsonl, coco:, parti:) on arbitrary bytes.
// Any exception but InputError is a bug.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <filesystem>
#include <fstream>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/io/prompts.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const std::filesystem::path dir = [] {
    auto d = std::filesystem::temp_directory_path() / ("diffbench-fuzz-prompts-" + std::to_string(::getpid()));
    std::filesystem::create_directories(d);
    return d;
  }();
  for (const char* kind : {"txt", "jsonl", "coco", "parti"}) {
    const std::string ext = std::string(kind) == "coco" ? "json" : std::string(kind) == "parti" ? "tsv" : kind;
    const auto file = dir / ("p." + ext);
    std::ofstream(file, std::ios::binary).write(reinterpret_cast<const char*>(data), static_cast<std::streamsize>(size));
    const std::string spec = ext == kind ? file.string() : std::string(kind) + ":" + file.string();
    for (size_t n : {size_t(0), size_t(3)}) {
      try {
        const auto set = diffbench::load_prompts(spec, n);
        for (const auto& p : set.prompts)
          if (p.find('\0') != std::string::npos) __builtin_trap();  // must have been rejected
      } catch (const diffbench::InputError&) {
      }
    }
  }
  return 0;
}
