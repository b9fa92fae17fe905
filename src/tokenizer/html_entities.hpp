// HTML5 named character references, for open_clip's html.unescape step.
#pragma once

#include <string>

namespace diffbench::tokenizer_detail {

struct HtmlEntity {
  const char* name;  // e.g. "amp;" or the legacy "amp"
  char32_t first;
  char32_t second;  // 0 when the reference is one code point
};

// The entity named exactly `name` (its ';' included when present), or nullptr.
const HtmlEntity* find_html_entity(const std::string& name);

}  // namespace diffbench::tokenizer_detail
