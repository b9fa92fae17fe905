// ClipTokenizer against the reference ids: transformers' CLIPTokenizer (clip_tokenizer_golden.json,
// tiny-sd-reference) and open_clip's SimpleTokenizer (tiny-openclip-reference).
#include <chrono>
#include <fstream>
#include <numeric>
#include <thread>

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/gzip.hpp"
#include "diffbench/io/read_file.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/safetensors.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

struct GoldenCase {
  std::string text;
  std::vector<int64_t> ids;
};

std::vector<GoldenCase> load_golden() {
  std::vector<GoldenCase> cases;
  for (const auto& c : read_json_file(test::fixture("clip_tokenizer_golden.json")))
    cases.push_back({c.at("text").get<std::string>(), c.at("ids").get<std::vector<int64_t>>()});
  return cases;
}

std::string ids_string(const std::vector<int64_t>& ids) {
  std::string s;
  for (int64_t id : ids) s += (s.empty() ? "" : " ") + std::to_string(id);
  return s;
}

// Every golden case exact; the first few failures printed in full.
void expect_golden(const ClipTokenizer& tok) {
  const auto cases = load_golden();
  ASSERT_EQ(cases.size(), 5017u);
  int failures = 0;
  for (const auto& c : cases) {
    const auto got = tok.encode(c.text);
    if (got == c.ids) continue;
    if (++failures <= 5)
      ADD_FAILURE() << "text: '" << c.text << "'\n  expected: " << ids_string(c.ids) << "\n  got:      "
                    << ids_string(got);
  }
  EXPECT_EQ(failures, 0) << failures << " of " << cases.size() << " golden cases differ";
}

std::vector<std::string> json_strings(const fs::path& file, const std::string& key) {
  return read_json_file(file).at(key).get<std::vector<std::string>>();
}

void write_file(const fs::path& file, const std::string& text) { std::ofstream(file, std::ios::binary) << text; }

template <typename F>
void expect_input_error(F&& f, const std::string& where_contains) {
  try {
    f();
    ADD_FAILURE() << "no InputError (expected one about " << where_contains << ")";
  } catch (const InputError& e) {
    EXPECT_NE(e.where().find(where_contains), std::string::npos) << "where = '" << e.where() << "'";
  }
}

}  // namespace

TEST(ClipTokenizer, GoldenFromVocabAndMerges) {
  const auto dir = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const auto tok = ClipTokenizer::from_dir(dir);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.eos_id(), 49407);
  EXPECT_EQ(tok.pad_id(), 49407);
  EXPECT_EQ(tok.max_length(), 77);
  EXPECT_EQ(tok.vocab_size(), 49408);
  expect_golden(tok);
}

// assets/clip-tokenizer holds only open_clip's merges list (bpe_simple_vocab_16e6.txt.gz): the
// vocabulary derived from it gives transformers' ids, and open_clip's on its own reference.
TEST(ClipTokenizer, GoldenFromOpenClipMergesList) {
  const auto dir = assets_dir() / "clip-tokenizer";
  ASSERT_TRUE(fs::exists(dir / "bpe_simple_vocab_16e6.txt.gz"));
  ASSERT_FALSE(fs::exists(dir / "vocab.json"));
  const auto tok = ClipTokenizer::from_dir(dir);
  EXPECT_EQ(tok.vocab_size(), 49408);
  EXPECT_EQ(tok.bos_id(), 49406);
  EXPECT_EQ(tok.pad_id(), 49407);
  expect_golden(tok);

  const auto ref = test::fixture("tiny-openclip-reference.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(ref);
  const at::Tensor expected = SafetensorsFile::open(ref)->get("input_ids").to(at::kLong);
  const at::Tensor got = ClipTokenizer::open_clip(dir).encode_batch(json_strings(test::fixture("tiny-openclip-reference.json"), "texts"));
  EXPECT_TRUE(at::equal(got, expected)) << "got\n" << got << "\nexpected\n" << expected;
}

// What init-random writes for a merges-list-only folder: the Hugging Face files, byte for byte as
// the reference tokenizer folder (made by transformers' layout from the same merges).
TEST(ClipTokenizer, WritesHuggingFaceFilesFromTheMergesList) {
  const auto ref = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(ref / "vocab.json");
  const auto out = test::temp_dir("tok-written");
  write_clip_vocab_files(assets_dir() / "clip-tokenizer", out);
  EXPECT_TRUE(read_regular_file(out / "vocab.json") == read_regular_file(ref / "vocab.json"));
  EXPECT_TRUE(read_regular_file(out / "merges.txt") == read_regular_file(ref / "merges.txt"));
  // and back: the written folder reads as the same tokenizer
  EXPECT_EQ(ClipTokenizer::from_dir(out).encode("a photo of a cat"),
            ClipTokenizer::from_dir(assets_dir() / "clip-tokenizer").encode("a photo of a cat"));
  fs::remove_all(out);
}

TEST(ClipTokenizer, GoldenFromTokenizerJsonAlone) {
  const auto src = test::fixture("tiny-sd/tokenizer/tokenizer.json");
  DIFFBENCH_REQUIRE_FIXTURE(src);
  const auto dir = test::temp_dir("tokjson");
  fs::copy_file(src, dir / "tokenizer.json");
  expect_golden(ClipTokenizer::from_dir(dir));
  expect_golden(ClipTokenizer::from_tokenizer_json(dir / "tokenizer.json"));
  fs::remove_all(dir);
}

TEST(ClipTokenizer, TokenizerJsonWithStringMerges) {
  const auto src = test::fixture("tiny-sd/tokenizer/tokenizer.json");
  DIFFBENCH_REQUIRE_FIXTURE(src);
  auto json = read_json_file(src);
  ASSERT_TRUE(json["model"]["merges"][0].is_array());
  nlohmann::json merges = nlohmann::json::array();
  for (const auto& m : json["model"]["merges"]) merges.push_back(m[0].get<std::string>() + " " + m[1].get<std::string>());
  json["model"]["merges"] = merges;
  const auto dir = test::temp_dir("tokjson-str");
  write_file(dir / "tokenizer.json", json.dump());
  const auto tok = ClipTokenizer::from_tokenizer_json(dir / "tokenizer.json");
  const auto ref = ClipTokenizer::from_dir(test::fixture("tiny-sd/tokenizer"));
  for (const auto& c : load_golden()) ASSERT_EQ(tok.encode(c.text), c.ids) << c.text;
  EXPECT_EQ(ref.encode("A man is in a kitchen making pizzas."), tok.encode("A man is in a kitchen making pizzas."));
  fs::remove_all(dir);
}

TEST(ClipTokenizer, TinySdReferencePrompts) {
  const auto ref = test::fixture("tiny-sd-reference.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(ref);
  const auto prompts = json_strings(test::fixture("tiny-sd-reference.json"), "prompts");
  const at::Tensor expected = SafetensorsFile::open(ref)->get("prompt.input_ids").to(at::kLong);
  const auto tok = ClipTokenizer::from_dir(test::fixture("tiny-sd/tokenizer"));
  const at::Tensor got = tok.encode_batch(prompts);
  ASSERT_EQ(got.sizes(), expected.sizes());
  EXPECT_TRUE(at::equal(got, expected)) << "got\n" << got << "\nexpected\n" << expected;
}

TEST(ClipTokenizer, OpenClipReference) {
  const auto ref = test::fixture("tiny-openclip-reference.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(ref);
  const auto texts = json_strings(test::fixture("tiny-openclip-reference.json"), "texts");
  const at::Tensor expected = SafetensorsFile::open(ref)->get("input_ids").to(at::kLong);
  ASSERT_EQ(expected.sizes(), at::IntArrayRef({6, 77}));
  const auto tok = ClipTokenizer::open_clip(test::fixture("tiny-openclip"));
  EXPECT_TRUE(tok.is_open_clip());
  EXPECT_EQ(tok.pad_id(), 0);
  const at::Tensor got = tok.encode_batch(texts);
  EXPECT_TRUE(at::equal(got, expected)) << "got\n" << got << "\nexpected\n" << expected;
}

TEST(ClipTokenizer, OpenClipTruncationAndPadding) {
  const auto dir = test::fixture("tiny-openclip");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const auto oc = ClipTokenizer::open_clip(dir);
  const auto hf = ClipTokenizer::from_dir(test::fixture("clip-tokenizer"));
  // Same tokens as Hugging Face's on plain text; zeros after EOT instead of <|endoftext|>.
  for (const auto& c : load_golden()) {
    if (c.text.find('&') != std::string::npos) continue;  // open_clip unescapes HTML entities
    const auto ids = oc.encode(c.text);
    ASSERT_EQ(ids.size(), 77u);
    const auto eot = std::find(ids.begin() + 1, ids.end(), oc.eos_id());
    ASSERT_NE(eot, ids.end()) << c.text;
    std::vector<int64_t> as_hf(ids.begin(), eot + 1);
    as_hf.resize(77, hf.pad_id());
    EXPECT_TRUE(std::all_of(eot + 1, ids.end(), [](int64_t id) { return id == 0; })) << c.text;
    EXPECT_EQ(as_hf, c.ids) << c.text;
  }
  // open_clip 3.3 SimpleTokenizer()(text)[0] (its own bpe_simple_vocab_16e6, the same merges).
  auto head = [&](const std::string& text, size_t n) {
    const auto ids = oc.encode(text);
    return std::vector<int64_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(n));
  };
  EXPECT_EQ(head("&amp;amp; html &lt;b&gt;", 10), std::vector<int64_t>({49406, 261, 18231, 283, 321, 285, 49407, 0, 0, 0}));
  EXPECT_EQ(head("\u039f\u0394\u039f\u03a3 don\u2019t \ufb01ne", 12),
            std::vector<int64_t>({49406, 138, 123, 138, 112, 138, 123, 139, 480, 847, 713, 3797}));
  EXPECT_EQ(head("x\u0345b", 5), std::vector<int64_t>({49406, 343, 321, 49407, 0}));  // U+0345 matches nothing
}

TEST(ClipTokenizer, PadTokenFromConfig) {
  // An SD2-style tokenizer pads with "!" (id 0), which also becomes a special token of the raw text.
  const auto src = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(src);
  const auto dir = test::temp_dir("tok-sd2");
  fs::copy_file(src / "vocab.json", dir / "vocab.json");
  fs::copy_file(src / "merges.txt", dir / "merges.txt");
  write_file(dir / "tokenizer_config.json",
             R"({"bos_token": "<|startoftext|>", "eos_token": "<|endoftext|>", "pad_token": "!",)"
             R"( "unk_token": {"content": "<|endoftext|>"}, "model_max_length": 77})");
  const auto tok = ClipTokenizer::from_dir(dir);
  EXPECT_EQ(tok.pad_id(), 0);
  // transformers 5 CLIPTokenizer.from_pretrained(dir)("hello!! world!", padding="max_length", max_length=77)
  std::vector<int64_t> expected = {49406, 3306, 0, 0, 1002, 0, 49407};
  expected.resize(77, 0);
  EXPECT_EQ(tok.encode("hello!! world!"), expected);
  const auto mask = tok.attention_mask(tok.encode("hello!! world!"));
  EXPECT_EQ(std::accumulate(mask.begin(), mask.end(), int64_t{0}), 7);
  EXPECT_EQ(mask[6], 1);
  EXPECT_EQ(mask[7], 0);
  TokenizerOptions opts;
  opts.pad_token = "<|endoftext|>";
  opts.max_length = 10;
  const auto overridden = ClipTokenizer::from_dir(dir, opts);
  EXPECT_EQ(overridden.pad_id(), 49407);
  EXPECT_EQ(overridden.encode("a").size(), 10u);
  fs::remove_all(dir);
}

TEST(ClipTokenizer, AddedTokensFromConfig) {
  const auto src = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(src);
  const auto dir = test::temp_dir("tok-added");
  fs::copy_file(src / "vocab.json", dir / "vocab.json");
  fs::copy_file(src / "merges.txt", dir / "merges.txt");
  write_file(dir / "tokenizer_config.json",
             R"({"added_tokens_decoder": {"49406": {"content": "<|startoftext|>", "special": true},)"
             R"( "49407": {"content": "<|endoftext|>", "special": true},)"
             R"( "49408": {"content": "<sks-dog>", "special": true, "normalized": false}}})");
  const auto tok = ClipTokenizer::from_dir(dir);
  EXPECT_EQ(tok.vocab_size(), 49409);
  // transformers 5 CLIPTokenizer.from_pretrained(dir)("a photo of<sks-dog>Dog").input_ids
  EXPECT_EQ(tok.tokenize("a photo of<sks-dog>Dog"), std::vector<int64_t>({320, 1125, 539, 49408, 1929}));
  fs::remove_all(dir);
}

TEST(ClipTokenizer, SpecialTokensInText) {
  const auto dir = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const auto tok = ClipTokenizer::from_dir(dir);
  // transformers 5 CLIPTokenizer: exact special tokens are split out of the raw text; other spellings
  // go through the GPT-2 byte-level split.
  EXPECT_EQ(tok.tokenize("a<|endoftext|>b"), std::vector<int64_t>({320, 49407, 321}));
  EXPECT_EQ(tok.tokenize("x<|startoftext|>"), std::vector<int64_t>({343, 49406}));
  EXPECT_EQ(tok.tokenize("a<|ENDOFTEXT|>b"), std::vector<int64_t>({320, 27, 347, 40786, 4160, 91, 285, 321}));
  EXPECT_EQ(tok.tokenize("\xc4\xb0stanbul"), std::vector<int64_t>({328, 16384, 11231}));
  EXPECT_EQ(tok.tokenize("a\xe2\x80\x8b" "b"), std::vector<int64_t>({320, 9844, 321}));  // U+200B is no space
  EXPECT_EQ(tok.tokenize("a\xc2\x85" "b"), std::vector<int64_t>({320, 321}));             // U+0085 is
}

TEST(ClipTokenizer, TruncationKeepsEosAndMask) {
  const auto dir = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const auto tok = ClipTokenizer::from_dir(dir);
  std::string long_text;
  for (int i = 0; i < 200; ++i) long_text += "cat ";
  const auto ids = tok.encode(long_text);
  ASSERT_EQ(ids.size(), 77u);
  EXPECT_EQ(ids.front(), tok.bos_id());
  EXPECT_EQ(ids.back(), tok.eos_id());
  EXPECT_EQ(tok.tokenize(long_text).size(), 200u);
  const auto mask = tok.attention_mask(tok.encode("a cat"));
  EXPECT_EQ(std::vector<int64_t>(mask.begin(), mask.begin() + 5), std::vector<int64_t>({1, 1, 1, 1, 0}));
  EXPECT_EQ(std::accumulate(mask.begin(), mask.end(), int64_t{0}), 4);
  const at::Tensor batch = tok.encode_batch({"a cat", long_text, ""});
  EXPECT_EQ(batch.sizes(), at::IntArrayRef({3, 77}));
  EXPECT_EQ(batch.scalar_type(), at::kLong);
  EXPECT_EQ(batch[2][1].item<int64_t>(), tok.eos_id());
}

TEST(ClipTokenizer, InvalidUtf8IsAnInputErrorAboutThePrompt) {
  const auto dir = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const auto hf = ClipTokenizer::from_dir(dir);
  const auto oc = ClipTokenizer::open_clip(test::fixture("tiny-openclip"));
  for (const std::string bad : {"caf\xe9", "\xff\xfe", "ok \xed\xa0\x80", "trunc \xe6\x9d"}) {
    expect_input_error([&] { hf.encode(bad); }, "prompt");
    expect_input_error([&] { oc.encode(bad); }, "prompt");
    expect_input_error([&] { hf.encode_batch({"fine", bad}); }, "prompt");
  }
}

TEST(ClipTokenizer, MissingOrCorruptFilesNameTheFile) {
  const auto src = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(src);
  const auto dir = test::temp_dir("tok-bad");
  expect_input_error([&] { ClipTokenizer::from_dir(dir); }, "vocab.json");
  expect_input_error([&] { ClipTokenizer::from_dir(dir / "nope"); }, "nope");
  expect_input_error([&] { ClipTokenizer::from_tokenizer_json(dir / "tokenizer.json"); }, "tokenizer.json");
  fs::copy_file(src / "vocab.json", dir / "vocab.json");
  expect_input_error([&] { ClipTokenizer::from_dir(dir); }, "merges.txt");
  write_file(dir / "merges.txt", "#version: 0.2\ni n\nthis line is bad\n");
  expect_input_error([&] { ClipTokenizer::from_dir(dir); }, "merges.txt");
  write_file(dir / "merges.txt", "#version: 0.2\nqq zz\n");  // "qqzz" is not a token
  expect_input_error([&] { ClipTokenizer::from_dir(dir); }, "merges.txt");
  write_file(dir / "merges.txt", "#version: 0.2\ni n\n");
  write_file(dir / "vocab.json", "{\"a\": 1, ");
  expect_input_error([&] { ClipTokenizer::from_dir(dir); }, "vocab.json");
  expect_input_error([&] { ClipTokenizer::open_clip(dir); }, "vocab.json");
  write_file(dir / "tokenizer.json", "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {}}}");
  expect_input_error([&] { ClipTokenizer::from_tokenizer_json(dir / "tokenizer.json"); }, "tokenizer.json");
  fs::remove_all(dir);

  // open_clip's merges list: not gzip, truncated, or too few merges
  const auto gz_dir = test::temp_dir("tok-bad-gz");
  const auto gz = gz_dir / "bpe_simple_vocab_16e6.txt.gz";
  write_file(gz, "#version: 0.2\ni n\n");
  expect_input_error([&] { ClipTokenizer::from_dir(gz_dir); }, "bpe_simple_vocab_16e6.txt.gz");
  expect_input_error([&] { ClipTokenizer::open_clip(gz_dir); }, "bpe_simple_vocab_16e6.txt.gz");
  const std::string real = read_regular_file(assets_dir() / "clip-tokenizer" / "bpe_simple_vocab_16e6.txt.gz");
  write_file(gz, real.substr(0, real.size() / 2));
  expect_input_error([&] { ClipTokenizer::from_dir(gz_dir); }, "bpe_simple_vocab_16e6.txt.gz");
  write_file(gz, test::gzip_stored("\"bpe_simple_vocab_16e6.txt#version: 0.2\ni n\nt h\n"));  // 2 of 48,894 merges
  try {
    ClipTokenizer::from_dir(gz_dir);
    ADD_FAILURE() << "a two-merge list was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("has 2 merges"), std::string::npos) << e.what();
  }
  fs::remove_all(gz_dir);
}

TEST(ClipTokenizer, ThreadSafeCopiesAndFast) {
  const auto dir = test::fixture("clip-tokenizer");
  DIFFBENCH_REQUIRE_FIXTURE(dir);
  const auto cases = load_golden();
  const auto tok = ClipTokenizer::from_dir(dir);  // fresh: the word cache starts empty
  const auto start = std::chrono::steady_clock::now();
  for (const auto& c : cases) tok.encode(c.text);
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::cout << "tokenised " << cases.size() << " golden texts in " << seconds * 1000 << " ms (cold cache)\n";
  EXPECT_LT(seconds, 1.0);

  const ClipTokenizer copy = tok;  // shares the tables and the cache
  std::vector<int> mismatches(4, 0);
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      const ClipTokenizer fresh = ClipTokenizer::from_dir(dir);
      for (size_t i = static_cast<size_t>(t); i < cases.size(); i += 2) {
        const ClipTokenizer& which = (t % 2) ? copy : fresh;
        if (which.encode(cases[i].text) != cases[i].ids) ++mismatches[t];
      }
    });
  }
  for (auto& th : threads) th.join();
  for (int t = 0; t < 4; ++t) EXPECT_EQ(mismatches[t], 0) << "thread " << t;
}
