// The fast paths' A/B switches. Each is on unless its environment variable is "0", so that one build
// can time a fast path against the plain one; one not yet timed on a GPU is on only when its variable
// is "1" (docs/performance.md, "A/B switches", lists them).
#pragma once

#include <cstdlib>
#include <cstring>

namespace diffbench {

inline bool ab_switch_on(const char* name) {
  const char* v = std::getenv(name);
  return !(v && std::strcmp(v, "0") == 0);
}

// A fast path not yet on by default: on only when its variable is "1".
inline bool opt_in_switch_on(const char* name) {
  const char* v = std::getenv(name);
  return v && std::strcmp(v, "1") == 0;
}

}  // namespace diffbench
