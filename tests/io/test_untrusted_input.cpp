// Malformed files from issue 18 that used to crash, hang, allocate gigabytes or load silently:
// deep JSON, safetensors headers that lie, FIFOs, PNG headers promising huge images, bad prompts.
#include <sys/stat.h>

#include <chrono>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/gzip.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/prompts.hpp"
#include "diffbench/io/read_file.hpp"
#include "diffbench/io/safetensors.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

void write_bytes(const fs::path& p, const std::string& bytes) { std::ofstream(p, std::ios::binary) << bytes; }

std::string safetensors_bytes(const std::string& header, const std::string& data) {
  std::string out;
  const uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out.push_back(static_cast<char>((n >> (8 * i)) & 0xff));
  return out + header + data;
}

std::string nested(int depth, const std::string& inner = "1") {
  return std::string(depth, '[') + inner + std::string(depth, ']');
}

// The InputError message of `f`, or a failure when it throws nothing.
template <typename F>
std::string input_error(F f) {
  try {
    f();
  } catch (const InputError& e) {
    return e.what();
  }
  ADD_FAILURE() << "no InputError";
  return {};
}

#define EXPECT_CONTAINS(text, part) EXPECT_NE((text).find(part), std::string::npos) << (text)

std::string be32(uint32_t v) {
  return {static_cast<char>(v >> 24), static_cast<char>(v >> 16), static_cast<char>(v >> 8), static_cast<char>(v)};
}

std::string png_chunk(const std::string& type, const std::string& data) {
  return be32(static_cast<uint32_t>(data.size())) + type + data + be32(test::crc32(type + data));
}

// A PNG of a few dozen bytes whose header claims width × height RGB pixels.
std::string png_claiming(uint32_t width, uint32_t height) {
  const std::string ihdr = be32(width) + be32(height) + std::string("\x08\x02\x00\x00\x00", 5);
  return std::string("\x89PNG\r\n\x1a\n", 8) + png_chunk("IHDR", ihdr) +
         png_chunk("IDAT", std::string("\x78\x9c\x63\x00\x00\x00\x01\x00\x01", 9)) + png_chunk("IEND", "");
}

}  // namespace

TEST(UntrustedJson, NestingIsBounded) {
  EXPECT_NO_THROW(parse_json(nested(kMaxJsonDepth), "ok.json"));
  EXPECT_CONTAINS(input_error([] { parse_json(nested(kMaxJsonDepth + 1), "deep.json"); }), "nested deeper than 64");
  // 150 000 levels overflowed the stack when the parsed value was copied.
  const std::string deep = "{\"a\": " + nested(150000) + "}";
  EXPECT_CONTAINS(input_error([&] { parse_json(deep, "deep.json"); }), "deep.json");
}

// Found by fuzz_json: a number too large for a double is nlohmann's out_of_range, not a parse_error,
// and ended the process.
TEST(UntrustedJson, NumberOverflowIsAnInputError) {
  EXPECT_CONTAINS(input_error([] { parse_json(std::string("{\"a\": [0.1872E997]}"), "big.json"); }), "number overflow");
}

TEST(UntrustedJson, DuplicateKeysOnlyWhereAsked) {
  EXPECT_EQ(parse_json(R"({"a": 1, "a": 2})", "x.json")["a"], 2);  // JSON's rule for configs
  EXPECT_CONTAINS(input_error([] { parse_json(R"({"a": 1, "b": {"a": 1}, "a": 2})", "x.json", true); }),
                  "key 'a' appears twice");
  EXPECT_NO_THROW(parse_json(R"({"a": {"a": 1}, "b": [{"a": 1}, {"a": 2}]})", "x.json", true));
}

TEST(UntrustedJson, ConfigValuesAreBoundedIntegers) {
  const JsonConfig c(nlohmann::json::parse(R"({"n": 0, "big": 1e12, "huge": 18446744073709551615, "ok": 64})"),
                     "unet/config.json");
  EXPECT_EQ(c.get_int("ok", 1, 1, 64), 64);
  EXPECT_EQ(c.get_int("absent", 7, 1, 64), 7);
  for (const char* key : {"n", "big", "huge"}) {
    const std::string e = input_error([&] { c.get_int(key, 1, 1, 1 << 20); });
    EXPECT_CONTAINS(e, "unet/config.json");
    EXPECT_CONTAINS(e, std::string("'") + key + "'");
  }
  EXPECT_CONTAINS(input_error([&] { c.get<int64_t>("big", 1); }), "must be an integer");
}

TEST(UntrustedSafetensors, HeaderLiesAreRejected) {
  const fs::path dir = test::temp_dir("untrusted-st");
  const std::string f8(8, '\0');
  struct Case {
    const char* name;
    std::string header, data, expect;
  };
  const std::vector<Case> cases = {
      {"duplicate", R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "t": {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}})",
       f8, "appears twice"},
      // An empty tensor between two overlapping ones used to hide the overlap.
      {"overlap_behind_empty",
       R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}, "b": {"dtype": "F32", "shape": [1], "data_offsets": [6, 10]}})",
       std::string(12, '\0'), "overlap"},
      {"empty_inside", R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "e": {"dtype": "F32", "shape": [0], "data_offsets": [4, 4]}})",
       f8, "overlap"},
      {"metadata_not_strings", R"({"__metadata__": {"format": 1}, "t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})",
       f8, "__metadata__"},
      {"metadata_deep", "{\"__metadata__\": {\"x\": " + nested(150000, "\"s\"") + "}}", "", "nested deeper"},
      {"float_shape", R"({"t": {"dtype": "F32", "shape": [2.5], "data_offsets": [0, 8]}})", f8, "shape"},
      {"negative_shape", R"({"t": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}})", f8, "shape"},
      {"negative_offset", R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [-8, 0]}})", f8, "data_offsets"},
      {"count_overflow", R"({"t": {"dtype": "F64", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}})", f8,
       "overflows"},
      {"bytes_overflow", R"({"t": {"dtype": "F64", "shape": [2305843009213693952], "data_offsets": [0, 8]}})", f8,
       "overflows"},
  };
  for (const auto& c : cases) {
    const fs::path p = dir / (std::string(c.name) + ".safetensors");
    write_bytes(p, safetensors_bytes(c.header, c.data));
    const std::string e = input_error([&] { SafetensorsFile::open(p); });
    EXPECT_CONTAINS(e, p.string()) << c.name;
    EXPECT_CONTAINS(e, c.expect) << c.name;
  }
  // Empty tensors at a boundary and side by side are fine.
  const fs::path ok = dir / "ok.safetensors";
  write_bytes(ok, safetensors_bytes(
                      R"({"__metadata__": {"format": "pt"}, "a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "e": {"dtype": "F32", "shape": [0, 3], "data_offsets": [8, 8]}, "f": {"dtype": "F32", "shape": [0], "data_offsets": [8, 8]}})",
                      f8));
  EXPECT_EQ(SafetensorsFile::open(ok)->tensors().size(), 3u);
  fs::remove_all(dir);
}

TEST(UntrustedFiles, GzipStreamsAreCheckedAndBounded) {
  const fs::path dir = test::temp_dir("untrusted-gzip");
  const fs::path gz = dir / "merges.txt.gz";
  write_bytes(gz, test::gzip_stored("#version\ni n\n"));
  EXPECT_EQ(read_gzip_file(gz), "#version\ni n\n");
  write_bytes(gz, test::gzip_stored("one ") + test::gzip_stored("two"));  // members concatenated, as `cat a.gz b.gz`
  EXPECT_EQ(read_gzip_file(gz), "one two");
  // open_clip's merges list: 1,356,917 bytes that inflate to 3,194,984 (Python's gzip module)
  const fs::path merges = assets_dir() / "clip-tokenizer" / "bpe_simple_vocab_16e6.txt.gz";
  EXPECT_EQ(read_gzip_file(merges).size(), 3194984u);
  EXPECT_CONTAINS(input_error([&] { read_gzip_file(merges, 2000000); }), "more than 2000000 bytes");
  const std::string whole = test::gzip_stored("0123456789");
  write_bytes(gz, whole.substr(0, whole.size() - 6));
  EXPECT_CONTAINS(input_error([&] { read_gzip_file(gz); }), "truncated");
  std::string bad_crc = whole;
  bad_crc[bad_crc.size() - 8] ^= 1;
  write_bytes(gz, bad_crc);
  EXPECT_CONTAINS(input_error([&] { read_gzip_file(gz); }), gz.string());
  write_bytes(gz, "plain text, not gzip");
  EXPECT_CONTAINS(input_error([&] { read_gzip_file(gz); }), "not a valid gzip stream");
  EXPECT_CONTAINS(input_error([&] { read_gzip_file(dir); }), "folder");
  fs::remove_all(dir);
}

TEST(UntrustedFiles, FifosAndFoldersFailWithoutBlocking) {
  const fs::path dir = test::temp_dir("untrusted-fifo");
  const fs::path fifo = dir / "model.safetensors";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  const fs::path json = dir / "config.json";
  ASSERT_EQ(::mkfifo(json.c_str(), 0600), 0);
  const fs::path txt = dir / "prompts.txt";
  ASSERT_EQ(::mkfifo(txt.c_str(), 0600), 0);
  // Each would block forever in open() on a FIFO nobody writes to.
  EXPECT_CONTAINS(input_error([&] { SafetensorsFile::open(fifo); }), "not a regular file");
  EXPECT_CONTAINS(input_error([&] { JsonConfig::load(json); }), "not a regular file");
  EXPECT_CONTAINS(input_error([&] { load_prompts(txt.string(), 0); }), "not a regular file");
  EXPECT_CONTAINS(input_error([&] { read_regular_file(dir); }), "folder");
  EXPECT_CONTAINS(input_error([&] { read_regular_file(dir / "missing.json"); }), "no such file");
  fs::remove_all(dir);
}

TEST(UntrustedFiles, PngHeaderCannotAskForGigabytes) {
  const fs::path dir = test::temp_dir("untrusted-png");
  // 69 bytes claiming 50000 × 50000 pixels allocated 7.5 GB before reading any pixel.
  for (auto [w, h] : {std::pair{50000u, 50000u}, std::pair{10000u, 10000u}, std::pair{16384u, 2000u}}) {
    const fs::path p = dir / ("claims-" + std::to_string(w) + "x" + std::to_string(h) + ".png");
    write_bytes(p, png_claiming(w, h));
    ASSERT_LT(fs::file_size(p), 100u);
    const auto t0 = std::chrono::steady_clock::now();
    EXPECT_CONTAINS(input_error([&] { read_png(p); }), p.string());
    EXPECT_LT(std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count(), 5.0);
  }
  fs::remove_all(dir);
}

TEST(UntrustedPrompts, EmptyJsonlPromptsAndNulBytesAreRejected) {
  const fs::path dir = test::temp_dir("untrusted-prompts");
  write_bytes(dir / "empty.jsonl", "{\"prompt\": \"a cat\"}\n{\"prompt\": \"\"}\n");
  EXPECT_CONTAINS(input_error([&] { load_prompts((dir / "empty.jsonl").string(), 0); }), "empty.jsonl:2");
  write_bytes(dir / "blank.jsonl", "{\"prompt\": \"  \"}\n");
  EXPECT_CONTAINS(input_error([&] { load_prompts((dir / "blank.jsonl").string(), 0); }), "empty");
  write_bytes(dir / "nul.jsonl", "{\"prompt\": \"a\\u0000b\"}\n");
  EXPECT_CONTAINS(input_error([&] { load_prompts((dir / "nul.jsonl").string(), 0); }), "NUL");
  write_bytes(dir / "nul.txt", std::string("a cat\na\0dog\n", 12));
  EXPECT_CONTAINS(input_error([&] { load_prompts((dir / "nul.txt").string(), 0); }), "NUL");
  write_bytes(dir / "deep.jsonl", "{\"prompt\": \"x\", \"meta\": " + nested(100000) + "}\n");
  EXPECT_CONTAINS(input_error([&] { load_prompts((dir / "deep.jsonl").string(), 0); }), "deep.jsonl:1");
  fs::remove_all(dir);
}
