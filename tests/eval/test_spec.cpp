#include "diffbench/error.hpp"
#include "diffbench/eval/spec.hpp"
#include "test_support.hpp"

using namespace diffbench;

TEST(Spec, ParsesPipelineAndMethods) {
  auto s = parse_spec(R"(
[pipeline]
model = "models/sd"
scheduler = "ddim"
steps = 25
guidance = 7      # integers are fine for floats
height = 512
width = 768
dtype = "fp16"
device = "cuda"

[[accelerate]]
method = "deepcache"
cache_interval = 3
cache_branch_id = 0

[[accelerate]]
method = "tome"
ratio = 0.5
use_rand = false
)",
                      "/specs/cand.toml");
  EXPECT_EQ(s.name, "cand");
  EXPECT_EQ(s.model, std::filesystem::path("/specs/models/sd"));
  EXPECT_EQ(s.scheduler, "ddim");
  EXPECT_EQ(s.steps, 25);
  EXPECT_DOUBLE_EQ(s.guidance, 7.0);
  EXPECT_EQ(s.height, 512);
  EXPECT_EQ(s.width, 768);
  EXPECT_EQ(s.dtype, "fp16");
  ASSERT_EQ(s.accelerate.size(), 2u);
  EXPECT_EQ(s.accelerate[0].method, "deepcache");
  EXPECT_EQ(s.accelerate[0].params["cache_interval"], 3);
  EXPECT_EQ(s.accelerate[1].params["use_rand"], false);
  EXPECT_EQ(s.accelerate[1].params["ratio"], 0.5);
  EXPECT_EQ(s.accelerate[1].lines.at("ratio"), 19);
  auto b = s.baseline();
  EXPECT_TRUE(b.accelerate.empty());
  EXPECT_EQ(b.steps, 25);
  EXPECT_EQ(spec_differences(b, s), std::vector<std::string>({"accelerate methods: 0 vs 2"}));
}

TEST(Spec, ErrorsNameFileLineAndKey) {
  struct Case {
    const char* text;
    const char* where;
    const char* what;
  };
  const Case cases[] = {
      {"[pipeline]\nmodel = 'm'\nstepz = 3\n", "/s/x.toml:3", "stepz"},
      {"[pipeline]\nmodel = 'm'\nsteps = 'many'\n", "/s/x.toml:3", "steps"},
      {"[pipeline]\nmodel = 'm'\ndtype = 'fp8'\n", "/s/x.toml:3", "dtype"},
      {"[pipeline]\nsteps = 3\n", "/s/x.toml:1", "model"},
      {"[pipeline]\nmodel = 'm'\n[extra]\nx = 1\n", "/s/x.toml:3", "extra"},
      {"[pipeline]\nmodel = 'm'\n[[accelerate]]\ncache_interval = 3\n", "/s/x.toml:3", "method"},
      {"[pipeline]\nmodel = = 'm'\n", "/s/x.toml:2", "TOML"},
      {"", "/s/x.toml", "[pipeline]"},
  };
  for (const auto& c : cases) {
    try {
      parse_spec(c.text, "/s/x.toml");
      ADD_FAILURE() << "no error for: " << c.text;
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), c.where) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.what), std::string::npos) << e.what();
      EXPECT_EQ(e.exit_code(), 2);
    }
  }
}
