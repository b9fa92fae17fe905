// import-py: the diffusers, DeepCache, tomesd and T-GATE forms, the statement table, the spec.
#include <algorithm>
#include <sstream>

#include "diffbench/error.hpp"
#include "diffbench/schedulers/scheduler.hpp"
#include "eval/pyimport_state.hpp"

namespace diffbench::py {

namespace fs = std::filesystem;

namespace {

const std::map<std::string, std::string> kSchedulers = {{"PNDMScheduler", "pndm"},
                                                        {"DDIMScheduler", "ddim"},
                                                        {"EulerDiscreteScheduler", "euler"},
                                                        {"EulerAncestralDiscreteScheduler", "euler_a"},
                                                        {"DPMSolverMultistepScheduler", "dpmpp_2m"}};

// Keyword arguments of the pipeline call that the evaluator's protocol decides.
const std::set<std::string> kProtocolArgs = {"prompt", "generator", "num_images_per_prompt", "output_type",
                                             "return_dict", "callback", "callback_steps", "callback_on_step_end",
                                             "callback_on_step_end_tensor_inputs"};

// from_pretrained options that do not change what runs.
const std::set<std::string> kLoadOptions = {"safety_checker", "requires_safety_checker", "feature_extractor",
                                            "use_safetensors", "local_files_only", "low_cpu_mem_usage",
                                            "token", "use_auth_token", "force_download", "resume_download"};

std::string joined(const std::vector<std::string>& parts, const char* sep) {
  std::string out;
  for (const auto& p : parts) out += (out.empty() ? "" : sep) + p;
  return out;
}

std::string params_text(const json& params) {
  std::vector<std::string> parts;
  for (auto it = params.begin(); it != params.end(); ++it) parts.push_back(it.key() + "=" + it.value().dump());
  return joined(parts, " ");
}

std::string dtype_of(const Value& v) {
  std::string n = v.kind == Kind::Symbol ? v.name.substr(v.name.rfind('.') + 1)
                  : v.kind == Kind::Const && v.c.is_string() ? v.c.get<std::string>()
                                                             : "";
  if (n == "float16" || n == "half") return "fp16";
  if (n == "bfloat16") return "bf16";
  if (n == "float32" || n == "float") return "fp32";
  return "";
}

bool is_device(const std::string& d) {
  if (d == "cpu" || d == "cuda") return true;
  if (d.rfind("cuda:", 0) != 0 || d.size() == 5) return false;
  return d.find_first_not_of("0123456789", 5) == std::string::npos;
}

}  // namespace

Interp::Interp(fs::path file) : file_(std::move(file)) { scopes_.emplace_back(); }

// ---- bookkeeping -------------------------------------------------------------------------------

Value Interp::lookup(const std::string& name) const {
  // Comprehensions, then the innermost function, then the module (no closures over other functions).
  for (size_t i = scopes_.size(); i-- > 0;) {
    auto it = scopes_[i].vars.find(name);
    if (it != scopes_[i].vars.end()) return it->second;
    if (!scopes_[i].comprehension && i > 0) i = 1;  // skip to the module scope next
  }
  return {};
}

void Interp::assign_name(const std::string& name, const Value& v) {
  Scope& s = scopes_.back().globals.count(name) ? scopes_.front() : scopes_.back();
  s.vars[name] = v;
}

void Interp::bind_target(const json& target, const Value& v) {
  const std::string t = target.value("_t", "");
  if (t == "Name") return assign_name(target["id"], v);
  if (t == "Tuple" || t == "List") {
    const auto& elts = target["elts"];
    for (size_t i = 0; i < elts.size(); ++i)
      bind_target(is_node_type(elts[i], "Starred") ? elts[i]["value"] : elts[i],
                  v.kind == Kind::Tuple && v.items.size() == elts.size() ? v.items[i] : Value{});
    return;
  }
  if (t == "Attribute") return assign_attribute(target, v);
  if (touches_pipe_target(target)) refuse(target, "changes part of the pipeline");
  eval(target);
}

bool Interp::is_node_type(const json& j, const char* type) { return j.is_object() && j.value("_t", "") == type; }

bool Interp::touches_pipe_target(const json& target) {
  const json* n = &target;
  if (!is_node_type(*n, "Attribute") && !is_node_type(*n, "Subscript")) return false;
  while (is_node_type(*n, "Attribute") || is_node_type(*n, "Subscript")) n = &(*n)["value"];
  if (!is_node_type(*n, "Name")) return false;
  const Kind k = lookup((*n)["id"]).kind;
  return k == Kind::Pipe || k == Kind::Component || k == Kind::Helper;
}

bool Interp::mentions_pipe(const json& node) const {
  if (node.is_array()) {
    for (const auto& x : node)
      if (mentions_pipe(x)) return true;
    return false;
  }
  if (!node.is_object()) return false;
  if (node.value("_t", "") == "Name") {
    const Kind k = lookup(node["id"]).kind;
    return k == Kind::Pipe || k == Kind::Component || k == Kind::Helper;
  }
  for (auto it = node.begin(); it != node.end(); ++it)
    if ((it.value().is_object() || it.value().is_array()) && mentions_pipe(it.value())) return true;
  return false;
}

std::string Interp::text(const json& stmt) const {
  std::string out;
  bool space = false;
  for (char c : stmt.value("_src", std::string())) {
    if (c == '\n' || c == '\r' || c == '\t' || c == ' ') {
      space = !out.empty();
      continue;
    }
    if (space) out += ' ';
    space = false;
    out += c;
  }
  return out.size() > 200 ? out.substr(0, 197) + "..." : out;
}

std::string Interp::where(const json& node) const {
  int line = node.value("lineno", 0);
  if (!line && current_.stmt) line = current_.stmt->value("lineno", 0);
  return file_.string() + ":" + std::to_string(line);
}

void Interp::refuse(const json& node, const std::string& why) const {
  const std::string stmt = current_.stmt ? "`" + text(*current_.stmt) + "`: " : "";
  throw InputError(stmt + why + ". diffbench reads the file without running it and translates only the forms "
                              "listed in the README (\"Evaluate your own pipeline file\"); code that changes the "
                              "pipeline can be brought in as a plugin (docs/plugins.md)",
                   where(node));
}

void Interp::begin(const json& stmt) { current_ = Current{&stmt, {}, ""}; }

void Interp::end(const std::string& why) {
  if (!current_.stmt) return;
  const int line = current_.stmt->value("lineno", 0);
  if (!current_.became.empty())
    statements_.push_back({{"line", line}, {"text", text(*current_.stmt)}, {"became", joined(current_.became, "; ")}});
  else
    ignored_.push_back({{"line", line}, {"text", text(*current_.stmt)}, {"why", current_.why.empty() ? why : current_.why}});
  current_.stmt = nullptr;
}

void Interp::note(const std::string& why) { current_.why = why; }  // the outermost call, evaluated last, wins

void Interp::became(const std::string& what) { current_.became.push_back(what); }

json Interp::need_const(const Value* v, const json& e, const std::string& what, const char* type) {
  if (!v) return nullptr;
  if (v->kind != Kind::Const)
    refuse(e, "the value of " + what + " cannot be determined without running the file (a constant, or a name "
                                       "bound to one, is needed)");
  const std::string t = type;
  const json& c = v->c;
  const bool ok = t == "int" ? c.is_number_integer() : t == "number" ? c.is_number() && !c.is_boolean()
                  : t == "str"  ? c.is_string()
                  : t == "bool" ? c.is_boolean()
                                : true;
  if (!ok) refuse(e, what + " must be " + (t == "int" ? "an integer" : t == "number" ? "a number" : t == "str" ? "a string" : "True or False") +
                         " (got " + c.dump() + ")");
  return c;
}

void Interp::setting(std::optional<Setting>& slot, const json& value, const json& e, const std::string& key) {
  if (value.is_null()) return;
  const int line = e.value("lineno", 0);
  if (slot && slot->value != value)
    refuse(e, key + "=" + value.dump() + " here but " + slot->value.dump() + " at line " + std::to_string(slot->line) +
                  "; the spec has one value per setting");
  if (!slot) slot = Setting{value, line};
}

Accel* Interp::find_accel(const std::string& method) {
  for (auto& a : accel_)
    if (a.method == method && a.helper < 0) return &a;
  return nullptr;
}

// ---- the pipeline -------------------------------------------------------------------------------

Value Interp::create_pipe(const std::string& cls, const Args& args, const json& e, bool single_file) {
  const std::string how = single_file ? "from_single_file" : "from_pretrained";
  const std::string model_key = single_file ? "pretrained_model_link_or_path" : "pretrained_model_name_or_path";
  if (have_pipe_) refuse(e, "a second pipeline (the first is built at line " + std::to_string(pipe_line_) + "); diffbench evaluates one");
  if (args.opaque) refuse(e, how + " with *args or **kwargs diffbench cannot read statically");
  if (args.pos.size() > 1) refuse(e, how + " with more than one positional argument");
  const json model = need_const(args.get(model_key, 0), e, "the model id or folder", "str");
  if (model.is_null()) refuse(e, how + " without a model id or folder");
  model_ = model.get<std::string>();
  std::vector<std::string> what = {"model = \"" + model_ + "\""};
  for (const auto& [k, v] : args.kw) {
    if (k == model_key || kLoadOptions.count(k)) continue;
    if (single_file && (k == "config" || k == "prediction_type")) {
      const std::string s = need_const(&v, e, k, "str");
      (k == "config" ? model_config_ : prediction_type_) = s;
      what.push_back(k + " = \"" + s + "\"");
      continue;
    }
    if (k == "torch_dtype") {
      dtype_ = dtype_of(v);
      if (dtype_.empty()) refuse(e, "torch_dtype must be torch.float16, torch.bfloat16 or torch.float32");
      what.push_back("dtype = \"" + dtype_ + "\"");
    } else if (k == "variant" || k == "revision" || k == "cache_dir") {
      if (v.kind == Kind::Const && v.c.is_null()) continue;
      const std::string s = need_const(&v, e, k, "str");
      (k == "variant" ? variant_ : k == "revision" ? revision_ : cache_dir_) = s;
      what.push_back(k + " = \"" + s + "\"");
    } else if (k == "scheduler" && v.kind == Kind::Scheduler) {
      if (v.c.is_string() && v.c != model_) refuse(e, "the scheduler comes from another model (" + v.c.get<std::string>() + ")");
      scheduler_ = v.name;
      scheduler_options_ = v.options;
      what.push_back("scheduler = \"" + scheduler_ + "\"");
    } else {
      refuse(e, "from_pretrained option '" + k + "' is not translated (replacing a component changes the model)");
    }
  }
  have_pipe_ = true;
  pipe_line_ = e.value("lineno", 0);
  pipe_class_ = cls;
  became(joined(what, ", "));
  Value p;
  p.kind = Kind::Pipe;
  return p;
}

void Interp::set_device_dtype(const Args& args, const json& e) {
  if (args.opaque) refuse(e, ".to() with *args or **kwargs diffbench cannot read statically");
  std::vector<std::string> what;
  auto take = [&](const Value& v, bool dtype_only) {
    if (const std::string d = dtype_of(v); !d.empty() && v.kind == Kind::Symbol) {
      dtype_ = d;
      what.push_back("dtype = \"" + d + "\"");
      return;
    }
    if (v.kind == Kind::Const && v.c.is_null()) return;
    if (dtype_only) refuse(e, "dtype must be torch.float16, torch.bfloat16 or torch.float32");
    if (v.kind != Kind::Const || !v.c.is_string()) refuse(e, "the device cannot be determined without running the file");
    const std::string d = v.c;
    if (!is_device(d)) refuse(e, "device '" + d + "': diffbench runs on cpu, cuda or cuda:N");
    device_ = d;
    what.push_back("device = \"" + d + "\"");
  };
  for (const auto& v : args.pos) take(v, false);
  for (const auto& [k, v] : args.kw) {
    if (k == "device" || k == "torch_device") take(v, false);
    else if (k == "dtype" || k == "torch_dtype") take(v, true);
    else if (k != "silence_dtype_warnings") refuse(e, ".to() option '" + k + "' is not translated");
  }
  if (!what.empty()) became(joined(what, ", "));
}

Value Interp::pipe_method(const std::string& attr, const Args& args, const json& e) {
  Value pipe;
  pipe.kind = Kind::Pipe;
  if (attr == "to") {
    set_device_dtype(args, e);
    return pipe;
  }
  if (attr == "tgate") {
    if (!tgate_loaded_) refuse(e, "pipe.tgate(...) without a T-GATE loader (TgateSDLoader, TgateSDDeepCacheLoader or their SDXL forms)");
    return generation_call(args, e, true);
  }
  if (attr == "__call__") return generation_call(args, e, false);
  if (attr.find("attention_slicing") != std::string::npos || attr.find("vae_slicing") != std::string::npos ||
      attr.find("vae_tiling") != std::string::npos) {
    note("memory option: does not change the images; diffbench runs attention and the VAE whole");
    return {};
  }
  if (attr.find("xformers_memory_efficient_attention") != std::string::npos) {
    note("attention backend: diffbench runs its own attention");
    return {};
  }
  if (attr == "set_progress_bar_config") {
    note("progress bar");
    return {};
  }
  if (attr == "save_pretrained") {
    note("saves the pipeline");
    return {};
  }
  if (attr == "load_lora_weights" || attr == "fuse_lora") return lora_method(attr, args, e);
  refuse(e, "pipe." + attr + "(...) changes the pipeline in a way diffbench does not translate");
}

// pipe.load_lora_weights(PATH[, weight_name=FILE][, adapter_name=...]) and pipe.fuse_lora(lora_scale=S):
// a loaded LoRA acts at scale 1 until fuse_lora fuses it at lora_scale; diffbench fuses at load either way.
Value Interp::lora_method(const std::string& attr, const Args& args, const json& e) {
  if (args.opaque) refuse(e, "pipe." + attr + " with *args or **kwargs diffbench cannot read statically");
  if (attr == "load_lora_weights") {
    const json path = need_const(args.get("pretrained_model_name_or_path_or_dict", 0), e, "the LoRA file or folder", "str");
    if (path.is_null()) refuse(e, "load_lora_weights without a file or folder");
    std::string weight_name;
    for (const auto& [k, v] : args.kw) {
      if (k == "pretrained_model_name_or_path_or_dict" || k == "adapter_name" || kLoadOptions.count(k)) continue;
      if (k == "weight_name") weight_name = need_const(&v, e, k, "str").get<std::string>();
      else refuse(e, "load_lora_weights option '" + k + "' is not translated");
    }
    fs::path file = path.get<std::string>();
    if (!weight_name.empty()) file /= weight_name;
    else if (file.extension() != ".safetensors") file /= "pytorch_lora_weights.safetensors";  // diffusers' default name
    loras_.push_back({file.string(), 1.0, false});
    became("[[lora]] file = \"" + file.string() + "\"");
    return {};
  }
  double scale = 1.0;
  for (const auto& [k, v] : args.kw) {
    if (k != "lora_scale") refuse(e, "fuse_lora option '" + k + "' is not translated (only lora_scale)");
    const json c = need_const(&v, e, k, "number");
    if (!c.is_number()) refuse(e, "fuse_lora(lora_scale=...) must be a number");
    scale = c.get<double>();
  }
  if (!args.pos.empty()) refuse(e, "fuse_lora with positional arguments (write lora_scale=...)");
  bool any = false;
  for (auto& l : loras_)
    if (!l.fused) {
      l.scale = scale;
      l.fused = any = true;
    }
  if (!any) refuse(e, "fuse_lora without a load_lora_weights before it");
  std::ostringstream text;
  text << "[[lora]] scale = " << scale;
  became(text.str());
  return {};
}

Value Interp::component_method(const std::string& comp, const std::string& attr, const Args& args, const json& e) {
  if (attr == "to" && args.pos.empty() && args.kw.size() == 1 && args.kw[0].first == "memory_format") {
    note("memory format: diffbench picks channels-last on CUDA itself");
    return Value::component(comp);
  }
  if (comp == "vae" && (attr == "enable_slicing" || attr == "disable_slicing" || attr == "enable_tiling" || attr == "disable_tiling")) {
    note("memory option: does not change the images; diffbench runs the VAE whole");
    return {};
  }
  if (attr == "eval" || attr == "requires_grad_") {
    note("inference mode: diffbench always runs without gradients");
    return Value::component(comp);
  }
  refuse(e, "pipe." + comp + "." + attr + "(...) changes a component in a way diffbench does not translate");
}

void Interp::assign_attribute(const json& target, const Value& v) {
  const Value base = eval(target["value"]);
  const std::string attr = target["attr"];
  if (base.kind == Kind::Pipe && attr == "scheduler" && v.kind == Kind::Scheduler) {
    if (v.c.is_string() && v.c != model_) refuse(target, "the scheduler comes from another model (" + v.c.get<std::string>() + ")");
    scheduler_ = v.name;
    scheduler_options_ = v.options;
    became("scheduler = \"" + scheduler_ + "\"" + (v.options.empty() ? "" : ", scheduler_options = " + v.options.dump()));
    return;
  }
  if (base.kind == Kind::Pipe && v.kind == Kind::Component && v.name == attr) return;  // pipe.unet = torch.compile(pipe.unet)
  if (base.kind == Kind::Pipe || base.kind == Kind::Component || base.kind == Kind::Helper)
    refuse(target, "assigning " + attr + " of the pipeline changes it in a way diffbench does not translate");
  if (base.kind == Kind::Symbol || base.kind == Kind::Module)
    note(base.name.find("backends") != std::string::npos ? "torch.backends setting" : "library setting");
}

Value Interp::make_scheduler_value(const std::string& cls, const std::string& how, const Args& args, const json& e) {
  auto it = kSchedulers.find(cls);
  if (it == kSchedulers.end()) {
    std::vector<std::string> names;
    for (const auto& [k, v] : kSchedulers) names.push_back(k);
    refuse(e, "scheduler " + cls + " is not one diffbench has (" + joined(names, ", ") + ")");
  }
  if (args.opaque) refuse(e, "a scheduler built with *args or **kwargs diffbench cannot read statically");
  Value s;
  s.kind = Kind::Scheduler;
  s.name = it->second;
  std::set<std::string> skip;
  if (how == "from_config") {
    const Value* cfg = args.get("config", 0);
    if (!cfg || cfg->kind != Kind::SchedConfig)
      refuse(e, "a scheduler config other than the pipeline's own: write " + cls + ".from_config(pipe.scheduler.config, ...)");
    skip = {"config"};
  } else {
    const json id = need_const(args.get("pretrained_model_name_or_path", 0), e, "the scheduler's model", "str");
    const json sub = need_const(args.get("subfolder"), e, "subfolder", "str");
    if (id.is_null() || sub != "scheduler") refuse(e, "write " + cls + ".from_pretrained(MODEL, subfolder=\"scheduler\")");
    s.c = id;
    skip = {"pretrained_model_name_or_path", "subfolder", "revision", "cache_dir", "local_files_only", "torch_dtype"};
  }
  if (args.pos.size() > 1) refuse(e, "scheduler options must be given as keywords");
  for (const auto& [k, v] : args.kw) {
    if (skip.count(k)) continue;
    if (v.kind != Kind::Const) refuse(e, "the value of scheduler option '" + k + "' cannot be determined without running the file");
    s.options[k] = v.c;
  }
  // Keys the class does not have, or values diffbench's implementation does not support, stop here.
  const json known = make_scheduler(s.name, json{{"_class_name", cls}}, cls)->config();
  for (auto o = s.options.begin(); o != s.options.end(); ++o)
    if (!known.contains(o.key())) refuse(e, "scheduler option '" + o.key() + "' is not an option of diffbench's " + cls);
  json with = s.options;
  with["_class_name"] = cls;
  try {
    make_scheduler(s.name, with, cls);
  } catch (const InputError& err) {
    refuse(e, "scheduler option not supported: " + err.message());
  }
  return s;
}

Value Interp::create_helper(const Args& args, const json& e) {
  const Value* p = args.get("pipe", 0);
  if (p && p->kind != Kind::Pipe) refuse(e, "DeepCacheSDHelper needs the pipeline (pipe=pipe)");
  // DeepCacheSDHelper.set_params' defaults.
  helpers_.push_back({{"cache_interval", 1}, {"cache_branch_id", 0}, {"skip_mode", "uniform"}});
  Value h;
  h.kind = Kind::Helper;
  h.index = static_cast<int>(helpers_.size()) - 1;
  note("DeepCache helper (applied by enable())");
  return h;
}

Value Interp::helper_method(int helper, const std::string& attr, const Args& args, const json& e) {
  if (attr == "set_params") {
    const char* names[] = {"cache_interval", "cache_branch_id", "skip_mode"};
    for (const auto& [k, v] : args.kw)
      if (std::find(std::begin(names), std::end(names), k) == std::end(names))
        refuse(e, "DeepCacheSDHelper.set_params has no option '" + k + "'");
    if (args.pos.size() > 3 || args.opaque) refuse(e, "set_params takes cache_interval, cache_branch_id, skip_mode");
    for (size_t i = 0; i < 3; ++i) {
      const json v = need_const(args.get(names[i], i), e, names[i], i == 2 ? "str" : "int");
      if (!v.is_null()) helpers_[helper][names[i]] = v;
    }
    became("deepcache " + params_text(helpers_[helper]));
    return {};
  }
  if (attr == "enable" || attr == "disable") {
    auto it = std::find_if(accel_.begin(), accel_.end(), [&](const Accel& a) { return a.helper == helper; });
    if (attr == "enable" && it == accel_.end()) accel_.push_back({"deepcache", helper, {}, e.value("lineno", 0)});
    if (attr == "disable" && it != accel_.end()) accel_.erase(it);
    became(attr == "enable" ? "[[accelerate]] deepcache" : "deepcache removed");
    return {};
  }
  refuse(e, "DeepCacheSDHelper." + attr + "() is not translated");
}

Value Interp::tome(bool apply, const Args& args, const json& e) {
  const Value* model = args.get("model", 0);
  if (!model || !(model->kind == Kind::Pipe || (model->kind == Kind::Component && model->name == "unet")))
    refuse(e, "tomesd is applied to something other than the pipeline");
  auto it = std::find_if(accel_.begin(), accel_.end(), [](const Accel& a) { return a.method == "tome"; });
  if (!apply) {
    if (it != accel_.end()) accel_.erase(it);
    became("tome removed");
    return {};
  }
  // tomesd.apply_patch(model, ratio, max_downsample, sx, sy, use_rand, merge_attn, merge_crossattn, merge_mlp)
  const std::vector<std::pair<const char*, const char*>> params = {
      {"ratio", "number"}, {"max_downsample", "int"}, {"sx", "int"}, {"sy", "int"}, {"use_rand", "bool"},
      {"merge_attn", "bool"}, {"merge_crossattn", "bool"}, {"merge_mlp", "bool"}};
  for (const auto& [k, v] : args.kw)
    if (k != "model" && std::none_of(params.begin(), params.end(), [&](const auto& p) { return k == p.first; }))
      refuse(e, "tomesd.apply_patch has no option '" + k + "'");
  if (args.opaque || args.pos.size() > params.size() + 1) refuse(e, "tomesd.apply_patch arguments diffbench cannot read");
  Accel a{"tome", -1, json::object(), e.value("lineno", 0)};
  for (size_t i = 0; i < params.size(); ++i) {
    const json v = need_const(args.get(params[i].first, i + 1), e, params[i].first, params[i].second);
    if (!v.is_null()) a.params[params[i].first] = v;
  }
  if (it != accel_.end()) *it = a;  // apply_patch removes an earlier patch first
  else accel_.push_back(a);
  became("[[accelerate]] tome " + params_text(a.params));
  return {};
}

Value Interp::tgate_loader(const std::string& cls, const Args& args, const json& e) {
  const Value* p = args.get("pipe", 0);
  if (!p || p->kind != Kind::Pipe) refuse(e, cls + " is applied to something other than the pipeline");
  if (tgate_loaded_) refuse(e, "T-GATE is loaded twice");
  tgate_loaded_ = true;
  const int line = e.value("lineno", 0);
  accel_.push_back({"tgate", -1, json::object(), line});
  std::string what = "[[accelerate]] tgate";
  if (cls == "TgateSDDeepCacheLoader" || cls == "TgateSDXLDeepCacheLoader") {
    json dc = {{"cache_interval", 3}, {"cache_branch_id", 0}};  // both loaders' defaults
    const char* names[] = {"cache_interval", "cache_branch_id"};
    for (const auto& [k, v] : args.kw)
      if (k != "pipe" && k != names[0] && k != names[1]) refuse(e, cls + " has no option '" + k + "'");
    for (size_t i = 0; i < 2; ++i) {
      const json v = need_const(args.get(names[i], i + 1), e, names[i], "int");
      if (!v.is_null()) dc[names[i]] = v;
    }
    accel_.push_back({"deepcache", -1, dc, line});
    what += " + [[accelerate]] deepcache " + params_text(dc);
  } else {
    for (const auto& [k, v] : args.kw)
      if (k != "pipe") refuse(e, cls + " has no option '" + k + "'");
  }
  became(what);
  Value pipe;
  pipe.kind = Kind::Pipe;
  return pipe;
}

Value Interp::generation_call(const Args& args, const json& e, bool tgate) {
  if (args.opaque) refuse(e, "a pipeline call with *args or **kwargs diffbench cannot read statically");
  if (args.pos.size() > 1) refuse(e, "pass the pipeline's settings as keywords (num_inference_steps=..., ...)");
  std::vector<std::string> what, protocol;
  for (const auto& [k, v] : args.kw) {
    if (kProtocolArgs.count(k)) {
      protocol.push_back(k);
    } else if (k == "num_inference_steps") {
      const json n = need_const(&v, e, k, "int");
      if (n.get<int64_t>() < 1) refuse(e, "num_inference_steps must be at least 1");
      setting(steps_, n, e, k);
      what.push_back("steps = " + n.dump());
    } else if (k == "guidance_scale") {
      const json g = need_const(&v, e, k, "number");
      setting(guidance_, g.get<double>(), e, k);
      what.push_back("guidance = " + g.dump());
    } else if (k == "guidance_rescale") {
      const json g = need_const(&v, e, k, "number");
      if (!(g.get<double>() >= 0 && g.get<double>() <= 1)) refuse(e, "guidance_rescale must lie in [0, 1]");
      setting(guidance_rescale_, g.get<double>(), e, k);
      what.push_back("guidance_rescale = " + g.dump());
    } else if (k == "height" || k == "width") {
      const json n = v.kind == Kind::Const && v.c.is_null() ? json() : need_const(&v, e, k, "int");
      setting(k == "height" ? height_ : width_, n, e, k);
      if (!n.is_null()) what.push_back(k + " = " + n.dump());
    } else if (k == "negative_prompt" && v.kind == Kind::Const && (v.c.is_null() || v.c == "")) {
      protocol.push_back(k);
    } else if (k == "eta" && v.kind == Kind::Const && v.c.is_number() && v.c.get<double>() == 0) {
      continue;
    } else if (tgate && (k == "gate_step" || k == "sp_interval" || k == "fi_interval" || k == "warm_up")) {
      const json n = need_const(&v, e, k, "int");
      if (tgate_params_.contains(k) && tgate_params_[k] != n)
        refuse(e, k + "=" + n.dump() + " here but " + tgate_params_[k].dump() + " in an earlier pipe.tgate call");
      tgate_params_[k] = n;
      what.push_back("tgate " + k + " = " + n.dump());
    } else if (tgate && k == "lcm" && v.kind == Kind::Const && v.c == false) {
      continue;
    } else {
      refuse(e, "the pipeline call's option '" + k + "' is not translated (steps, guidance and size are; prompts, "
                "seeds and batch size are the protocol's)");
    }
  }
  if (!args.pos.empty()) protocol.insert(protocol.begin(), "prompt");
  if (!what.empty()) became(joined(what, ", "));
  if (!protocol.empty()) note("generation: " + joined(protocol, ", ") + " set by the protocol");
  return {};
}

// ---- the result ---------------------------------------------------------------------------------

PyImport Interp::result() {
  if (!have_pipe_)
    throw InputError("no pipeline: the file never calls StableDiffusionPipeline.from_pretrained(...) (or "
                     "DiffusionPipeline / AutoPipelineForText2Image) where diffbench follows it: module-level "
                     "statements, functions called from them, and if __name__ == \"__main__\":",
                     file_.string());
  PyImport r;
  PipelineSpec& s = r.spec;
  s.file = file_;
  s.name = file_.stem().string();
  s.model_ref = model_;
  fs::path m = model_;
  if (m.is_relative() && !fs::exists(file_.parent_path() / m) && fs::exists(m)) m = fs::absolute(m);
  else if (m.is_relative()) m = file_.parent_path() / m;
  s.model = m;
  s.revision = revision_;
  s.variant = variant_;
  if (!cache_dir_.empty()) s.cache_dir = cache_dir_;
  s.scheduler = scheduler_;
  s.scheduler_options = scheduler_options_;
  s.prediction_type = prediction_type_;
  auto beside = [&](const std::string& text) {  // relative to the .py file, as the model is
    fs::path p = text;
    return p.is_relative() ? file_.parent_path() / p : p;
  };
  if (!model_config_.empty()) s.model_config = beside(model_config_);
  for (const auto& l : loras_) s.loras.push_back(LoraSpec{beside(l.file), l.scale});
  if (steps_) s.steps = steps_->value.get<int>();
  if (guidance_) s.guidance = guidance_->value.get<double>();
  else if (pipe_class_ == "StableDiffusionXLPipeline") s.guidance = 5.0;  // its __call__'s default guidance_scale
  if (guidance_rescale_) s.guidance_rescale = guidance_rescale_->value.get<double>();
  if (height_) s.height = height_->value.get<int>();
  if (width_) s.width = width_->value.get<int>();
  s.dtype = dtype_;
  s.device = device_;
  for (const auto& a : accel_) {
    AccelEntry entry;
    entry.method = a.method;
    entry.params = a.helper >= 0 ? helpers_[a.helper] : a.method == "tgate" ? tgate_params_ : a.params;
    entry.line = a.line;
    entry.lines["method"] = a.line;
    for (auto it = entry.params.begin(); it != entry.params.end(); ++it) entry.lines[it.key()] = a.line;
    s.accelerate.push_back(entry);
  }
  r.statements = statements_;
  r.ignored = ignored_;
  s.origin = {{"python", file_.string()}, {"pipeline_class", pipe_class_}, {"statements", statements_}, {"ignored", ignored_}};
  return r;
}

}  // namespace diffbench::py
