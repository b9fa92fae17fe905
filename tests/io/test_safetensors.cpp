#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/safetensors.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

void write_raw(const fs::path& p, const std::string& header, const std::string& data, int64_t len_override = -1) {
  std::ofstream out(p, std::ios::binary);
  uint64_t n = len_override >= 0 ? static_cast<uint64_t>(len_override) : header.size();
  for (int i = 0; i < 8; ++i) out.put(static_cast<char>((n >> (8 * i)) & 0xff));
  out << header << data;
}

}  // namespace

TEST(Safetensors, RoundTripsDtypesAndShapes) {
  auto dir = test::temp_dir("st-roundtrip");
  StateDict sd;
  sd["a.weight"] = torch::randn({3, 5});
  sd["b.half"] = torch::randn({7}).to(torch::kHalf);
  sd["c.bf16"] = torch::randn({2, 2, 2}).to(torch::kBFloat16);
  sd["d.ids"] = torch::arange(10, torch::kLong);
  save_safetensors(dir / "x.safetensors", sd, {{"format", "pt"}});
  auto f = SafetensorsFile::open(dir / "x.safetensors");
  EXPECT_EQ(f->tensors().size(), 4u);
  EXPECT_EQ(f->metadata()["format"], "pt");
  for (const auto& [k, v] : sd) {
    auto t = f->get(k);
    EXPECT_EQ(t.scalar_type(), v.scalar_type()) << k;
    EXPECT_TRUE(torch::equal(t, v)) << k;
  }
  auto as_float = f->get("b.half", torch::kFloat);
  EXPECT_EQ(as_float.scalar_type(), torch::kFloat);
  EXPECT_TRUE(torch::equal(as_float, sd["b.half"].to(torch::kFloat)));
  fs::remove_all(dir);
}

TEST(Safetensors, ReadsFixtureHeader) {
  auto p = test::fixture("tiny-sd/text_encoder/model.safetensors");
  DIFFBENCH_REQUIRE_FIXTURE(p);
  auto f = SafetensorsFile::open(p);
  EXPECT_EQ(f->info("final_layer_norm.weight").shape, std::vector<int64_t>({32}));
  EXPECT_EQ(f->get("embeddings.token_embedding.weight").sizes(), torch::IntArrayRef({49408, 32}));
}

TEST(Safetensors, ShardedIndex) {
  auto dir = test::temp_dir("st-shards");
  save_safetensors(dir / "m-1.safetensors", {{"a", torch::ones({2})}});
  save_safetensors(dir / "m-2.safetensors", {{"b", torch::zeros({3})}});
  std::ofstream(dir / "m.safetensors.index.json")
      << R"({"metadata": {}, "weight_map": {"a": "m-1.safetensors", "b": "m-2.safetensors"}})";
  auto sd = load_safetensors(dir / "m.safetensors.index.json");
  ASSERT_EQ(sd.size(), 2u);
  EXPECT_TRUE(torch::equal(sd["a"], torch::ones({2})));
  EXPECT_TRUE(torch::equal(sd["b"], torch::zeros({3})));
  fs::remove_all(dir);
}

struct BadCase {
  const char* name;
  std::string header;
  std::string data;
  int64_t len;
  const char* expect;
};

TEST(Safetensors, RejectsBadFilesNamingThem) {
  auto dir = test::temp_dir("st-bad");
  const std::string ok_entry = R"({"t": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}})";
  std::vector<BadCase> cases = {
      {"lying_length", ok_entry, std::string(8, '\0'), 1 << 20, "past the end"},
      {"huge_length", ok_entry, std::string(8, '\0'), int64_t(1) << 40, "bound"},
      {"bad_json", "{not json", "", -1, "not valid JSON"},
      {"bad_dtype", R"({"t": {"dtype": "Q7", "shape": [2], "data_offsets": [0, 8]}})", std::string(8, '\0'), -1,
       "unsupported dtype"},
      {"size_mismatch", R"({"t": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}})", std::string(8, '\0'), -1,
       "shape"},
      {"outside", ok_entry, std::string(4, '\0'), -1, "outside"},
      {"overlap",
       R"({"a": {"dtype": "F32", "shape": [2], "data_offsets": [0, 8]}, "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]}})",
       std::string(12, '\0'), -1, "overlap"},
  };
  for (const auto& c : cases) {
    auto p = dir / (std::string(c.name) + ".safetensors");
    write_raw(p, c.header, c.data, c.len);
    try {
      SafetensorsFile::open(p);
      ADD_FAILURE() << c.name << ": no error";
    } catch (const InputError& e) {
      EXPECT_NE(std::string(e.what()).find(p.string()), std::string::npos) << c.name << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find(c.expect), std::string::npos) << c.name << ": " << e.what();
      EXPECT_EQ(e.exit_code(), 2);
    }
  }
  // Truncated: cut a valid file short.
  save_safetensors(dir / "full.safetensors", {{"w", torch::randn({64})}});
  auto size = fs::file_size(dir / "full.safetensors");
  fs::copy_file(dir / "full.safetensors", dir / "cut.safetensors");
  fs::resize_file(dir / "cut.safetensors", size - 10);
  EXPECT_THROW(SafetensorsFile::open(dir / "cut.safetensors"), InputError);
  EXPECT_THROW(SafetensorsFile::open(dir / "model.bin"), InputError);
  fs::remove_all(dir);
}
