// The interpreter behind import-py: follows a pipeline file's syntax tree (eval/python_ast) in
// statement order and records what each statement does to the one diffusers pipeline it builds.
// Python names of the recognised forms (diffusers, DeepCache, tomesd, tgate) are matched on the
// imported symbol's last component and its package.
#include "diffbench/eval/pyimport.hpp"

#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "diffbench/error.hpp"
#include "eval/pyimport_state.hpp"
#include "eval/python_ast.hpp"

namespace diffbench {

namespace fs = std::filesystem;
using json = nlohmann::json;

namespace py {

namespace {

const std::set<std::string> kPipelineClasses = {"StableDiffusionPipeline", "StableDiffusionXLPipeline",
                                                "DiffusionPipeline", "AutoPipelineForText2Image"};

std::string last_part(const std::string& dotted) {
  const auto p = dotted.rfind('.');
  return p == std::string::npos ? dotted : dotted.substr(p + 1);
}

std::string root_part(const std::string& dotted) { return dotted.substr(0, dotted.find('.')); }

bool is_node(const json& j, const char* type) { return j.is_object() && j.value("_t", "") == type; }

bool truthy(const json& c) {
  if (c.is_boolean()) return c.get<bool>();
  if (c.is_number()) return c.get<double>() != 0;
  if (c.is_string()) return !c.get<std::string>().empty();
  return !c.is_null();
}

std::string format_const(const json& c) {
  if (c.is_string()) return c.get<std::string>();
  if (c.is_boolean()) return c.get<bool>() ? "True" : "False";
  if (c.is_null()) return "None";
  return c.dump();
}

// `if __name__ == "__main__":` (either operand order).
bool is_main_guard(const json& test) {
  if (!is_node(test, "Compare") || test["ops"].size() != 1 || !is_node(test["ops"][0], "Eq")) return false;
  const json& a = test["left"];
  const json& b = test["comparators"][0];
  auto name = [](const json& n) { return is_node(n, "Name") && n["id"] == "__name__"; };
  auto main = [](const json& n) { return is_node(n, "Constant") && n["value"] == "__main__"; };
  return (name(a) && main(b)) || (main(a) && name(b));
}

}  // namespace

Value Interp::eval(const json& e) {
  const std::string t = e.value("_t", "");
  if (t == "Constant") {
    const json& v = e["value"];
    return v.is_object() ? Value{} : Value::constant(v);
  }
  if (t == "Name") return lookup(e["id"].get<std::string>());
  if (t == "Attribute") return attribute(eval(e["value"]), e["attr"].get<std::string>());
  if (t == "Call") return call(e);
  if (t == "JoinedStr") {
    std::string s;
    bool known = true;
    for (const auto& part : e["values"]) {
      if (is_node(part, "Constant")) {
        s += format_const(part["value"]);
        continue;
      }
      const Value v = eval(part["value"]);
      if (v.kind != Kind::Const || !part["format_spec"].is_null() || part.value("conversion", -1) != -1) known = false;
      else s += format_const(v.c);
    }
    return known ? Value::constant(s) : Value{};
  }
  if (t == "IfExp") {
    const Value test = eval(e["test"]);
    if (test.kind == Kind::Const) return truthy(test.c) ? eval(e["body"]) : eval(e["orelse"]);
    eval(e["body"]);
    eval(e["orelse"]);
    return {};
  }
  if (t == "BinOp") return binop(eval(e["left"]), e["op"]["_t"].get<std::string>(), eval(e["right"]));
  if (t == "UnaryOp") {
    const Value v = eval(e["operand"]);
    const std::string op = e["op"]["_t"];
    if (v.kind == Kind::Const && op == "USub" && v.c.is_number_integer()) return Value::constant(-v.c.get<int64_t>());
    if (v.kind == Kind::Const && op == "USub" && v.c.is_number()) return Value::constant(-v.c.get<double>());
    if (v.kind == Kind::Const && op == "Not") return Value::constant(!truthy(v.c));
    return {};
  }
  if (t == "Compare" && e["ops"].size() == 1) {
    const Value a = eval(e["left"]), b = eval(e["comparators"][0]);
    const std::string op = e["ops"][0]["_t"];
    if (a.kind == Kind::Const && b.kind == Kind::Const && (op == "Eq" || op == "NotEq"))
      return Value::constant((a.c == b.c) == (op == "Eq"));
    return {};
  }
  if (t == "Tuple" || t == "List") {
    Value v;
    v.kind = Kind::Tuple;
    for (const auto& x : e["elts"]) v.items.push_back(eval(x));
    return v;
  }
  if (t == "Lambda") return {};
  if (t == "ListComp" || t == "GeneratorExp" || t == "SetComp" || t == "DictComp") {
    push_scope(true);
    for (const auto& g : e["generators"]) {
      eval(g["iter"]);
      bind_target(g["target"], Value{});
      for (const auto& cond : g["ifs"]) eval(cond);
    }
    if (t == "DictComp") {
      eval(e["key"]);
      eval(e["value"]);
    } else {
      eval(e["elt"]);
    }
    pop_scope();
    return {};
  }
  // Any other expression: its parts are evaluated for what they do (a pipeline call inside).
  for (auto it = e.begin(); it != e.end(); ++it) {
    if (it.value().is_object() && it.value().contains("_t")) eval(it.value());
    if (it.value().is_array())
      for (const auto& x : it.value())
        if (x.is_object() && x.contains("_t")) eval(x);
  }
  return {};
}

Value Interp::binop(const Value& a, const std::string& op, const Value& b) {
  if (a.kind != Kind::Const || b.kind != Kind::Const) return {};
  if (op == "Add" && a.c.is_string() && b.c.is_string()) return Value::constant(a.c.get<std::string>() + b.c.get<std::string>());
  if (!a.c.is_number() || !b.c.is_number() || a.c.is_boolean() || b.c.is_boolean()) return {};
  const bool ints = a.c.is_number_integer() && b.c.is_number_integer();
  if (ints) {
    const int64_t x = a.c.get<int64_t>(), y = b.c.get<int64_t>();
    if (op == "Add") return Value::constant(x + y);
    if (op == "Sub") return Value::constant(x - y);
    if (op == "Mult") return Value::constant(x * y);
    if (op == "FloorDiv" && y != 0) return Value::constant(x / y - ((x % y != 0) && ((x < 0) != (y < 0))));
  }
  const double x = a.c.get<double>(), y = b.c.get<double>();
  if (op == "Add") return Value::constant(x + y);
  if (op == "Sub") return Value::constant(x - y);
  if (op == "Mult") return Value::constant(x * y);
  if (op == "Div" && y != 0) return Value::constant(x / y);
  return {};
}

Value Interp::attribute(const Value& base, const std::string& attr) {
  switch (base.kind) {
    case Kind::Module:
    case Kind::Symbol:
      return Value::symbol(base.name + "." + attr);
    case Kind::Pipe:
      if (kComponents.count(attr)) return Value::component(attr);
      return {};
    case Kind::Component:
      if (base.name == "scheduler" && attr == "config") {
        Value v;
        v.kind = Kind::SchedConfig;
        return v;
      }
      return {};
    default:
      return {};
  }
}

Value Interp::call(const json& e) {
  const json& func = e["func"];
  if (is_node(func, "Attribute")) {
    const Value base = eval(func["value"]);
    const std::string attr = func["attr"];
    Args args = eval_args(e);
    switch (base.kind) {
      case Kind::Pipe: return pipe_method(attr, args, e);
      case Kind::Component: return component_method(base.name, attr, args, e);
      case Kind::Helper: return helper_method(base.index, attr, args, e);
      case Kind::Module:
      case Kind::Symbol: return symbol_call(base.name + "." + attr, args, e);
      default:
        refuse_if_touches_pipe(args, e, "a call that is passed the pipeline");
        if (attr == "save" || attr == "savefig") note("saves an image");
        return {};
    }
  }
  const Value callee = eval(func);
  Args args = eval_args(e);
  if (callee.kind == Kind::Function) return call_function(*callee.node, args, e);
  if (callee.kind == Kind::Pipe) return generation_call(args, e, false);
  if (callee.kind == Kind::Symbol) return symbol_call(callee.name, args, e);
  if (is_node(func, "Name") && func["id"] == "print") {
    note("print");
    return {};
  }
  refuse_if_touches_pipe(args, e, "a call that is passed the pipeline");
  return {};
}

Args Interp::eval_args(const json& e) {
  Args a;
  for (const auto& x : e["args"]) {
    if (is_node(x, "Starred")) {
      eval(x["value"]);
      a.opaque = true;
      continue;
    }
    a.pos.push_back(eval(x));
  }
  for (const auto& k : e["keywords"]) {
    const Value v = eval(k["value"]);
    if (k["arg"].is_null()) {
      a.opaque = true;
      continue;
    }
    a.kw.emplace_back(k["arg"].get<std::string>(), v);
  }
  return a;
}

void Interp::refuse_if_touches_pipe(const Args& args, const json& node, const std::string& what) {
  auto touches = [](const Value& v) {
    return v.kind == Kind::Pipe || v.kind == Kind::Component || v.kind == Kind::Helper;
  };
  for (const auto& v : args.pos)
    if (touches(v)) refuse(node, what + " (diffbench cannot tell what it does to it)");
  for (const auto& [k, v] : args.kw)
    if (touches(v)) refuse(node, what + " (diffbench cannot tell what it does to it)");
}

Value Interp::symbol_call(const std::string& name, const Args& args, const json& e) {
  const std::string last = last_part(name), root = root_part(name);
  const std::string owner = name.find('.') == std::string::npos ? "" : last_part(name.substr(0, name.rfind('.')));
  if (last == "from_pretrained" && kPipelineClasses.count(owner)) return create_pipe(owner, args, e);
  if (last == "from_single_file" && (owner == "StableDiffusionPipeline" || owner == "StableDiffusionXLPipeline"))
    return create_pipe(owner, args, e, true);
  if ((last == "from_pretrained" || last == "from_single_file") && owner.find("Pipeline") != std::string::npos)
    refuse(e, owner + "." + last + ": diffbench runs StableDiffusionPipeline (SD 1.x/2.x) and StableDiffusionXLPipeline "
                      "text-to-image loaded with from_pretrained or from_single_file; use one of "
                      "them, DiffusionPipeline or "
                      "AutoPipelineForText2Image");
  if ((last == "from_config" || last == "from_pretrained") && owner.size() > 9 &&
      owner.compare(owner.size() - 9, 9, "Scheduler") == 0)
    return make_scheduler_value(owner, last, args, e);
  if (last == "DeepCacheSDHelper") return create_helper(args, e);
  if (root == "tomesd" && (last == "apply_patch" || last == "remove_patch")) return tome(last == "apply_patch", args, e);
  if (last == "TgateSDLoader" || last == "TgateSDDeepCacheLoader" || last == "TgateSDXLLoader" ||
      last == "TgateSDXLDeepCacheLoader")
    return tgate_loader(last, args, e);
  if (name == "torch.compile") {
    if (!args.pos.empty() && args.pos[0].kind == Kind::Component) {
      note("torch.compile of a component: not measured (diffbench runs its own UNet)");
      return args.pos[0];
    }
    refuse_if_touches_pipe(args, e, "torch.compile of the whole pipeline");
    return {};
  }
  if (name == "torch.cuda.is_available") return Value::constant(true);
  if (name == "torch.backends.mps.is_available") return Value::constant(false);
  if (name == "torch.device" && args.pos.size() == 1 && args.pos[0].kind == Kind::Const) return args.pos[0];
  if (root == "time" || name == "torch.cuda.synchronize" || name == "torch.cuda.Event") note("timing");
  else if (root == "torch" && name.find(".backends.") != std::string::npos) note("torch.backends setting");
  else if (last == "manual_seed" || last == "seed_everything") note("seed: the protocol seeds every prompt");
  else if (root == "os" || root == "sys" || root == "shutil" || root == "pathlib" || root == "json")
    note("file system or process call: not run (the file is read, never executed)");
  refuse_if_touches_pipe(args, e, "'" + name + "' is called with the pipeline");
  return {};
}

Value Interp::call_function(const json& def, const Args& args, const json& e) {
  if (args.opaque) refuse(e, "a call with *args or **kwargs diffbench cannot read statically");
  if (call_depth_ > 16) refuse(e, "functions nested deeper than 16 calls (recursion?)");
  const json& a = def["args"];
  std::vector<std::string> names;
  for (const auto& p : a["posonlyargs"]) names.push_back(p["arg"]);
  for (const auto& p : a["args"]) names.push_back(p["arg"]);
  std::map<std::string, Value> locals;
  const auto& defaults = a["defaults"];
  for (size_t i = 0; i < defaults.size(); ++i) locals[names[names.size() - defaults.size() + i]] = eval(defaults[i]);
  for (size_t i = 0; i < a["kwonlyargs"].size(); ++i)
    if (!a["kw_defaults"][i].is_null()) locals[a["kwonlyargs"][i]["arg"]] = eval(a["kw_defaults"][i]);
  for (size_t i = 0; i < args.pos.size(); ++i) {
    if (i < names.size()) locals[names[i]] = args.pos[i];
  }
  for (const auto& [k, v] : args.kw) locals[k] = v;
  note("calls " + def["name"].get<std::string>() + "() (its statements are listed from line " +
       std::to_string(def.value("lineno", 0)) + ")");
  const Current saved = current_;
  push_scope();
  scopes_.back().vars = std::move(locals);
  ++call_depth_;
  exec_block(def["body"]);
  --call_depth_;
  Value ret = std::move(return_value_);
  returning_ = false;
  return_value_ = {};
  pop_scope();
  current_ = saved;
  return ret;
}

void Interp::exec_block(const json& body) {
  for (const auto& s : body) {
    if (returning_) return;
    exec_stmt(s);
  }
}

void Interp::exec_stmt(const json& s) {
  const std::string t = s.value("_t", "");
  // Compound statements: their inner statements are listed, not the statement itself.
  if (t == "If") {
    if (is_main_guard(s["test"])) return exec_block(s["body"]);
    begin(s);
    const Value test = eval(s["test"]);
    if (test.kind == Kind::Const) {
      end("condition is " + std::string(truthy(test.c) ? "true" : "false"));
      return exec_block(truthy(test.c) ? s["body"] : s["orelse"]);
    }
    if (mentions_pipe(s["body"]) || mentions_pipe(s["orelse"]))
      refuse(s, "a condition diffbench cannot decide statically guards code that uses the pipeline");
    return end("condition not decided statically; neither branch uses the pipeline");
  }
  if (t == "For" || t == "AsyncFor" || t == "While") {
    begin(s);
    eval(t == "While" ? s["test"] : s["iter"]);
    if (t != "While") bind_target(s["target"], Value{});
    end("loop (its body is read once)");
    exec_block(s["body"]);
    return exec_block(s["orelse"]);
  }
  if (t == "With" || t == "AsyncWith") {
    begin(s);
    for (const auto& item : s["items"]) {
      eval(item["context_expr"]);
      if (!item["optional_vars"].is_null()) bind_target(item["optional_vars"], Value{});
    }
    end("context manager");
    return exec_block(s["body"]);
  }
  if (t == "Try" || t == "TryStar") {
    exec_block(s["body"]);
    for (const auto& h : s["handlers"]) {
      begin(h.contains("_src") ? h : s);
      end("exception handler: not followed");
    }
    exec_block(s["orelse"]);
    return exec_block(s["finalbody"]);
  }
  begin(s);
  if (t == "FunctionDef" || t == "AsyncFunctionDef") {
    Value f;
    f.kind = Kind::Function;
    f.node = &s;
    assign_name(s["name"], f);
    return end("function definition (its statements are followed where it is called)");
  }
  if (t == "ClassDef") {
    assign_name(s["name"], Value{});
    return end("class definition");
  }
  if (t == "Import") {
    for (const auto& a : s["names"]) {
      const std::string name = a["name"];
      if (a["asname"].is_null()) assign_name(root_part(name), Value::module(root_part(name)));
      else assign_name(a["asname"], Value::module(name));
    }
    return end("import");
  }
  if (t == "ImportFrom") {
    const std::string mod = s["module"].is_null() ? "" : s["module"].get<std::string>();
    for (const auto& a : s["names"]) {
      const std::string name = a["name"];
      assign_name(a["asname"].is_null() ? name : a["asname"].get<std::string>(), Value::symbol(mod + "." + name));
    }
    return end("import");
  }
  if (t == "Assign" || t == "AnnAssign") {
    if (t == "AnnAssign" && s["value"].is_null()) return end("annotation");
    const Value v = eval(s["value"]);
    if (t == "Assign")
      for (const auto& target : s["targets"]) bind_target(target, v);
    else
      bind_target(s["target"], v);
    return end(v.kind == Kind::Const ? "constant" : "assignment");
  }
  if (t == "AugAssign") {
    eval(s["value"]);
    if (touches_pipe_target(s["target"])) refuse(s, "changes the pipeline");
    bind_target(s["target"], Value{});
    return end("assignment");
  }
  if (t == "Expr") {
    eval(s["value"]);
    return end("expression");
  }
  if (t == "Return") {
    return_value_ = s["value"].is_null() ? Value{} : eval(s["value"]);
    returning_ = true;
    return end("return");
  }
  if (t == "Global") {
    for (const auto& n : s["names"]) scopes_.back().globals.insert(n.get<std::string>());
    return end("global");
  }
  if (t == "Delete") {
    for (const auto& target : s["targets"])
      if (touches_pipe_target(target)) refuse(s, "deletes part of the pipeline");
    return end("del");
  }
  end(t == "Pass" ? "pass" : "not run: " + t);
}

}  // namespace py

namespace {

// A TOML value: JSON's string escapes and numbers are valid TOML.
std::string toml_value(const json& v) {
  if (v.is_number_float()) {
    std::string s = v.dump();
    return s.find_first_of(".eE") == std::string::npos ? s + ".0" : s;
  }
  return v.dump();
}

}  // namespace

std::string to_toml(const PyImport& r) {
  const PipelineSpec& s = r.spec;
  std::ostringstream o;
  o << "# Translated by `diffbench import-py` from " << s.file.filename().string()
    << " (read with Python's ast module, not run).\n";
  for (const auto& st : r.statements)
    o << "#   line " << st["line"].get<int>() << ": " << st["text"].get<std::string>() << "\n#     -> "
      << st["became"].get<std::string>() << "\n";
  const bool hub_id = looks_like_repo_id(s.model_ref) && !fs::exists(s.model);
  o << "[pipeline]\nmodel = " << json(hub_id ? s.model_ref : fs::absolute(s.model).lexically_normal().string()).dump() << "\n";
  if (!s.revision.empty()) o << "revision = " << json(s.revision).dump() << "\n";
  if (!s.variant.empty()) o << "variant = " << json(s.variant).dump() << "\n";
  if (!s.cache_dir.empty()) o << "cache_dir = " << json(fs::absolute(s.cache_dir).string()).dump() << "\n";
  if (!s.scheduler.empty()) o << "scheduler = " << json(s.scheduler).dump() << "\n";
  if (!s.scheduler_options.empty()) {
    o << "scheduler_options = {";
    bool first = true;
    for (auto it = s.scheduler_options.begin(); it != s.scheduler_options.end(); ++it, first = false)
      o << (first ? " " : ", ") << it.key() << " = " << toml_value(it.value());
    o << " }\n";
  }
  o << "steps = " << s.steps << "\nguidance = " << toml_value(s.guidance) << "\n";
  if (!s.prediction_type.empty()) o << "prediction_type = " << json(s.prediction_type).dump() << "\n";
  if (!s.model_config.empty()) o << "config = " << json(fs::absolute(s.model_config).lexically_normal().string()).dump() << "\n";
  if (s.guidance_rescale > 0) o << "guidance_rescale = " << toml_value(s.guidance_rescale) << "\n";
  if (s.height) o << "height = " << s.height << "\n";
  if (s.width) o << "width = " << s.width << "\n";
  o << "dtype = " << json(s.dtype).dump() << "\ndevice = " << json(s.device).dump() << "\n";
  for (const auto& l : s.loras)
    o << "\n[[lora]]\nfile = " << json(fs::absolute(l.file).lexically_normal().string()).dump()
      << "\nscale = " << toml_value(l.scale) << "\n";
  for (const auto& a : s.accelerate) {
    o << "\n[[accelerate]]\nmethod = " << json(a.method).dump() << "\n";
    for (auto it = a.params.begin(); it != a.params.end(); ++it) o << it.key() << " = " << toml_value(it.value()) << "\n";
  }
  return o.str();
}

PyImport import_python_text(const std::string& text, const fs::path& file) {
  const json tree = parse_python(text, file);
  py::Interp interp(file);
  interp.exec_block(tree["body"]);
  return interp.result();
}

PyImport import_python(const fs::path& file) {
  std::ifstream in(file, std::ios::binary);
  if (!in) throw InputError("cannot open the pipeline file", file.string());
  std::stringstream buf;
  buf << in.rdbuf();
  return import_python_text(buf.str(), file);
}

PipelineSpec load_pipeline_file(const fs::path& file) {
  if (file.extension() != ".py") return load_spec(file);
  PipelineSpec spec = import_python(file).spec;
  resolve_spec_model(spec);
  return spec;
}

}  // namespace diffbench
