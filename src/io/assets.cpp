#include "diffbench/io/assets.hpp"

#include <cstdlib>

#include "diffbench/error.hpp"

#ifndef DIFFBENCH_ASSETS_DIR
#define DIFFBENCH_ASSETS_DIR "assets"
#endif

namespace diffbench {

namespace fs = std::filesystem;

fs::path assets_dir() {
  if (const char* env = std::getenv("DIFFBENCH_ASSETS"); env && *env) return env;
  return DIFFBENCH_ASSETS_DIR;
}

fs::path demo_asset(const std::string& part) {
  const fs::path p = assets_dir() / "demo" / part;
  if (!fs::exists(p))
    throw InputError("the bundled demo has no '" + part + "' (set DIFFBENCH_ASSETS to the folder holding demo/, or "
                     "rebuild the demo models with `diffbench train-demo --out DIR` and copy DIR to assets/demo)",
                     p.string());
  return p;
}

fs::path resolve_demo_alias(const fs::path& value, const std::string& part) {
  if (value != "demo" || fs::exists(value)) return value;
  return demo_asset(part);
}

}  // namespace diffbench
