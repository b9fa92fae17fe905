// Unicode text handling for the CLIP tokenizers: UTF-8, NFC, character classes, lower-casing,
// the CLIP pre-tokenizer split and open_clip's cleaning steps. Character properties come from utf8proc.
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace diffbench::tokenizer_detail {

// Decodes UTF-8; throws InputError(where) on malformed input (overlong forms, surrogates included).
std::u32string decode_utf8(std::string_view text, const std::string& where);
void append_utf8(std::string& out, char32_t c);
std::string encode_utf8(std::u32string_view text);

// Canonical composition (NFC).
std::u32string nfc(std::u32string_view text);

bool is_letter(char32_t c);       // \p{L}
bool is_number(char32_t c);       // \p{N}
bool is_white_space(char32_t c);  // Unicode White_Space: regex \s in tokenizers (Oniguruma)
bool is_python_space(char32_t c);  // Python str.isspace(): White_Space plus U+001C..U+001F

// Whitespace runs (is_white_space) -> one U+0020; nothing stripped.
std::u32string collapse_white_space(std::u32string_view text);
// Python " ".join(text.split()): runs of is_python_space -> one space, both ends stripped.
std::u32string python_split_join(std::u32string_view text);

// Per-character full lower-case mapping (Rust char::to_lowercase, the tokenizers Lowercase normalizer).
std::u32string lower_per_char(std::u32string_view text);
// Python str.lower(): the per-character mapping plus the final-sigma rule.
std::u32string lower_python(std::u32string_view text);

// A piece of the pre-tokenized text: [begin, end) code-point offsets; `special` >= 0 when the piece
// is the special literal of that index.
struct Piece {
  size_t begin;
  size_t end;
  int special;
};
// The CLIP split regex  <special literals>|'s|'t|'re|'ve|'m|'ll|'d|[\p{L}]+|[\p{N}]|[^\s\p{L}\p{N}]+
// over `text`; characters matching none (whitespace) are dropped. `space` decides \s.
std::vector<Piece> clip_split(std::u32string_view text, const std::vector<std::u32string>& specials,
                              bool (*space)(char32_t));

// open_clip's text cleaning before lower-casing: ftfy-lite, html.unescape twice, whitespace.
// ftfy.fix_text is approximated by its character-level fixes (C1 controls as Windows-1252, Latin
// ligatures, full-width forms, curly quotes, terminal escapes, control characters, NFC); its
// mojibake repair and its own HTML pass are not reproduced.
std::u32string ftfy_lite(std::u32string_view text);
// Python's html.unescape (HTML5 rules: numeric references, named references with and without ';').
std::u32string html_unescape(std::u32string_view text);

}  // namespace diffbench::tokenizer_detail
