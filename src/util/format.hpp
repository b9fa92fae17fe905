// Numbers as people read them in messages and reports (JSON keeps full precision).
#pragma once

#include <cstdio>
#include <string>

namespace diffbench {

// `v` with `digits` digits after the point, as printf's %.*f writes it.
inline std::string fixed(double v, int digits) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace diffbench
