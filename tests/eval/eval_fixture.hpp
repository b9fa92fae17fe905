// The fixture of the eval command's end-to-end tests: tiny-sd, the tiny-clip scorer and the COCO
// captions from ../shared, a fresh temporary folder per test, and specs written into it.
#pragma once

#include <fstream>
#include <string>

#include "cli/cli_support.hpp"
#include "test_support.hpp"

namespace diffbench::test {

class EvalFixture : public ::testing::Test {
 protected:
  void SetUp() override {
    DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-sd/model_index.json"));
    DIFFBENCH_REQUIRE_FIXTURE(fixture("tiny-clip/config.json"));
    DIFFBENCH_REQUIRE_FIXTURE(shared_data("captions_val2017.json"));
    dir_ = temp_dir(::testing::UnitTest::GetInstance()->current_test_info()->name());
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  std::filesystem::path write_spec(const std::string& name, const std::string& body) {
    auto p = dir_ / (name + ".toml");
    std::ofstream(p) << body;
    return p;
  }

  std::filesystem::path dir_;
};

}  // namespace diffbench::test
