// import-py's interpreter state (eval/pyimport.cpp walks statements and expressions,
// eval/pyimport_forms.cpp holds the diffusers / DeepCache / tomesd / tgate forms).
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/eval/pyimport.hpp"

namespace diffbench::py {

using json = nlohmann::json;

// What a Python expression is known to be.
enum class Kind {
  Unknown,      // anything diffbench does not follow (a read of it changes nothing)
  Const,        // str, int, float, bool, None
  Module,       // an imported module: name = its dotted name
  Symbol,       // a name inside a module: "diffusers.StableDiffusionPipeline", "torch.float16"
  Pipe,         // the pipeline
  Component,    // pipe.unet, pipe.vae, ...: name = the attribute
  SchedConfig,  // pipe.scheduler.config
  Scheduler,    // a scheduler built from the pipeline's config: name = diffbench's name
  Helper,       // a DeepCacheSDHelper: index into Interp::helpers_
  Function,     // a def: node
  Tuple,        // items
};

struct Value {
  Kind kind = Kind::Unknown;
  json c;
  std::string name;
  json options = json::object();  // Scheduler: keyword options
  int index = -1;
  const json* node = nullptr;
  std::vector<Value> items;

  static Value constant(json v) { Value x; x.kind = Kind::Const; x.c = std::move(v); return x; }
  static Value module(std::string n) { Value x; x.kind = Kind::Module; x.name = std::move(n); return x; }
  static Value symbol(std::string n) { Value x; x.kind = Kind::Symbol; x.name = std::move(n); return x; }
  static Value component(std::string n) { Value x; x.kind = Kind::Component; x.name = std::move(n); return x; }
};

struct Args {
  std::vector<Value> pos;
  std::vector<std::pair<std::string, Value>> kw;
  bool opaque = false;  // *args or **kwargs present
  const Value* get(const std::string& key, size_t position = SIZE_MAX) const {
    for (const auto& [k, v] : kw)
      if (k == key) return &v;
    return position < pos.size() ? &pos[position] : nullptr;
  }
};

const std::set<std::string> kComponents = {"unet", "vae", "text_encoder", "tokenizer", "scheduler",
                                           "safety_checker", "feature_extractor", "image_encoder"};

// A value from a line, for conflicting settings.
struct Setting {
  json value;
  int line = 0;
};

struct Accel {
  std::string method;  // "deepcache", "tome", "tgate"
  int helper = -1;     // deepcache: the helper whose params apply
  json params = json::object();
  int line = 0;
};

class Interp {
 public:
  explicit Interp(std::filesystem::path file);
  void exec_block(const json& body);
  PyImport result();

 private:
  struct Scope {
    std::map<std::string, Value> vars;
    std::set<std::string> globals;
    bool comprehension = false;  // sees the enclosing function's names
  };
  struct Current {
    const json* stmt = nullptr;
    std::vector<std::string> became;
    std::string why;
  };

  // pyimport.cpp: statements and expressions
  void exec_stmt(const json& s);
  Value eval(const json& e);
  Value binop(const Value& a, const std::string& op, const Value& b);
  Value attribute(const Value& base, const std::string& attr);
  Value call(const json& e);
  Args eval_args(const json& e);
  Value symbol_call(const std::string& name, const Args& args, const json& e);
  Value call_function(const json& def, const Args& args, const json& e);
  void refuse_if_touches_pipe(const Args& args, const json& node, const std::string& what);

  // pyimport_forms.cpp: the recognised forms
  Value create_pipe(const std::string& cls, const Args& args, const json& e, bool single_file = false);
  Value pipe_method(const std::string& attr, const Args& args, const json& e);
  Value component_method(const std::string& comp, const std::string& attr, const Args& args, const json& e);
  Value helper_method(int helper, const std::string& attr, const Args& args, const json& e);
  Value make_scheduler_value(const std::string& cls, const std::string& how, const Args& args, const json& e);
  Value create_helper(const Args& args, const json& e);
  Value tome(bool apply, const Args& args, const json& e);
  Value tgate_loader(const std::string& cls, const Args& args, const json& e);
  Value generation_call(const Args& args, const json& e, bool tgate);
  void set_device_dtype(const Args& args, const json& e);
  void assign_attribute(const json& target, const Value& v);

  // bookkeeping (pyimport_forms.cpp)
  Value lookup(const std::string& name) const;
  void assign_name(const std::string& name, const Value& v);
  void bind_target(const json& target, const Value& v);
  bool touches_pipe_target(const json& target);
  static bool is_node_type(const json& j, const char* type);
  bool mentions_pipe(const json& node) const;
  void push_scope(bool comprehension = false) {
    scopes_.emplace_back();
    scopes_.back().comprehension = comprehension;
  }
  void pop_scope() { scopes_.pop_back(); }
  void begin(const json& stmt);
  void end(const std::string& why);
  void note(const std::string& why);
  void became(const std::string& what);
  [[noreturn]] void refuse(const json& node, const std::string& why) const;
  std::string where(const json& node) const;
  std::string text(const json& stmt) const;
  json need_const(const Value* v, const json& e, const std::string& what, const char* type);
  void setting(std::optional<Setting>& slot, const json& value, const json& e, const std::string& key);
  Accel* find_accel(const std::string& method);

  std::filesystem::path file_;
  std::vector<Scope> scopes_;
  Current current_;
  int call_depth_ = 0;
  bool returning_ = false;
  Value return_value_;

  bool have_pipe_ = false;
  int pipe_line_ = 0;
  std::string pipe_class_, model_, revision_, variant_, cache_dir_, dtype_ = "fp32", device_ = "cpu";
  std::string scheduler_;
  json scheduler_options_ = json::object();
  std::string model_config_, prediction_type_;  // from_single_file(config=..., prediction_type=...)
  struct Lora {
    std::string file;
    double scale = 1.0;
    bool fused = false;
  };
  std::vector<Lora> loras_;  // load_lora_weights, in order; fuse_lora sets the scale of those not yet fused
  Value lora_method(const std::string& attr, const Args& args, const json& e);
  std::vector<json> helpers_;  // DeepCache helpers' params
  std::vector<Accel> accel_;   // in the order they were applied
  bool tgate_loaded_ = false;
  std::optional<Setting> steps_, guidance_, guidance_rescale_, height_, width_;
  json tgate_params_ = json::object();
  json statements_ = json::array(), ignored_ = json::array();
};

}  // namespace diffbench::py
