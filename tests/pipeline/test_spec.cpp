#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/read_file.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "test_support.hpp"

#include <string_view>

using namespace diffbench;
using namespace std::string_view_literals;

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
    std::string_view text;  // may hold a NUL
    const char* where;
    const char* what;
  };
  const Case cases[] = {
      {"[pipeline]\nmodel = 'm'\nstepz = 3\n", "/s/x.toml:3", "stepz"},
      {"[pipeline]\nmodel = 'm'\nsteps = 'many'\n", "/s/x.toml:3", "steps"},
      {"[pipeline]\nmodel = 'm'\ndtype = 'fp4'\n", "/s/x.toml:3", "dtype"},
      {"[pipeline]\nsteps = 3\n", "/s/x.toml:1", "model"},
      {"[pipeline]\nmodel = 'm'\n[extra]\nx = 1\n", "/s/x.toml:3", "extra"},
      {"[pipeline]\nmodel = 'm'\n[[accelerate]]\ncache_interval = 3\n", "/s/x.toml:3", "method"},
      {"[pipeline]\nmodel = = 'm'\n", "/s/x.toml:2", "TOML"},
      // toml++ 3.3 assumes a header's key starts with a key character (undefined behaviour otherwise):
      // refused before it reads the text (found by fuzz_spec)
      {"# c\n[pipeline]\nmodel = 'm'\n[= 'fp16'\n", "/s/x.toml:4", "table header"},
      {"[pipeline]\nmodel = 'm'\n[[ {x}]]\n", "/s/x.toml:3", "table header"},
      {"\xEF\xBB\xBF[#e\n[pipeline]\n", "/s/x.toml:1", "table header"},  // after a byte order mark
      // toml++ 3.3's non-ASCII whitespace test reaches __builtin_unreachable for U+00A1..U+0499,
      // U+2C5E..U+2FFF, U+3001..U+3057 and U+FB26..U+FEFE, and its parser trips over what it takes
      // for non-ASCII whitespace (undefined behaviour): toml++ sees neither (they are swapped for
      // private-use stand-ins), so it reports these texts itself, naming the character as written
      // (found by fuzz_spec)
      {"\xC9\xAD\x01", "/s/x.toml:1", "\xC9\xAD"},  // the finding: U+026D, then U+0001
      {"[pipeline]\nmodel = 'm'\nsteps = 2 \xC3\xA9\n", "/s/x.toml:3", "\xC3\xA9"},
      {"[pipeline] \xEF\xB9\xB0\nmodel = 'm'\n", "/s/x.toml:1", "\xEF\xB9\xB0"},  // U+FE70 after a header
      {"[pipeline]\nmodel = \"\"\"a\\\xC3\xA9\"\"\"\n", "/s/x.toml:2", "escape"},
      {"[pipeline]\nmodel = 'm'\ne =11111~2model\"...\xCC\x91 -u\"=stex\"\n", "/s/x.toml:3", "TOML"},
      // a NUL is not "no character yet" to the header guard; U+FCFF inside toml++'s bad value
      {"# T\"\nheight = 512e\0vdth'''\0\0'\xEF\xB3\xBF''''%#''a]]\nfile1="sv, "/s/x.toml:2", "TOML"},
      {"[pipeline]\nmodel = 'm'\nsteps = 2\xE3\x80\x81\n", "/s/x.toml:3", "\xE3\x80\x81"},  // U+3001
      {"0d=[[\xC2\x85[S", "/s/x.toml:1", "TOML"},  // U+0085 where an array's value starts
      {"[pipeline]\nmodel = 'm'\xC2\xA0\n", "/s/x.toml:2", "\xC2\xA0"},  // U+00A0 after a value
      // the stand-ins themselves are refused
      {"[pipeline]\nmodel = 'm\xF3\xB0\x80\x80'\n", "/s/x.toml:2", "private-use"},
      // ... and assumes an array element does not start with '}' (fuzz_spec)
      {"[pipeline]\nmodel = 'm'\nscheduler_options = { a = [1,\n } ]\n", "/s/x.toml:4", "inside an array"},
      {"[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'x'\nx = [#c\n}\n", "/s/x.toml:6", "inside an array"},
      // ... and that a date-like value followed by a space and one digit goes on (fuzz_spec)
      {"t = 512\nw = 51on-v1-5\" 5 12\n", "/s/x.toml:2", "two-digit hour"},
      {"[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'x'\nd = [2024-01-01 1]\n", "/s/x.toml:5", "two-digit hour"},
      {"[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'x'\nd = 1979-05-27 07:32:00\n", "/s/x.toml:5", "parameter 'd'"},
      {"", "/s/x.toml", "[pipeline]"},
  };
  for (const auto& c : cases) {
    try {
      parse_spec(std::string(c.text), "/s/x.toml");
      ADD_FAILURE() << "no error for: " << c.text;
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), c.where) << e.what();
      EXPECT_NE(std::string(e.what()).find(c.what), std::string::npos) << e.what();
      EXPECT_EQ(e.exit_code(), 2);
    }
  }
}

// The header guard leaves '[' alone inside strings, comments and the brackets of values.
TEST(Spec, BracketsInsideValuesAreNotHeaders) {
  const auto s = parse_spec("[pipeline] # [= not a header\nmodel = \"\"\"\n[= in a string\"\"\"\n", "/s/x.toml");
  EXPECT_EQ(s.model_ref, "[= in a string");
  // toml++ reads the array (lines starting with "[{" and "[+"), and the spec then refuses it.
  try {
    parse_spec("[pipeline]\nmodel = 'm'\n[[accelerate]]\nmethod = 'deepcache'\nlist = [\n  [{a = 1}],\n  [+1, 2],\n]\n",
               "/s/x.toml");
    ADD_FAILURE() << "an array parameter was accepted";
  } catch (const InputError& e) {
    EXPECT_NE(std::string(e.what()).find("method parameter 'list'"), std::string::npos) << e.what();
  }
}

// Non-ASCII text stays allowed where TOML allows it: in strings, comments and quoted keys, after a
// line-ending backslash, including the code points toml++ 3.3 cannot test (they reach it as stand-ins
// and come back in every key and string).
TEST(Spec, NonAsciiInStringsAndCommentsIsRead) {
  const auto s = parse_spec("# r\xC3\xA9sum\xC3\xA9\n[pipeline] # \xC3\xBC\nmodel = \"caf\xC3\xA9\"\n"
                            "scheduler = \"\"\"a \\\n  \xE6\x97\xA5\"\"\"\n"
                            "variant = \"\"\"b \\\n  \xC3\xBC\xE3\x80\x82\xEF\xB3\xBF\xE2\xB1\xA0\"\"\"\n"
                            "device = '\xC2\xA0\xE2\x80\xA8\xE3\x80\x80\xEF\xBB\xBF\xC2\x85'\n"
                            "[[accelerate]]\nmethod = 'x'\n\"\xE3\x80\x81k\xC3\xA9\" = '\xEF\xBB\xBE'\n",
                            "/s/x.toml");
  EXPECT_EQ(s.model_ref, "caf\xC3\xA9");
  EXPECT_EQ(s.scheduler, "a \xE6\x97\xA5");  // U+65E5 after the line-ending backslash
  EXPECT_EQ(s.variant, "b \xC3\xBC\xE3\x80\x82\xEF\xB3\xBF\xE2\xB1\xA0");  // U+00FC U+3002 U+FCFF U+2C60
  EXPECT_EQ(s.device, "\xC2\xA0\xE2\x80\xA8\xE3\x80\x80\xEF\xBB\xBF\xC2\x85");  // what toml++ 3.3 calls whitespace
  ASSERT_EQ(s.accelerate.size(), 1u);
  ASSERT_EQ(s.accelerate[0].params.size(), 1u);
  // U+3001 and U+00E9 in a key, U+FEFE in its value
  EXPECT_EQ(s.accelerate[0].params.value("\xE3\x80\x81k\xC3\xA9", ""), "\xEF\xBB\xBE") << s.accelerate[0].params.dump();
  EXPECT_EQ(s.accelerate[0].lines.at("\xE3\x80\x81k\xC3\xA9"), 11);
  EXPECT_EQ(parse_spec("\xEF\xBB\xBF[pipeline]\nmodel = 'm'\n", "/s/x.toml").model_ref, "m");  // a leading BOM
}

// What every command runs a spec with: the spec's fields, the protocol's seed, batch and noise, the
// CUDA settings as given.
TEST(Spec, ConvertsToThePipelineOptions) {
  auto s = parse_spec(R"(
[pipeline]
model = "models/sd"
variant = "fp16"
scheduler = "euler"
scheduler_options = { timestep_spacing = "trailing" }
steps = 12
guidance = 3.5
height = 256
width = 320
)",
                      "/specs/cand.toml");
  const ModelOptions mo = s.model_options({false, true, true});
  EXPECT_EQ(mo.dir, std::filesystem::path("/specs/models/sd"));
  EXPECT_EQ(mo.variant, "fp16");
  EXPECT_EQ(mo.device, at::Device(at::kCPU));
  EXPECT_EQ(mo.dtype, at::kFloat);
  EXPECT_FALSE(mo.cuda_graphs);
  EXPECT_TRUE(mo.channels_last);
  EXPECT_TRUE(mo.cudnn_benchmark);
  EXPECT_TRUE(s.model_options().cuda_graphs);  // the defaults: graphs and NHWC on, cuDNN's heuristics
  EXPECT_FALSE(s.model_options().cudnn_benchmark);

  RunProtocol p;
  p.seed = 7;
  p.batch_size = 3;
  p.noise = NoiseMode::Diffusers;
  p.allow_nonfinite = true;
  const GenerateOptions go = s.generate_options(p);
  EXPECT_EQ(go.scheduler, "euler");
  EXPECT_EQ(go.scheduler_options, (nlohmann::json{{"timestep_spacing", "trailing"}}));
  EXPECT_EQ(go.steps, 12);
  EXPECT_DOUBLE_EQ(go.guidance, 3.5);
  EXPECT_EQ(go.height, 256);
  EXPECT_EQ(go.width, 320);
  EXPECT_EQ(go.seed, 7u);
  EXPECT_EQ(go.batch_size, 3);
  EXPECT_EQ(go.noise, NoiseMode::Diffusers);
  EXPECT_TRUE(go.allow_nonfinite);
  EXPECT_TRUE(go.hooks.empty());  // methods are attached by the run layer (accel/spec_run.hpp)

  s.dtype = "fp16";  // half precision is CUDA-only: refused where the options are made
  EXPECT_THROW(s.model_options(), UsageError);
}

// dtype fp8: the UNet's token GEMMs in e4m3 around the dtype the device computes in otherwise (fp32 on the
// CPU, fp16 on CUDA), which is also the baseline's: fp8 changes the images, so it is measured against it.
TEST(Spec, Fp8IsMeasuredAgainstItsPrecisionDtype) {
  auto s = parse_spec("[pipeline]\nmodel = 'm'\ndtype = 'fp8'\n", "/specs/f.toml");
  EXPECT_EQ(s.dtype, "fp8");
  EXPECT_EQ(s.precision_dtype(), "fp32");
  const ModelOptions mo = s.model_options();
  EXPECT_TRUE(mo.fp8);
  EXPECT_EQ(mo.dtype, at::kFloat);
  const PipelineSpec b = s.baseline();
  EXPECT_EQ(b.dtype, "fp32");
  EXPECT_FALSE(b.model_options().fp8);
  EXPECT_EQ(spec_differences(b, s), std::vector<std::string>({"dtype: fp32 vs fp8"}));
  s.device = "cuda:0";
  EXPECT_EQ(s.precision_dtype(), "fp16");
  EXPECT_EQ(s.baseline().dtype, "fp16");
  s.dtype = "fp16";
  EXPECT_EQ(s.baseline().dtype, "fp16");  // other dtypes are the baseline's too

  // the example says its baseline is examples/sd15-baseline.toml
  const std::filesystem::path examples = std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "examples";
  const PipelineSpec fp8 = parse_spec(read_regular_file(examples / "sd15-fp8.toml"), examples / "sd15-fp8.toml");
  const PipelineSpec base =
      parse_spec(read_regular_file(examples / "sd15-baseline.toml"), examples / "sd15-baseline.toml");
  EXPECT_EQ(fp8.dtype, "fp8");
  EXPECT_EQ(fp8.baseline().model_ref, base.model_ref);
  EXPECT_TRUE(spec_differences(fp8.baseline(), base).empty());
}

// "demo" is resolved where the spec is read: the spec's folder is not prepended and the model
// becomes the bundled demo's folder, while model_ref keeps what was written.
TEST(Spec, DemoAliasIsResolvedOnce) {
  auto s = parse_spec("[pipeline]\nmodel = 'demo'\n", "/specs/d.toml");
  EXPECT_EQ(s.model, std::filesystem::path("demo"));
  if (!std::filesystem::exists(assets_dir() / "demo" / "sd")) GTEST_SKIP() << "no bundled demo model";
  resolve_spec_model(s);
  EXPECT_EQ(s.model, demo_asset("sd"));
  EXPECT_EQ(s.model_ref, "demo");
  EXPECT_EQ(s.to_json()["model_ref"], "demo");
}
