// An example diffbench plugin: "skip_deepest" reuses the UNet's deepest block (the mid block)
// on all but every `interval`-th UNet call, a static cache in the spirit of DeepCache.
//
//   [[accelerate]]
//   method = "skip_deepest"
//   plugin = "build/lib/libskip_deepest.so"
//   interval = 2
//
// Build it like this project does (examples/plugins/plugins.cmake) or on its own against an
// installed diffbench: a shared library linked with diffbench and LibTorch. See docs/plugins.md.
#include <diffbench/accel/plugin.hpp>

DIFFBENCH_PLUGIN()

namespace {

using namespace diffbench;

class SkipDeepest : public Method {
 public:
  explicit SkipDeepest(int64_t interval) : interval_(interval) {}

  std::string name() const override { return "skip_deepest"; }
  nlohmann::json params() const override { return {{"interval", interval_}}; }
  nlohmann::json stats() const override { return {{"unet_calls", calls_}, {"reused", reused_}}; }
  void reset_stats() override { calls_ = reused_ = 0; }

  // A new generation starts from nothing.
  void begin_generation(const GenerationInfo&) override { cached_ = at::Tensor(); }

  void begin_call(const UNetCallInfo& info) override {
    ++calls_;
    // Reuse on calls between full ones, when the cache fits this call's batch.
    reuse_ = info.step % static_cast<size_t>(interval_) != 0 && cached_.defined() && cached_.size(0) == info.batch;
  }

  std::optional<ModuleOutput> before_module(const ModuleId& id) override {
    if (!reuse_ || !is_mid_block(id)) return std::nullopt;
    ++reused_;
    return ModuleOutput{cached_, {}};
  }

  void after_module(const ModuleId& id, const ModuleOutput& output) override {
    if (is_mid_block(id)) cached_ = output.hidden;
  }

 private:
  static bool is_mid_block(const ModuleId& id) { return id.section == UNetSection::Mid && id.kind == ModuleKind::Block; }

  int64_t interval_;
  at::Tensor cached_;
  bool reuse_ = false;
  int64_t calls_ = 0, reused_ = 0;
};

}  // namespace

DIFFBENCH_PLUGIN_EXPORT void diffbench_register_methods(diffbench::MethodRegistry* registry) {
  diffbench::MethodInfo info;
  info.name = "skip_deepest";
  info.description = "reuse the mid block's output on all but every interval-th UNet call (example plugin)";
  diffbench::ParamSpec interval;
  interval.name = "interval";
  interval.type = diffbench::ParamSpec::Type::Int;
  interval.default_value = 2;
  interval.min = 1;
  interval.help = "compute the mid block on every interval-th call, reuse it in between";
  info.params.push_back(interval);
  info.create = [](const diffbench::MethodParams& p) -> std::unique_ptr<diffbench::Method> {
    return std::make_unique<SkipDeepest>(p.get_int("interval"));
  };
  registry->add(std::move(info));
}
