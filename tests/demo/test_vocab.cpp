// The demo's BPE vocabulary: small, loads in ClipTokenizer, grammar words are whole tokens.
#include "diffbench/demo/scenes.hpp"
#include "diffbench/demo/vocab.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "test_support.hpp"

namespace {

using namespace diffbench;

TEST(DemoVocab, GrammarWordsAreSingleTokens) {
  const auto words = demo::grammar_words();
  const demo::BpeVocab v = demo::build_bpe_vocab(words);
  EXPECT_LT(v.tokens.size(), 1000u);
  EXPECT_EQ(v.tokens[static_cast<size_t>(v.bos_id)], "<|startoftext|>");
  EXPECT_EQ(v.tokens[static_cast<size_t>(v.eos_id)], "<|endoftext|>");
  EXPECT_EQ(v.tokens[0], "!");        // CLIP's byte order: printable ASCII first
  EXPECT_EQ(v.tokens[256], "!</w>");  // then the same symbols ending a word

  const auto dir = test::temp_dir("demo-vocab");
  demo::write_tokenizer_files(v, dir);
  const ClipTokenizer tok = ClipTokenizer::from_dir(dir);
  EXPECT_EQ(tok.vocab_size(), static_cast<int64_t>(v.tokens.size()));
  EXPECT_EQ(tok.bos_id(), v.bos_id);
  EXPECT_EQ(tok.eos_id(), v.eos_id);
  EXPECT_EQ(tok.pad_id(), v.eos_id);
  for (const auto& w : words) {
    const auto ids = tok.tokenize(w);
    ASSERT_EQ(ids.size(), 1u) << w;
    EXPECT_EQ(v.tokens[static_cast<size_t>(ids[0])], w + "</w>");
  }
  // A caption: BOS, one id per word, EOS, then padding with EOS up to 77.
  const std::string caption = "two small red circles on the left of a blue background";
  const auto ids = tok.encode(caption);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids[0], v.bos_id);
  EXPECT_EQ(ids[12], v.eos_id);
  EXPECT_EQ(ids[76], v.eos_id);
  EXPECT_EQ(v.tokens[static_cast<size_t>(ids[4])], "circles</w>");
  // Case and spacing are normalised as CLIP does; other words fall back to byte symbols.
  EXPECT_EQ(tok.encode("Two  SMALL red circles on the LEFT of a blue background"), ids);
  EXPECT_GT(tok.tokenize("zebra!").size(), 1u);
  std::filesystem::remove_all(dir);
}

TEST(DemoVocab, BuildIsDeterministic) {
  const auto a = demo::build_bpe_vocab(demo::grammar_words());
  const auto b = demo::build_bpe_vocab(demo::grammar_words());
  EXPECT_EQ(a.tokens, b.tokens);
  EXPECT_EQ(a.merges, b.merges);
}

}  // namespace
