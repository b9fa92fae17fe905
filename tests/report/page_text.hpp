// Counting in a page's text, for the report pages' tests.
#pragma once

#include <cstddef>
#include <string>

namespace diffbench::test {

// How many times `what` occurs in `text` (overlapping occurrences counted).
inline size_t count(const std::string& text, const std::string& what) {
  size_t n = 0;
  for (size_t p = text.find(what); p != std::string::npos; p = text.find(what, p + 1)) ++n;
  return n;
}

}  // namespace diffbench::test
