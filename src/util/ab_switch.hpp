// The fast paths' A/B switches. Each is on unless its environment variable is "0", so that one build
// can time a fast path against the plain one (docs/performance.md, "A/B switches", lists them).
#pragma once

#include <cstdlib>
#include <cstring>

namespace diffbench {

inline bool ab_switch_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}

}  // namespace diffbench
