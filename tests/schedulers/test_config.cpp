// Resolved configs: Scheduler.from_config(tiny-sd's PNDM config) as diffusers records it, and the
// errors for names and values the schedulers cannot use.
#include <gtest/gtest.h>

#include <fstream>
#include <set>
#include <sstream>
#include <string>

#include "diffbench/io/json_config.hpp"
#include "diffbench/schedulers/scheduler.hpp"
#include "test_support.hpp"

using namespace diffbench;

namespace {

// Python's json writes -Infinity as a bare word, which is not JSON; read it as a string.
nlohmann::json read_python_json(const std::filesystem::path& path) {
  std::ifstream in(path);
  std::stringstream buf;
  buf << in.rdbuf();
  std::string text = buf.str();
  for (size_t at = text.find("-Infinity"); at != std::string::npos; at = text.find("-Infinity", at + 11))
    text.replace(at, 9, "\"-Infinity\"");
  return nlohmann::json::parse(text);
}

std::set<std::string> as_set(const nlohmann::json& list) {
  return std::set<std::string>(list.begin(), list.end());
}

// Every key diffusers recorded (except its version) has the same value in ours.
void expect_config_matches(const nlohmann::json& ours, const nlohmann::json& expected) {
  for (const auto& [key, value] : expected.items()) {
    if (key == "_diffusers_version") continue;
    SCOPED_TRACE(key);
    ASSERT_TRUE(ours.contains(key)) << "missing key";
    if (key == "_use_default_values") {
      EXPECT_EQ(as_set(ours[key]), as_set(value));
    } else if (value.is_string() && value == "-Infinity") {
      ASSERT_TRUE(ours[key].is_number());
      EXPECT_TRUE(std::isinf(ours[key].get<double>()) && ours[key].get<double>() < 0);
    } else {
      EXPECT_EQ(ours[key], value) << "ours " << ours[key].dump() << ", diffusers " << value.dump();
    }
  }
}

nlohmann::json sd15_config() {
  return {{"_class_name", "PNDMScheduler"}, {"beta_end", 0.012},          {"beta_schedule", "scaled_linear"},
          {"beta_start", 0.00085},          {"num_train_timesteps", 1000}, {"prediction_type", "epsilon"},
          {"set_alpha_to_one", false},      {"skip_prk_steps", true},      {"steps_offset", 1},
          {"timestep_spacing", "leading"},  {"trained_betas", nullptr}};
}

}  // namespace

TEST(SchedulerConfig, FromTinySdConfigMatchesDiffusers) {
  const auto base_path = test::fixture("tiny-sd/scheduler/scheduler_config.json");
  DIFFBENCH_REQUIRE_FIXTURE(base_path);
  const auto base = read_json_file(base_path);
  const std::pair<const char*, const char*> runs[] = {
      {"ddim", "scheduler_ddim20.json"},
      {"euler", "scheduler_euler20.json"},
      {"euler_a", "scheduler_euler_a20.json"},
      {"dpmpp_2m", "scheduler_dpmpp2m20.json"},
  };
  for (const auto& [name, file] : runs) {
    SCOPED_TRACE(name);
    const auto expected_path = test::fixture(file);
    DIFFBENCH_REQUIRE_FIXTURE(expected_path);
    auto s = make_scheduler(name, base, base_path.string());
    EXPECT_EQ(s->name(), name);
    expect_config_matches(s->config(), read_python_json(expected_path));
  }
}

TEST(SchedulerConfig, DefaultIsTheConfigsClass) {
  const auto base_path = test::fixture("tiny-sd/scheduler/scheduler_config.json");
  DIFFBENCH_REQUIRE_FIXTURE(base_path);
  const auto base = read_json_file(base_path);
  for (const char* name : {"", "default"}) {
    auto s = make_scheduler(name, base, base_path.string());
    EXPECT_EQ(s->name(), "pndm");
    auto expected = base;
    expected.erase("_diffusers_version");
    expect_config_matches(s->config(), expected);
    EXPECT_FALSE(s->config().contains("_use_default_values"));  // every PNDM key is in the file
  }
}

TEST(SchedulerConfig, ClassDefaultsAndUseDefaultValues) {
  // Keys listed in _use_default_values are not taken (diffusers' extract_init_dict).
  auto base = sd15_config();
  base["_use_default_values"] = {"steps_offset"};
  auto s = make_scheduler("ddim", base, "test");
  const auto cfg = s->config();
  EXPECT_EQ(cfg["steps_offset"], 0);
  EXPECT_EQ(cfg["clip_sample"], true);
  EXPECT_EQ(cfg["set_alpha_to_one"], false);  // taken from the PNDM config
  EXPECT_EQ(cfg["_class_name"], "DDIMScheduler");
  EXPECT_EQ(cfg["skip_prk_steps"], true);  // other keys pass through, as diffusers records them
  auto defaulted = as_set(cfg["_use_default_values"]);
  EXPECT_TRUE(defaulted.count("steps_offset"));
  EXPECT_TRUE(defaulted.count("clip_sample"));
  EXPECT_FALSE(defaulted.count("beta_start"));
  s->set_timesteps(20);
  EXPECT_EQ(s->timesteps().front(), 950);  // offset 0

  auto euler = make_scheduler("default", {{"_class_name", "EulerDiscreteScheduler"}}, "test");
  EXPECT_EQ(euler->config()["timestep_spacing"], "linspace");
  EXPECT_EQ(euler->config()["beta_schedule"], "linear");
}

TEST(SchedulerConfig, ResolvedConfigRebuildsTheSameScheduler) {
  for (const auto& name : scheduler_names()) {
    SCOPED_TRACE(name);
    auto s = make_scheduler(name, sd15_config(), "test");
    auto again = make_scheduler("default", s->config(), "resolved");
    EXPECT_EQ(again->name(), name);
    auto a = s->config(), b = again->config();
    a.erase("_use_default_values");
    b.erase("_use_default_values");
    EXPECT_EQ(a.dump(), b.dump());
    auto clone = s->clone_fresh();
    EXPECT_EQ(clone->config(), s->config());
  }
}

// ----------------------------------------------------------------------------------------------
// Errors

TEST(SchedulerConfig, UnknownNameIsAUsageErrorListingTheNames) {
  try {
    make_scheduler("lms", sd15_config(), "test");
    FAIL() << "no error";
  } catch (const UsageError& e) {
    for (const auto& n : scheduler_names()) EXPECT_NE(std::string(e.what()).find(n), std::string::npos) << n;
  }
  EXPECT_EQ(scheduler_names(), (std::vector<std::string>{"pndm", "ddim", "euler", "euler_a", "dpmpp_2m"}));
}

TEST(SchedulerConfig, DefaultNeedsAKnownClass) {
  EXPECT_THROW(make_scheduler("default", {{"beta_start", 0.1}}, "cfg.json"), InputError);
  try {
    make_scheduler("", {{"_class_name", "LMSDiscreteScheduler"}}, "cfg.json");
    FAIL() << "no error";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), "cfg.json");
    EXPECT_NE(std::string(e.what()).find("LMSDiscreteScheduler"), std::string::npos);
  }
  EXPECT_THROW(make_scheduler("ddim", nlohmann::json::array(), "cfg.json"), InputError);
}

TEST(SchedulerConfig, UnusableValuesAreInputErrorsNamingKeyAndSource) {
  struct Bad {
    const char* scheduler;
    const char* key;
    nlohmann::json value;
  };
  const Bad cases[] = {
      {"pndm", "beta_schedule", "cosine"},
      {"ddim", "beta_schedule", "sigmoid"},
      {"pndm", "prediction_type", "sample"},  // PNDM supports epsilon and v_prediction only
      {"ddim", "prediction_type", "x0"},
      {"euler", "prediction_type", "flow"},
      {"euler_a", "prediction_type", "sample"},  // not implemented in diffusers either
      {"dpmpp_2m", "prediction_type", "flow_prediction"},
      {"pndm", "timestep_spacing", "uniform"},
      {"ddim", "timestep_spacing", "uniform"},
      {"euler", "timestep_spacing", "karras"},
      {"euler_a", "timestep_spacing", "x"},
      {"dpmpp_2m", "timestep_spacing", "x"},
      {"dpmpp_2m", "algorithm_type", "sde-dpmsolver++"},
      {"dpmpp_2m", "solver_type", "rk4"},
      {"dpmpp_2m", "solver_order", 4},
      {"dpmpp_2m", "use_karras_sigmas", true},
      {"dpmpp_2m", "thresholding", true},
      {"ddim", "thresholding", true},
      {"euler", "interpolation_type", "log_linear"},
      {"euler", "use_exponential_sigmas", true},
      {"euler", "final_sigmas_type", "max"},
      {"ddim", "num_train_timesteps", "many"},  // wrong type
      {"ddim", "clip_sample", 3},               // wrong type
      {"euler", "trained_betas", {0.1, 0.2}},   // wrong length
  };
  for (const auto& bad : cases) {
    SCOPED_TRACE(std::string(bad.scheduler) + " " + bad.key);
    auto cfg = sd15_config();
    cfg[bad.key] = bad.value;
    try {
      make_scheduler(bad.scheduler, cfg, "some/scheduler_config.json");
      ADD_FAILURE() << "no error";
    } catch (const InputError& e) {
      EXPECT_EQ(e.where(), "some/scheduler_config.json");
      EXPECT_NE(e.message().find(bad.key), std::string::npos) << e.what();
    }
  }
}

TEST(SchedulerConfig, StepUsageErrors) {
  for (const auto& name : scheduler_names()) {
    SCOPED_TRACE(name);
    auto s = make_scheduler(name, sd15_config(), "test");
    auto x = at::zeros({1, 4, 2, 2});
    NoiseFn noise = [](const at::Tensor& like) { return at::zeros_like(like); };
    EXPECT_THROW(s->step(x, 0, x, noise), UsageError);  // before set_timesteps
    EXPECT_THROW(s->set_timesteps(0), UsageError);
    EXPECT_THROW(s->set_timesteps(1001), UsageError);
    s->set_timesteps(10);
    EXPECT_THROW(s->step(x, 1, x, noise), UsageError);  // out of order
    EXPECT_THROW(s->scale_model_input(x, s->timesteps().size()), UsageError);
    s->step(x, 0, x, noise);
    EXPECT_THROW(s->step(x, 0, x, noise), UsageError);  // repeated
  }
  // "leading" with steps_offset 1 and 1000 steps reaches timestep 1000, past the schedule
  // (diffusers fails in step(); this fails in set_timesteps()).
  for (const char* name : {"pndm", "ddim"})
    EXPECT_THROW(make_scheduler(name, sd15_config(), "t")->set_timesteps(1000), UsageError) << name;
}
