// Files bundled with diffbench (assets/ in the source tree), such as the demo models.
#pragma once

#include <filesystem>
#include <string>

namespace diffbench {

// $DIFFBENCH_ASSETS when set and non-empty, else the source tree's assets/ folder (compiled in).
std::filesystem::path assets_dir();

// The bundled demo's parts, named by the alias "demo" in specs and options: "sd" (diffusers
// folder), "clip" (CLIP scorer folder), "prompts.txt" (the demo prompt set). Throws InputError,
// with a hint to run `diffbench train-demo`, when the part is missing.
std::filesystem::path demo_asset(const std::string& part);

// `value` itself, or demo_asset(part) when `value` is exactly "demo" and no file or folder of that
// name exists in the working directory.
std::filesystem::path resolve_demo_alias(const std::filesystem::path& value, const std::string& part);

}  // namespace diffbench
