// libFuzzer target: the prompt-file readers (.txt, .jsonl, coco:, parti:) on arbitrary bytes.
// Any exception but InputError is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "diffbench/error.hpp"
#include "diffbench/io/prompts.hpp"
#include "fuzz_support.hpp"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  for (const char* kind : {"txt", "jsonl", "coco", "parti"}) {
    const std::string ext = std::string(kind) == "coco" ? "json" : std::string(kind) == "parti" ? "tsv" : kind;
    const auto file = diffbench::fuzz::write_scratch("p." + ext, data, size);
    const std::string spec = ext == kind ? file.string() : std::string(kind) + ":" + file.string();
    for (size_t n : {size_t(0), size_t(3)}) {
      try {
        const auto set = diffbench::load_prompts(spec, n);
        for (const auto& p : set.prompts)
          diffbench::fuzz::check(p.find('\0') == std::string::npos, "a prompt with a NUL byte was accepted");
      } catch (const diffbench::InputError&) {
      }
    }
  }
  return 0;
}
