// make_scheduler: picks a scheduler class by name or by the base config's _class_name.
#include <utility>

#include "schedulers/common.hpp"

namespace diffbench {

Scheduler::~Scheduler() = default;

namespace {

using Maker = std::unique_ptr<Scheduler> (*)(const nlohmann::json&, const std::string&);

struct Entry {
  const char* name;
  const char* class_name;
  Maker make;
};

const Entry kSchedulers[] = {
    {"pndm", "PNDMScheduler", &sched::make_pndm},
    {"ddim", "DDIMScheduler", &sched::make_ddim},
    {"euler", "EulerDiscreteScheduler", &sched::make_euler},
    {"euler_a", "EulerAncestralDiscreteScheduler", &sched::make_euler_ancestral},
    {"dpmpp_2m", "DPMSolverMultistepScheduler", &sched::make_dpm_solver_multistep},
};

std::string joined(bool class_names) {
  std::string out;
  for (const auto& e : kSchedulers) out += (out.empty() ? "" : ", ") + std::string(class_names ? e.class_name : e.name);
  return out;
}

}  // namespace

std::vector<std::string> scheduler_names() {
  std::vector<std::string> names;
  for (const auto& e : kSchedulers) names.emplace_back(e.name);
  return names;
}

std::unique_ptr<Scheduler> make_scheduler(const std::string& name, const nlohmann::json& base_config,
                                          const std::string& source) {
  if (!base_config.is_object()) throw InputError("a scheduler config must be a JSON object", source);
  if (name.empty() || name == "default") {
    auto it = base_config.find("_class_name");
    if (it == base_config.end() || !it->is_string())
      throw InputError("the scheduler config has no _class_name; name a scheduler (" + joined(false) + ")", source);
    for (const auto& e : kSchedulers)
      if (*it == e.class_name) return e.make(base_config, source);
    throw InputError("scheduler class '" + it->get<std::string>() + "' is not supported (supported: " +
                         joined(true) + "); name one of: " + joined(false),
                     source);
  }
  for (const auto& e : kSchedulers)
    if (name == e.name) return e.make(base_config, source);
  throw UsageError("unknown scheduler '" + name + "' (valid: default, " + joined(false) + ")", "scheduler name");
}

}  // namespace diffbench
