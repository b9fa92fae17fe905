#include <fstream>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/io/prompts.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

std::vector<std::string> file_lines(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::vector<std::string> lines;
  for (std::string l; std::getline(in, l);) lines.push_back(l);
  return lines;
}

void write_file(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

// Expects load_prompts(spec, n) to throw InputError whose text names `where_part` and `fragment`.
void expect_error(const std::string& spec, size_t n, const std::string& where_part, const std::string& fragment) {
  try {
    load_prompts(spec, n);
    ADD_FAILURE() << spec << ": no error";
  } catch (const InputError& e) {
    EXPECT_NE(e.where().find(where_part), std::string::npos) << spec << ": where=" << e.where() << " / " << e.what();
    EXPECT_NE(std::string(e.what()).find(fragment), std::string::npos) << spec << ": " << e.what();
  }
}

}  // namespace

TEST(Prompts, CocoFirstCaptionOfFirstImages) {
  auto path = test::shared_data("captions_val2017.json");
  DIFFBENCH_REQUIRE_FIXTURE(path);
  auto set = load_prompts("coco:" + path.string(), 32);
  EXPECT_EQ(set.source, "coco:" + path.string());
  ASSERT_EQ(set.prompts.size(), 32u);
  EXPECT_EQ(set.prompts.front(), "A man is in a kitchen making pizzas.");
  EXPECT_EQ(set.prompts.back(), "A train traveling down tracks next to lights.");
  // The CLIP reference texts 0..3 are the first four COCO prompts (trailing space kept).
  auto ref = test::fixture("tiny-clip-reference.json");
  if (fs::exists(ref)) {
    auto texts = nlohmann::json::parse(std::ifstream(ref))["texts"];
    for (size_t i = 0; i < 4; ++i) EXPECT_EQ(set.prompts[i], texts[i].get<std::string>()) << i;
  }
  auto all = load_prompts("coco:" + path.string(), 0);
  EXPECT_EQ(all.prompts.size(), 5000u);  // one per image of val2017
  EXPECT_TRUE(std::equal(set.prompts.begin(), set.prompts.end(), all.prompts.begin()));
  expect_error("coco:" + path.string(), 5001, path.string(), "only 5000");
}

TEST(Prompts, PartiPromptColumn) {
  auto path = test::shared_data("PartiPrompts.tsv");
  DIFFBENCH_REQUIRE_FIXTURE(path);
  auto lines = file_lines(path);
  ASSERT_GE(lines.size(), 3u);
  ASSERT_EQ(lines[0].substr(0, 7), "Prompt\t");
  auto set = load_prompts("parti:" + path.string(), 0);
  EXPECT_EQ(set.prompts.size(), lines.size() - 1);  // every data row
  EXPECT_EQ(set.prompts[0], lines[1].substr(0, lines[1].find('\t')));
  EXPECT_EQ(set.prompts.back(), lines.back().substr(0, lines.back().find('\t')));
  // Quote characters are kept as written.
  for (size_t i = 1; i < lines.size(); ++i)
    if (!lines[i].empty() && lines[i][0] == '"') EXPECT_EQ(set.prompts[i - 1], lines[i].substr(0, lines[i].find('\t')));
  EXPECT_EQ(load_prompts("parti:" + path.string(), 10).prompts.size(), 10u);
}

TEST(Prompts, GenevalJsonl) {
  auto path = test::shared_data("geneval_evaluation_metadata.jsonl");
  DIFFBENCH_REQUIRE_FIXTURE(path);
  auto lines = file_lines(path);
  auto set = load_prompts("geneval:" + path.string(), 0);
  ASSERT_EQ(set.prompts.size(), lines.size());
  EXPECT_EQ(set.prompts[0], nlohmann::json::parse(lines[0])["prompt"].get<std::string>());
  EXPECT_EQ(set.prompts.back(), nlohmann::json::parse(lines.back())["prompt"].get<std::string>());
  // The same file read as a plain .jsonl spec.
  EXPECT_EQ(load_prompts(path.string(), 5).prompts,
            std::vector<std::string>(set.prompts.begin(), set.prompts.begin() + 5));
}

TEST(Prompts, TxtKeepsWhitespaceAndSkipsTrailingBlankLines) {
  auto dir = test::temp_dir("prompts-txt");
  write_file(dir / "p.txt", "\xEF\xBB\xBF  a cat \r\nthe d\xC3\xA9j\xC3\xA0 vu\tdog\n\xF0\x9F\x90\x88 emoji\n\n");
  auto set = load_prompts((dir / "p.txt").string(), 0);
  EXPECT_EQ(set.prompts, (std::vector<std::string>{"  a cat ", "the d\xC3\xA9j\xC3\xA0 vu\tdog", "\xF0\x9F\x90\x88 emoji"}));
  EXPECT_EQ(load_prompts((dir / "p.txt").string(), 2).prompts.size(), 2u);
  write_file(dir / "nolf.txt", "one\ntwo");
  EXPECT_EQ(load_prompts((dir / "nolf.txt").string(), 0).prompts, (std::vector<std::string>{"one", "two"}));
  fs::remove_all(dir);
}

TEST(Prompts, JsonlReadsPromptKey) {
  auto dir = test::temp_dir("prompts-jsonl");
  write_file(dir / "p.jsonl", "{\"prompt\": \" x \", \"tag\": 1}\n\n{\"prompt\": \"caf\\u00e9\"}\n");
  EXPECT_EQ(load_prompts((dir / "p.jsonl").string(), 0).prompts, (std::vector<std::string>{" x ", "caf\xC3\xA9"}));
  fs::remove_all(dir);
}

TEST(Prompts, BadInputsNameFileAndLine) {
  auto dir = test::temp_dir("prompts-bad");
  const std::string d = dir.string();
  write_file(dir / "blank.txt", "a\n\nb\n");
  expect_error(d + "/blank.txt", 0, "blank.txt:2", "blank line");
  write_file(dir / "utf8.txt", "ok\nbad \xC3\x28 byte\n");
  expect_error(d + "/utf8.txt", 0, "utf8.txt:2", "invalid UTF-8");
  write_file(dir / "overlong.txt", "\xC0\xAF\n");
  expect_error(d + "/overlong.txt", 0, "overlong.txt:1", "invalid UTF-8");
  write_file(dir / "surrogate.txt", "x\ny\n\xED\xA0\x80\n");
  expect_error(d + "/surrogate.txt", 0, "surrogate.txt:3", "invalid UTF-8");
  write_file(dir / "nokey.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\"}\n{\"text\": \"c\"}\n");
  expect_error(d + "/nokey.jsonl", 0, "nokey.jsonl:3", "no \"prompt\"");
  write_file(dir / "notstr.jsonl", "{\"prompt\": 3}\n");
  expect_error(d + "/notstr.jsonl", 0, "notstr.jsonl:1", "not a string");
  write_file(dir / "badjson.jsonl", "{\"prompt\": \"a\"}\n{\"prompt\": \"b\n");
  expect_error(d + "/badjson.jsonl", 0, "badjson.jsonl:2", "not valid JSON");
  write_file(dir / "array.jsonl", "[\"a\"]\n");
  expect_error(d + "/array.jsonl", 0, "array.jsonl:1", "JSON object");
  write_file(dir / "badutf8.jsonl", "{\"prompt\": \"\xFF\"}\n");
  expect_error(d + "/badutf8.jsonl", 0, "badutf8.jsonl:1", "invalid UTF-8");
  write_file(dir / "empty.txt", "\n\n");
  expect_error(d + "/empty.txt", 0, "empty.txt", "no prompts");
  write_file(dir / "two.txt", "a\nb\n");
  expect_error(d + "/two.txt", 3, "two.txt", "only 2");
  expect_error(d + "/missing.txt", 0, "missing.txt", "no such file");
  expect_error("coco:" + d + "/missing.json", 0, "missing.json", "no such file");
  expect_error("foo:" + d + "/two.txt", 0, "foo:", "unknown prompt-set prefix");
  write_file(dir / "p.csv", "a\n");
  expect_error(d + "/p.csv", 0, "p.csv", "unknown prompt-file type");
  write_file(dir / "parti.tsv", "Prompt\tCategory\tChallenge\tNote\nok\tA\tB\t\n\tA\tB\tC\n");
  expect_error("parti:" + d + "/parti.tsv", 0, "parti.tsv:3", "no prompt");
  write_file(dir / "noheader.tsv", "Text\tCategory\nok\tA\n");
  expect_error("parti:" + d + "/noheader.tsv", 0, "noheader.tsv:1", "Prompt");
  write_file(dir / "coco.json", R"({"images": [{"id": 1}, {"id": 2}], "annotations": [{"image_id": 1, "id": 5, "caption": "c1"}]})");
  EXPECT_EQ(load_prompts("coco:" + d + "/coco.json", 1).prompts, std::vector<std::string>{"c1"});
  expect_error("coco:" + d + "/coco.json", 0, "coco.json", "image 2 (images[1]) has no caption");
  write_file(dir / "notcoco.json", R"({"images": []})");
  expect_error("coco:" + d + "/notcoco.json", 0, "notcoco.json", "annotations");
  write_file(dir / "broken.json", R"({"images": [)");
  expect_error("coco:" + d + "/broken.json", 0, "broken.json", "not valid JSON");
  fs::remove_all(dir);
}

// The bundled default prompt set: the first captions of the first 5,000 COCO 2017 val images, extracted
// by tools/extract-coco-prompts.py; checked against the official annotation file.
TEST(Prompts, BundledCocoDefaultMatchesTheAnnotations) {
  const auto first32 = load_prompts("coco2017-val", 32).prompts;
  ASSERT_EQ(first32.size(), 32u);
  EXPECT_EQ(first32.front(), "A man is in a kitchen making pizzas.");
  EXPECT_EQ(first32.back(), "A train traveling down tracks next to lights.");
  EXPECT_EQ(load_prompts("coco2017-val", 0).prompts.size(), 5000u);
  const auto coco = test::shared_data("captions_val2017.json");
  DIFFBENCH_REQUIRE_FIXTURE(coco);
  EXPECT_EQ(first32, load_prompts("coco:" + coco.string(), 32).prompts);
  EXPECT_EQ(load_prompts("coco2017-val", 5000).prompts, load_prompts("coco:" + coco.string(), 5000).prompts);
}
