// Prompts that used to take minutes (BPE was quadratic in a word's length) and token ids that a
// text encoder cannot embed (issue 18).
#include <chrono>

#include "diffbench/error.hpp"
#include "diffbench/models/clip_text.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

double seconds_to_encode(const ClipTokenizer& tok, const std::string& text, std::vector<int64_t>* ids) {
  const auto t0 = std::chrono::steady_clock::now();
  *ids = tok.encode(text);
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

TEST(TokenizerLimits, AOneMegabyteWordEncodesInSeconds) {
  const auto dir = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(dir / "vocab.json");
  const auto tok = ClipTokenizer::from_dir(dir);
  std::string word;
  while (word.size() < (1u << 20)) word += "pneumonoultramicroscopic";
  std::vector<int64_t> ids;
  // Minutes before; the bound leaves room for a loaded CI machine.
  EXPECT_LT(seconds_to_encode(tok, word, &ids), 30.0);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), tok.bos_id());
  EXPECT_EQ(ids.back(), tok.eos_id());
  // Many words: encoding stops at the 77-token budget instead of tokenising the rest.
  std::string words;
  while (words.size() < (8u << 20)) words += "a red cube on a blue table ";
  EXPECT_LT(seconds_to_encode(tok, words, &ids), 30.0);
  EXPECT_EQ(ids, tok.encode(words.substr(0, 2000)));
}

TEST(TokenizerLimits, IdsBeyondTheTextEncodersVocabularyAreInputErrors) {
  const at::Tensor ids = at::tensor({49406, 320, 49407}, at::kLong).view({1, 3});
  EXPECT_NO_THROW(check_token_ids(ids, 49408, "text_encoder/config.json"));
  try {
    check_token_ids(ids, 1000, "text_encoder/config.json");
    ADD_FAILURE() << "no error";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("49407"), std::string::npos) << e.what();
    EXPECT_NE(std::string(e.what()).find("text_encoder/config.json"), std::string::npos) << e.what();
  }
  EXPECT_THROW(check_token_ids(at::tensor({-1}, at::kLong), 10, "x"), InputError);
}
