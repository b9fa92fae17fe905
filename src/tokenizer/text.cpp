#include "tokenizer/text.hpp"

#include <cstdlib>
#include <cstring>

#include <utf8proc.h>

#include "diffbench/error.hpp"
#include "tokenizer/html_entities.hpp"

namespace diffbench::tokenizer_detail {

// UTF-8 through utf8proc: utf8proc_iterate rejects overlong forms, surrogates and code points past
// U+10FFFF, as the reference tokenizers' decoders do.
std::u32string decode_utf8(std::string_view text, const std::string& where) {
  std::u32string out;
  out.reserve(text.size());
  const auto* s = reinterpret_cast<const utf8proc_uint8_t*>(text.data());
  const auto n = static_cast<utf8proc_ssize_t>(text.size());
  utf8proc_ssize_t i = 0;
  while (i < n) {
    utf8proc_int32_t c = 0;
    const utf8proc_ssize_t len = utf8proc_iterate(s + i, n - i, &c);
    if (len <= 0 || c < 0) throw InputError("invalid UTF-8 at byte " + std::to_string(i), where);
    out.push_back(static_cast<char32_t>(c));
    i += len;
  }
  return out;
}

void append_utf8(std::string& out, char32_t c) {
  utf8proc_uint8_t buf[4];
  const utf8proc_ssize_t len = utf8proc_encode_char(static_cast<utf8proc_int32_t>(c), buf);
  out.append(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
}

std::string encode_utf8(std::u32string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char32_t c : text) append_utf8(out, c);
  return out;
}

namespace {

// utf8proc_map over a valid code-point string.
std::u32string utf8proc_transform(std::u32string_view text, int options) {
  const std::string utf8 = encode_utf8(text);
  utf8proc_uint8_t* mapped = nullptr;
  const utf8proc_ssize_t n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(utf8.data()),
                                          static_cast<utf8proc_ssize_t>(utf8.size()), &mapped,
                                          static_cast<utf8proc_option_t>(options));
  if (n < 0) throw InputError(std::string("Unicode normalisation failed: ") + utf8proc_errmsg(n), "prompt");
  std::string result(reinterpret_cast<const char*>(mapped), static_cast<size_t>(n));
  std::free(mapped);
  return decode_utf8(result, "prompt");
}

utf8proc_category_t category(char32_t c) { return utf8proc_category(static_cast<utf8proc_int32_t>(c)); }

// Unicode's Cased property (Python's str.lower uses it for the final sigma): Lu, Ll, Lt, characters
// with a case mapping, and the Other_Lowercase / Other_Uppercase code points that have none.
bool is_cased(char32_t c) {
  static const std::pair<char32_t, char32_t> kOtherCased[] = {
      {0xAA, 0xAA},         {0xBA, 0xBA},         {0x2B0, 0x2B8},       {0x2C0, 0x2C1},       {0x2E0, 0x2E4},
      {0x37A, 0x37A},       {0x1D2C, 0x1D6A},     {0x1D78, 0x1D78},     {0x1D9B, 0x1DBF},     {0x2071, 0x2071},
      {0x207F, 0x207F},     {0x2090, 0x209C},     {0x2C7C, 0x2C7D},     {0xA69C, 0xA69D},     {0xA770, 0xA770},
      {0xA7F8, 0xA7F9},     {0xAB5C, 0xAB5F},     {0x10780, 0x10780},   {0x10783, 0x10785},   {0x10787, 0x107B0},
      {0x107B2, 0x107BA},   {0x1F130, 0x1F149},   {0x1F150, 0x1F169},   {0x1F170, 0x1F189}};
  const auto cat = category(c);
  if (cat == UTF8PROC_CATEGORY_LU || cat == UTF8PROC_CATEGORY_LL || cat == UTF8PROC_CATEGORY_LT) return true;
  const auto cp = static_cast<utf8proc_int32_t>(c);
  if (utf8proc_tolower(cp) != cp || utf8proc_toupper(cp) != cp) return true;
  for (const auto& [lo, hi] : kOtherCased)
    if (c >= lo && c <= hi) return true;
  return false;
}

// Unicode Case_Ignorable: Mn, Me, Cf, Lm, Sk, and the Word_Break MidLetter / MidNumLet / Single_Quote set.
bool is_case_ignorable(char32_t c) {
  switch (category(c)) {
    case UTF8PROC_CATEGORY_MN:
    case UTF8PROC_CATEGORY_ME:
    case UTF8PROC_CATEGORY_CF:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_SK:
      return true;
    default:
      break;
  }
  switch (c) {
    case 0x27: case 0x2E: case 0x3A: case 0xB7: case 0x387: case 0x55F: case 0x5F4: case 0x2018:
    case 0x2019: case 0x2024: case 0x2027: case 0xFE13: case 0xFE52: case 0xFE55: case 0xFF07:
    case 0xFF0E: case 0xFF1A:
      return true;
    default:
      return false;
  }
}

void append_lower(std::u32string& out, char32_t c) {
  if (c < 0x80) {
    out.push_back(c >= 'A' && c <= 'Z' ? c + 32 : c);
  } else if (c == 0x130) {  // the one unconditional multi-character lower-case mapping
    out.push_back(U'i');
    out.push_back(0x307);
  } else {
    out.push_back(static_cast<char32_t>(utf8proc_tolower(static_cast<utf8proc_int32_t>(c))));
  }
}

}  // namespace

std::u32string nfc(std::u32string_view text) {
  // Code points below U+0300 are stable under NFC and compose with nothing before them.
  bool simple = true;
  for (char32_t c : text) simple = simple && c < 0x300;
  if (simple) return std::u32string(text);
  return utf8proc_transform(text, UTF8PROC_STABLE | UTF8PROC_COMPOSE);
}

bool is_letter(char32_t c) {
  if (c < 0x80) return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
  switch (category(c)) {
    case UTF8PROC_CATEGORY_LU:
    case UTF8PROC_CATEGORY_LL:
    case UTF8PROC_CATEGORY_LT:
    case UTF8PROC_CATEGORY_LM:
    case UTF8PROC_CATEGORY_LO:
      return true;
    default:
      return false;
  }
}

bool is_number(char32_t c) {
  if (c < 0x80) return c >= '0' && c <= '9';
  const auto cat = category(c);
  return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

bool is_white_space(char32_t c) {
  if (c <= 0x20) return c == 0x20 || (c >= 0x09 && c <= 0x0D);
  switch (c) {
    case 0x85: case 0xA0: case 0x1680: case 0x2028: case 0x2029: case 0x202F: case 0x205F: case 0x3000:
      return true;
    default:
      return c >= 0x2000 && c <= 0x200A;
  }
}

bool is_python_space(char32_t c) { return is_white_space(c) || (c >= 0x1C && c <= 0x1F); }

std::u32string collapse_white_space(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    if (!is_white_space(text[i])) {
      out.push_back(text[i++]);
      continue;
    }
    while (i < text.size() && is_white_space(text[i])) ++i;
    out.push_back(U' ');
  }
  return out;
}

std::u32string python_split_join(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    while (i < text.size() && is_python_space(text[i])) ++i;
    if (i == text.size()) break;
    if (!out.empty()) out.push_back(U' ');
    while (i < text.size() && !is_python_space(text[i])) out.push_back(text[i++]);
  }
  return out;
}

std::u32string lower_per_char(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (char32_t c : text) append_lower(out, c);
  return out;
}

std::u32string lower_python(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  const size_t n = text.size();
  for (size_t i = 0; i < n; ++i) {
    if (text[i] != 0x3A3) {
      append_lower(out, text[i]);
      continue;
    }
    // Final_Sigma: cased, case-ignorable*, SIGMA, not followed by case-ignorable* cased.
    size_t j = i;
    while (j > 0 && is_case_ignorable(text[j - 1])) --j;
    bool final_sigma = j > 0 && is_cased(text[j - 1]);
    if (final_sigma) {
      size_t k = i + 1;
      while (k < n && is_case_ignorable(text[k])) ++k;
      final_sigma = k == n || !is_cased(text[k]);
    }
    out.push_back(final_sigma ? 0x3C2 : 0x3C3);
  }
  return out;
}

std::vector<Piece> clip_split(std::u32string_view text, const std::vector<std::u32string>& specials,
                              bool (*space)(char32_t)) {
  static const std::u32string_view kContractions[] = {U"'s", U"'t", U"'re", U"'ve", U"'m", U"'ll", U"'d"};
  auto is_punct = [&](char32_t c) { return !space(c) && !is_letter(c) && !is_number(c); };
  std::vector<Piece> pieces;
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const std::u32string_view rest = text.substr(i);
    int special = -1;
    for (size_t s = 0; s < specials.size() && special < 0; ++s)
      if (rest.substr(0, specials[s].size()) == specials[s]) special = static_cast<int>(s);
    if (special >= 0) {
      pieces.push_back({i, i + specials[special].size(), special});
      i += specials[special].size();
      continue;
    }
    size_t len = 0;
    if (text[i] == U'\'') {
      for (auto c : kContractions)
        if (rest.substr(0, c.size()) == c) {
          len = c.size();
          break;
        }
    }
    if (len == 0) {
      if (is_letter(text[i])) {
        while (i + len < n && is_letter(text[i + len])) ++len;
      } else if (is_number(text[i])) {
        len = 1;
      } else if (is_punct(text[i])) {
        while (i + len < n && is_punct(text[i + len])) ++len;
      }
    }
    if (len == 0) {  // whitespace: matched by no alternative, dropped
      ++i;
      continue;
    }
    pieces.push_back({i, i + len, -1});
    i += len;
  }
  return pieces;
}

namespace {

// Windows-1252 for 0x80..0x9F; the five undefined bytes stay as they are.
char32_t cp1252_c1(char32_t c) {
  static const char32_t kTable[32] = {
      0x20AC, 0x81,   0x201A, 0x192,  0x201E, 0x2026, 0x2020, 0x2021, 0x2C6, 0x2030, 0x160,
      0x2039, 0x152,  0x8D,   0x17D,  0x8F,   0x90,   0x2018, 0x2019, 0x201C, 0x201D, 0x2022,
      0x2013, 0x2014, 0x2DC,  0x2122, 0x161,  0x203A, 0x153,  0x9D,   0x17E,  0x178};
  return kTable[c - 0x80];
}

const char* latin_ligature(char32_t c) {
  switch (c) {
    case 0x132: return "IJ";
    case 0x133: return "ij";
    case 0x149: return "\u02BCn";
    case 0x1F1: return "DZ";
    case 0x1F2: return "Dz";
    case 0x1F3: return "dz";
    case 0x1C4: return "D\u017D";
    case 0x1C5: return "D\u017E";
    case 0x1C6: return "d\u017E";
    case 0x1C7: return "LJ";
    case 0x1C8: return "Lj";
    case 0x1C9: return "lj";
    case 0x1CA: return "NJ";
    case 0x1CB: return "Nj";
    case 0x1CC: return "nj";
    case 0xFB00: return "ff";
    case 0xFB01: return "fi";
    case 0xFB02: return "fl";
    case 0xFB03: return "ffi";
    case 0xFB04: return "ffl";
    case 0xFB05: return "\u017Ft";
    case 0xFB06: return "st";
    default: return nullptr;
  }
}

bool is_ftfy_control(char32_t c) {
  return c <= 0x08 || c == 0x0B || (c >= 0x0E && c <= 0x1F) || c == 0x7F || (c >= 0x206A && c <= 0x206F) ||
         c == 0xFEFF || (c >= 0xFFF9 && c <= 0xFFFC);
}

bool is_ascii_digit(char32_t c) { return c >= '0' && c <= '9'; }
bool is_ascii_alpha(char32_t c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z'); }
int hex_value(char32_t c) {
  if (is_ascii_digit(c)) return static_cast<int>(c - '0');
  if (c >= 'a' && c <= 'f') return static_cast<int>(c - 'a' + 10);
  if (c >= 'A' && c <= 'F') return static_cast<int>(c - 'A' + 10);
  return -1;
}

// Python html._replace_charref for a numeric reference.
void append_numeric_reference(std::u32string& out, uint64_t num) {
  if (num == 0) {
    out.push_back(0xFFFD);
  } else if (num == 0x0D) {
    out.push_back(U'\r');
  } else if (num >= 0x80 && num <= 0x9F) {
    out.push_back(cp1252_c1(static_cast<char32_t>(num)));
  } else if ((num >= 0xD800 && num <= 0xDFFF) || num > 0x10FFFF) {
    out.push_back(0xFFFD);
  } else {
    const auto c = static_cast<char32_t>(num);
    const bool invalid = (c >= 0x1 && c <= 0x8) || (c >= 0xE && c <= 0x1F) || (c >= 0x7F && c <= 0x9F) ||
                         (c >= 0xFDD0 && c <= 0xFDEF) || c == 0xB || (c & 0xFFFE) == 0xFFFE;
    if (!invalid) out.push_back(c);
  }
}

void append_entity(std::u32string& out, const HtmlEntity& e) {
  out.push_back(e.first);
  if (e.second != 0) out.push_back(e.second);
}

}  // namespace

std::u32string ftfy_lite(std::u32string_view text) {
  std::u32string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size(); ++i) {
    char32_t c = text[i];
    if (c >= 0x80 && c <= 0x9F) c = cp1252_c1(c);
    if (const char* lig = latin_ligature(c)) {
      out += decode_utf8(lig, "ftfy ligature table");
      continue;
    }
    if (c == 0x3000) {
      out.push_back(U' ');
      continue;
    }
    if (c >= 0xFF01 && c <= 0xFFEF) {  // full-width and half-width forms -> their NFKC
      out += utf8proc_transform(std::u32string(1, c), UTF8PROC_STABLE | UTF8PROC_COMPOSE | UTF8PROC_COMPAT);
      continue;
    }
    out.push_back(c);
  }
  // Curly quotes, terminal escapes ESC [ (digits|;)* letter, control characters.
  std::u32string cleaned;
  cleaned.reserve(out.size());
  for (size_t i = 0; i < out.size(); ++i) {
    if (out[i] == 0x2BC || (out[i] >= 0x2018 && out[i] <= 0x201B)) out[i] = U'\'';
    if (out[i] >= 0x201C && out[i] <= 0x201F) out[i] = U'"';
    if (out[i] == 0x1B && i + 1 < out.size() && out[i + 1] == U'[') {
      size_t j = i + 2;
      while (j < out.size() && (is_ascii_digit(out[j]) || out[j] == U';')) ++j;
      if (j < out.size() && is_ascii_alpha(out[j])) {
        i = j;
        continue;
      }
    }
    if (!is_ftfy_control(out[i])) cleaned.push_back(out[i]);
  }
  return nfc(cleaned);
}

std::u32string html_unescape(std::u32string_view text) {
  if (text.find(U'&') == std::u32string_view::npos) return std::u32string(text);
  std::u32string out;
  out.reserve(text.size());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    if (text[i] != U'&') {
      out.push_back(text[i++]);
      continue;
    }
    size_t j = i + 1;
    if (j < n && text[j] == U'#') {
      // &#[0-9]+;?  or  &#[xX][0-9a-fA-F]+;?
      uint64_t num = 0;
      size_t k = j + 1;
      const bool hex = k < n && (text[k] == U'x' || text[k] == U'X');
      if (hex) ++k;
      const size_t digits_begin = k;
      while (k < n && (hex ? hex_value(text[k]) >= 0 : is_ascii_digit(text[k]))) {
        num = std::min<uint64_t>(num * (hex ? 16 : 10) + static_cast<uint64_t>(hex_value(text[k])), 0x7FFFFFFF);
        ++k;
      }
      if (k == digits_begin) {  // no reference: the '&' stays
        out.push_back(text[i++]);
        continue;
      }
      if (k < n && text[k] == U';') ++k;
      append_numeric_reference(out, num);
      i = k;
      continue;
    }
    // &[^\t\n\f <&#;]{1,32};?
    size_t k = j;
    while (k < n && k - j < 32) {
      const char32_t c = text[k];
      if (c == U'\t' || c == U'\n' || c == U'\f' || c == U' ' || c == U'<' || c == U'&' || c == U'#' || c == U';')
        break;
      ++k;
    }
    if (k == j) {
      out.push_back(text[i++]);
      continue;
    }
    if (k < n && text[k] == U';') ++k;
    const std::u32string_view name = text.substr(j, k - j);
    const std::string name8 = encode_utf8(name);
    if (const HtmlEntity* e = find_html_entity(name8)) {
      append_entity(out, *e);
    } else {
      // The longest prefix (at least 2 characters) that names an entity, followed by the rest.
      bool found = false;
      for (size_t x = name.size() - 1; x > 1 && !found; --x) {
        if (const HtmlEntity* p = find_html_entity(encode_utf8(name.substr(0, x)))) {
          append_entity(out, *p);
          out.append(name.substr(x));
          found = true;
        }
      }
      if (!found) {
        out.push_back(U'&');
        out.append(name);
      }
    }
    i = k;
  }
  return out;
}

}  // namespace diffbench::tokenizer_detail
