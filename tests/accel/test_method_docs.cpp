// `diffbench methods` and docs/methods.md, both from the methods' own parameter declarations.
#include <fstream>
#include <iterator>

#include "cli/cli_support.hpp"
#include "diffbench/accel/method_docs.hpp"
#include "test_support.hpp"

using namespace diffbench;

TEST(MethodDocs, DocsFileIsGeneratedFromTheDeclarations) {
  std::ifstream in(std::filesystem::path(DIFFBENCH_SOURCE_DIR) / "docs" / "methods.md");
  ASSERT_TRUE(in) << "docs/methods.md is missing";
  const std::string committed((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  EXPECT_EQ(committed, render_methods_markdown(describe_methods()))
      << "docs/methods.md is out of date: regenerate it with `build/bin/diffbench methods --markdown > docs/methods.md`";
}

TEST(MethodDocs, EveryParameterWithTypeDefaultRangeAndHelp) {
  const auto methods = describe_methods();
  const MethodRegistry registry = MethodRegistry::with_builtins();
  ASSERT_EQ(methods.size(), registry.names().size());
  for (const auto& m : methods) {
    const MethodInfo* info = registry.find(m["name"]);
    ASSERT_NE(info, nullptr);
    ASSERT_EQ(m["params"].size(), info->params.size()) << m["name"];
    for (size_t i = 0; i < info->params.size(); ++i) {
      EXPECT_EQ(m["params"][i]["name"], info->params[i].name);
      EXPECT_EQ(m["params"][i]["default"], info->params[i].default_value);
      EXPECT_FALSE(m["params"][i]["help"].get<std::string>().empty()) << info->params[i].name;
    }
  }
  const auto& deepcache = methods[0];
  ASSERT_EQ(deepcache["name"], "deepcache");
  EXPECT_EQ(deepcache["params"][0]["range"], ">= 1");
  EXPECT_EQ(deepcache["params"][1]["range"], "[0, 11]");
  EXPECT_EQ(deepcache["params"][2]["range"], "one of: uniform, non-uniform");
  EXPECT_EQ(deepcache["params"][4]["range"], "> 1");
  EXPECT_EQ(deepcache["params"][4]["type"], "float");
}

TEST(MethodDocs, Command) {
  auto r = run_diffbench("methods deepcache");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  EXPECT_EQ(r.output.rfind("deepcache: DeepCache: ", 0), 0u) << r.output;
  EXPECT_NE(r.output.find("  cache_interval (int, default 3, >= 1): a full UNet call every N steps"), std::string::npos)
      << r.output;
  EXPECT_EQ(r.output.find("tome"), std::string::npos);
  r = run_diffbench("methods");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  for (const char* name : {"\ndeepcache: ", "\ntgate: ", "\ntome: "})
    EXPECT_NE(("\n" + r.output).find(name), std::string::npos) << name;
  EXPECT_NE(r.output.find("  ratio (float, default 0.5, [0, 1]): "), std::string::npos) << r.output;
  r = run_diffbench("methods --json tgate");
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto j = nlohmann::json::parse(r.output);
  EXPECT_EQ(j["name"], "tgate");
  EXPECT_EQ(j["params"][0]["name"], "gate_step");
  r = run_diffbench("methods nosuch");
  EXPECT_EQ(r.exit_code, 2);
  EXPECT_NE(r.output.find("unknown method 'nosuch' (known: deepcache, tgate, tome;"), std::string::npos) << r.output;
  // A plugin's methods, marked with their library.
  r = run_diffbench("methods --json --plugin " + shell_quote(DIFFBENCH_SKIP_DEEPEST_PLUGIN));
  ASSERT_EQ(r.exit_code, 0) << r.output;
  const auto all = nlohmann::json::parse(r.output);
  bool plugin = false;
  for (const auto& m : all)
    if (m["name"] == "skip_deepest") plugin = m["plugin"] == DIFFBENCH_SKIP_DEEPEST_PLUGIN;
  EXPECT_TRUE(plugin) << r.output;
  r = run_diffbench("methods --plugin " + shell_quote(DIFFBENCH_NO_ENTRY_PLUGIN));
  EXPECT_EQ(r.exit_code, 2) << r.output;
}
