// The tokenizer's text steps against Python's behaviour (expected strings printed by CPython 3.11's
// html.unescape / str.lower and open_clip 3.3's _clean_lower with ftfy 6.3).
#include "diffbench/error.hpp"
#include "test_support.hpp"
#include "tokenizer/text.hpp"

using namespace diffbench;
using namespace diffbench::tokenizer_detail;

namespace {

std::u32string u32(const std::string& utf8) { return decode_utf8(utf8, "test"); }
std::string u8(const std::u32string& text) { return encode_utf8(text); }

}  // namespace

TEST(TokenizerText, DecodesUtf8AndRejectsMalformedInput) {
  EXPECT_EQ(u32("a\xc3\xa9\xe6\x9d\xb1\xf0\x9f\x9a\x80"), std::u32string({U'a', 0xE9, 0x6771, 0x1F680}));
  EXPECT_EQ(u8(u32("na\xc3\xafve \xf0\x9f\x94\xa5")), "na\xc3\xafve \xf0\x9f\x94\xa5");
  for (const std::string bad : {"\xff", "a\xc3", "\xc0\xaf", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x80x"}) {
    try {
      decode_utf8(bad, "prompt");
      ADD_FAILURE() << "accepted invalid UTF-8";
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), "prompt");
    }
  }
}

TEST(TokenizerText, HtmlUnescapeMatchesPython) {
  EXPECT_EQ(u8(html_unescape(u32("&amp;amp; &lt;b&gt; &eacute &notit; &#x41;&#65 &#128; &#0; &#xD800; "
                                  "&#99999999999; &#1; &# &#x; &Amp; &ampx &bogus; &;"))),
            "&amp; <b> \u00e9 \u00acit; AA \u20ac \ufffd \ufffd \ufffd  &# &#x; &Amp; &x &bogus; &;");
  EXPECT_EQ(u8(html_unescape(u32("&NotEqualTilde; &fjlig; &AElig &AEli &ab"))), "\u2242\u0338 fj \u00c6 &AEli &ab");
  EXPECT_EQ(u8(html_unescape(u32("no entities"))), "no entities");
}

TEST(TokenizerText, LowerCasing) {
  // Python str.lower: full mapping and the final-sigma rule.
  EXPECT_EQ(u8(lower_python(u32("\u03a3\u0391\u03a3 \u039f\u0394\u039f\u03a3. \u0391\u03a3'\u03a3 \u03a3"))),
            "\u03c3\u03b1\u03c2 \u03bf\u03b4\u03bf\u03c2. \u03b1\u03c3'\u03c2 \u03c3");
  EXPECT_EQ(u8(lower_python(u32("\u039f\u0394\u039f\u03a3\u00aa \u00ba\u03a3"))),  // ª and º are cased
            "\u03bf\u03b4\u03bf\u03c3\u00aa \u00ba\u03c2");
  EXPECT_EQ(u8(lower_python(u32("\u0130STANBUL"))), "i\u0307stanbul");
  EXPECT_EQ(u8(lower_python(u32("\u01c5"))), "\u01c6");
  // tokenizers' Lowercase: per character, no final sigma.
  EXPECT_EQ(u8(lower_per_char(u32("\u039f\u03a3 \u0130"))), "\u03bf\u03c3 i\u0307");
}

TEST(TokenizerText, OpenClipCleaningMatchesPython) {
  auto clean = [](const std::string& s) {
    return u8(lower_python(python_split_join(html_unescape(html_unescape(ftfy_lite(u32(s)))))));
  };
  EXPECT_EQ(clean("don\u2019t \u201cQUOTED\u201d  \ufb01ne \uff21\uff22\u3000x"), "don't \"quoted\" fine ab x");
  EXPECT_EQ(clean("a &amp;amp; b &lt;3"), "a & b <3");
  EXPECT_EQ(clean("\x1b[31mRED\x1b[0m"), "red");
  EXPECT_EQ(clean("\u039f\u0394\u039f\u03a3"), "\u03bf\u03b4\u03bf\u03c2");
  EXPECT_EQ(clean(" \t a\x1c\x1f b \n"), "a b");
}

TEST(TokenizerText, ClipSplit) {
  const std::u32string text = u32("don't <|endoftext|>stop!!' 's 12x \u00e9t\u00e9\u2026");
  std::vector<std::string> pieces;
  for (const Piece& p : clip_split(text, {U"<|startoftext|>", U"<|endoftext|>"}, &is_white_space))
    pieces.push_back(u8(text.substr(p.begin, p.end - p.begin)) + (p.special >= 0 ? "#" : ""));
  EXPECT_EQ(pieces, std::vector<std::string>({"don", "'t", "<|endoftext|>#", "stop", "!!'", "'s", "1", "2", "x",
                                              "\u00e9t\u00e9", "\u2026"}));
}

TEST(TokenizerText, NfcAndWhitespace) {
  EXPECT_EQ(u8(nfc(u32("e\u0301 A\u030a"))), "\u00e9 \u00c5");
  EXPECT_EQ(u8(collapse_white_space(u32(" a\t\n b\u3000\u0085c\x1c"))), " a b c\x1c");
  EXPECT_TRUE(is_python_space(0x1c));
  EXPECT_FALSE(is_white_space(0x1c));
  EXPECT_FALSE(is_white_space(0x200b));
}
