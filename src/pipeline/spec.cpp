#include "diffbench/pipeline/spec.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>

#include <toml++/toml.h>

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/read_file.hpp"
#include "diffbench/pipeline/device.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

std::string at_line(const fs::path& file, const toml::node& node) {
  return file.string() + ":" + std::to_string(node.source().begin.line);
}

template <typename T>
T expect(const toml::node& node, const fs::path& file, const std::string& key, const char* type_name) {
  if constexpr (std::is_same_v<T, double>) {
    if (auto v = node.value<double>()) return *v;  // integers are accepted for floats
  } else if constexpr (std::is_same_v<T, int64_t>) {
    if (node.is_integer()) return node.as_integer()->get();
  } else if constexpr (std::is_same_v<T, std::string>) {
    if (node.is_string()) return node.as_string()->get();
  }
  std::ostringstream got;
  got << node.type();
  throw InputError("key '" + key + "' must be " + type_name + " (got " + got.str() + ")", at_line(file, node));
}

nlohmann::json to_json_value(const toml::node& node, const fs::path& file, const std::string& key) {
  if (node.is_boolean()) return node.as_boolean()->get();
  if (node.is_integer()) return node.as_integer()->get();
  if (node.is_floating_point()) return node.as_floating_point()->get();
  if (node.is_string()) return node.as_string()->get();
  throw InputError("method parameter '" + key + "' must be a boolean, number or string", at_line(file, node));
}

void parse_pipeline(const toml::table& t, const fs::path& file, PipelineSpec& spec) {
  for (const auto& [k, node] : t) {
    const std::string key(k.str());
    if (key == "model") {
      spec.model_ref = expect<std::string>(node, file, key, "a string");
      fs::path p = spec.model_ref;
      if (p.is_relative() && p != "demo") p = file.parent_path() / p;  // the alias is resolved by resolve_spec_model
      spec.model = p;
    } else if (key == "revision" || key == "variant") {
      (key == "revision" ? spec.revision : spec.variant) = expect<std::string>(node, file, key, "a string");
    } else if (key == "cache_dir") {
      fs::path p = expect<std::string>(node, file, key, "a string");
      spec.cache_dir = p.is_relative() ? file.parent_path() / p : p;
    } else if (key == "scheduler") {
      spec.scheduler = expect<std::string>(node, file, key, "a string");
    } else if (key == "scheduler_options") {
      if (!node.is_table()) throw InputError("key 'scheduler_options' must be a table: { key = value, ... }", at_line(file, node));
      for (const auto& [ok, ov] : *node.as_table()) spec.scheduler_options[std::string(ok.str())] = to_json_value(ov, file, std::string(ok.str()));
    } else if (key == "steps" || key == "height" || key == "width") {
      const auto v = expect<int64_t>(node, file, key, "an integer");
      if (v < (key == "steps" ? 1 : 8) || v > (key == "steps" ? 100000 : kMaxImageSide))
        throw InputError("key '" + key + "' is out of range (" + std::to_string(v) + ")", at_line(file, node));
      (key == "steps" ? spec.steps : key == "height" ? spec.height : spec.width) = static_cast<int>(v);
    } else if (key == "guidance") {
      spec.guidance = expect<double>(node, file, key, "a number");
      if (!std::isfinite(spec.guidance) || spec.guidance < 0)
        throw InputError("key 'guidance' must be a finite number >= 0 (got " + std::to_string(spec.guidance) + ")",
                         at_line(file, node));
    } else if (key == "guidance_rescale") {
      spec.guidance_rescale = expect<double>(node, file, key, "a number");
      if (!(spec.guidance_rescale >= 0 && spec.guidance_rescale <= 1))
        throw InputError("key 'guidance_rescale' must lie in [0, 1] (got " + std::to_string(spec.guidance_rescale) + ")",
                         at_line(file, node));
    } else if (key == "dtype") {
      spec.dtype = expect<std::string>(node, file, key, "a string");
      if (!is_dtype_name(spec.dtype))
        throw InputError("key 'dtype' must be " + std::string(kDtypeNames) + " (got '" + spec.dtype + "')",
                         at_line(file, node));
    } else if (key == "device") {
      spec.device = expect<std::string>(node, file, key, "a string");
    } else if (key == "prediction_type") {
      spec.prediction_type = expect<std::string>(node, file, key, "a string");
      if (spec.prediction_type != "epsilon" && spec.prediction_type != "v_prediction")
        throw InputError("key 'prediction_type' must be epsilon or v_prediction (got '" + spec.prediction_type + "')",
                         at_line(file, node));
    } else if (key == "config") {
      fs::path p = expect<std::string>(node, file, key, "a string");
      spec.model_config = p.is_relative() ? file.parent_path() / p : p;
    } else {
      throw InputError("unknown key '" + key + "' in [pipeline]", at_line(file, node));
    }
  }
  if (spec.model.empty())
    throw InputError("[pipeline] needs 'model' (a diffusers folder)", file.string() + ":" + std::to_string(t.source().begin.line));
}

LoraSpec parse_lora(const toml::table& t, const fs::path& file) {
  LoraSpec l;
  for (const auto& [k, node] : t) {
    const std::string key(k.str());
    if (key == "file") {
      fs::path p = expect<std::string>(node, file, key, "a string");
      l.file = p.is_relative() ? file.parent_path() / p : p;
    } else if (key == "scale") {
      l.scale = expect<double>(node, file, key, "a number");
      if (!std::isfinite(l.scale) || std::fabs(l.scale) > 1000)
        throw InputError("key 'scale' must be a finite number within ±1000", at_line(file, node));
    } else {
      throw InputError("unknown key '" + key + "' in [[lora]] (expected file, scale)", at_line(file, node));
    }
  }
  if (l.file.empty()) throw InputError("[[lora]] needs 'file'", file.string() + ":" + std::to_string(t.source().begin.line));
  return l;
}

AccelEntry parse_accel(const toml::table& t, const fs::path& file) {
  AccelEntry e;
  e.line = static_cast<int>(t.source().begin.line);
  for (const auto& [k, node] : t) {
    const std::string key(k.str());
    if (key == "method") {
      e.method = expect<std::string>(node, file, key, "a string");
      e.lines[key] = static_cast<int>(node.source().begin.line);
    } else if (key == "plugin") {
      fs::path p = expect<std::string>(node, file, key, "a string");
      e.lines[key] = static_cast<int>(node.source().begin.line);
      e.plugin = p.is_relative() ? file.parent_path() / p : p;
    } else {
      e.params[key] = to_json_value(node, file, key);
      e.lines[key] = static_cast<int>(node.source().begin.line);
    }
  }
  if (e.method.empty()) throw InputError("[[accelerate]] needs 'method'", file.string() + ":" + std::to_string(e.line));
  return e;
}

// toml++ 3.3 (Debian's) has two kinds of undefined behaviour that text can reach; both are refused
// here, before toml++ reads the text, with the file and line (both found by fuzz_spec):
//  - it assumes (TOML_ASSERT_ASSUME) that a table header's key starts with a key character or a
//    quote; a header such as "[=" breaks that. Headers are the lines that start with '[' outside
//    strings, comments and the brackets of values.
//  - its test for non-ASCII whitespace reaches __builtin_unreachable for U+00A1..U+0499 and
//    U+FC06..U+FEFE, and it asks that test of every character outside strings and comments, of the
//    character after a backslash in a """ string, and of the first one after a line-ending backslash.
//    Outside strings and comments TOML allows ASCII only, and a backslash escape is ASCII too, so
//    those are refused whatever they are; after a line-ending backslash only the broken ranges are.
//  - it assumes (TOML_ASSERT_ASSUME in parse_value) that an array element does not start with '}';
//    "[1, }" breaks that. A '}' whose innermost open bracket is an array's '[' is never valid TOML.
bool breaks_tomlpp_whitespace_test(char32_t c) { return (c >= 0xA1 && c <= 0x499) || (c >= 0xFC06 && c <= 0xFEFE); }

// The code point of the UTF-8 sequence at text[i] (0xFFFD when malformed: toml++ reports that itself).
char32_t code_point_at(const std::string& text, size_t i) {
  const auto b = [&](size_t k) { return k < text.size() ? static_cast<unsigned char>(text[k]) : 0u; };
  const unsigned c = b(i);
  if (c < 0x80) return c;
  const int extra = c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : -1;
  if (extra < 0) return 0xFFFD;
  char32_t cp = c & (0x3F >> extra);
  for (int k = 1; k <= extra; ++k) {
    if ((b(i + k) & 0xC0) != 0x80) return 0xFFFD;
    cp = (cp << 6) | (b(i + k) & 0x3F);
  }
  return cp;
}

void refuse_what_tomlpp_misreads(const std::string& text, const fs::path& file) {
  const auto key_start = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '"' || c == '\'' || c == ']';
  };
  const auto non_ascii = [](char c) { return static_cast<unsigned char>(c) >= 0x80; };
  const size_t n = text.size();
  size_t line = 1;
  const auto refuse = [&](const std::string& what) {
    throw InputError("invalid TOML: " + what, file.string() + ":" + std::to_string(line));
  };
  std::string open;            // the open '[' and '{' of values, innermost last
  bool line_start = true;      // nothing but whitespace so far on this line
  char last = 0;               // the last character on this line that is not whitespace (0: none)
  // A quote opens a string where TOML has a key or a value: first on a line, or after = [ , { or the
  // '.' of a dotted key. Anywhere else (inside a bare value such as 1~2"x") toml++ reads it as part of
  // that bad value, so it is scanned as such.
  const auto opens_string = [&] { return last == 0 || std::strchr("=[,{.", last) != nullptr; };
  for (size_t i = 0; i < n; ++i) {
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = true;
      last = 0;
    } else if (c == ' ' || c == '\t' || c == '\r') {
    } else if (c == '#') {
      while (i + 1 < n && text[i + 1] != '\n') ++i;
    } else if ((c == '"' || c == '\'') && opens_string()) {
      const bool triple = i + 2 < n && text[i + 1] == c && text[i + 2] == c;
      i += triple ? 3 : 1;
      for (; i < n; ++i) {
        if (text[i] == '\n') ++line;
        if (c == '"' && text[i] == '\\') {
          if (triple && i + 1 < n && non_ascii(text[i + 1]))
            refuse("a backslash escape is an ASCII letter or character, not the one after this backslash");
          if (triple) {  // a line-ending backslash: toml++ skips whitespace up to the next character
            size_t j = i + 1;
            while (j < n && (text[j] == ' ' || text[j] == '\t' || text[j] == '\r' || text[j] == '\n')) ++j;
            if (j > i + 1 && j < n && non_ascii(text[j]) && breaks_tomlpp_whitespace_test(code_point_at(text, j))) {
              line += static_cast<size_t>(std::count(text.begin() + static_cast<std::ptrdiff_t>(i), text.begin() + static_cast<std::ptrdiff_t>(j), '\n'));
              refuse("the character after a line-ending backslash is not ASCII, which toml++ 3.3 misreads; "
                     "put it on the backslash's line or write it as a \\u escape");
            }
          }
          if (i + 1 < n && text[i + 1] == '\n') ++line;
          ++i;
        } else if (text[i] == c && (!triple || (i + 2 < n && text[i + 1] == c && text[i + 2] == c))) {
          if (triple) i += 2;
          break;
        } else if (!triple && text[i] == '\n') {
          break;  // an unterminated string: toml++ reports it
        }
      }
      line_start = false;
      last = c;
    } else if (non_ascii(c)) {
      refuse("a character outside a string or comment is not ASCII");
    } else if (c == '[' && open.empty() && line_start) {
      size_t j = i + 1;
      if (j < n && text[j] == '[') ++j;
      i = j - 1;  // the header's key and closing brackets are scanned as the rest of the line
      while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j < n && !key_start(text[j])) refuse("a table header must start with a key (a name or a quoted string)");
      line_start = false;
      last = '[';
    } else {
      line_start = false;
      last = c;
      if (c == '}' && !open.empty() && open.back() == '[') refuse("a '}' inside an array (its '[' is not closed)");
      if (c == '[' || c == '{') open.push_back(c);
      if ((c == ']' || c == '}') && !open.empty()) open.pop_back();
    }
  }
}

}  // namespace

PipelineSpec parse_spec(const std::string& text, const fs::path& file) {
  refuse_what_tomlpp_misreads(text, file);
  toml::table root;
  try {
    root = toml::parse(text, file.string());
  } catch (const toml::parse_error& e) {
    throw InputError("invalid TOML: " + std::string(e.description()),
                     file.string() + ":" + std::to_string(e.source().begin.line));
  }
  PipelineSpec spec;
  spec.file = file;
  spec.name = file.stem().string();
  bool have_pipeline = false;
  for (const auto& [k, node] : root) {
    const std::string key(k.str());
    if (key == "pipeline") {
      if (!node.is_table()) throw InputError("'pipeline' must be a table: [pipeline]", at_line(file, node));
      parse_pipeline(*node.as_table(), file, spec);
      have_pipeline = true;
    } else if (key == "accelerate") {
      if (!node.is_array_of_tables()) throw InputError("'accelerate' must be an array of tables: [[accelerate]]", at_line(file, node));
      for (const auto& item : *node.as_array()) spec.accelerate.push_back(parse_accel(*item.as_table(), file));
    } else if (key == "lora") {
      if (!node.is_array_of_tables()) throw InputError("'lora' must be an array of tables: [[lora]]", at_line(file, node));
      for (const auto& item : *node.as_array()) spec.loras.push_back(parse_lora(*item.as_table(), file));
    } else {
      throw InputError("unknown key '" + key + "' (expected [pipeline], [[lora]] and [[accelerate]])", at_line(file, node));
    }
  }
  if (!have_pipeline) throw InputError("missing the [pipeline] table", file.string());
  return spec;
}

PipelineSpec load_spec(const fs::path& file) {
  PipelineSpec spec = parse_spec(read_regular_file(file, 1 << 20), file);  // a FIFO is refused before it can block
  resolve_spec_model(spec);
  return spec;
}

void resolve_spec_model(PipelineSpec& spec) {
  if (spec.model_ref.empty()) spec.model_ref = spec.model.string();
  if (spec.model == "demo") {
    spec.model = resolve_demo_alias(spec.model, "sd");  // the bundled demo model, unless ./demo exists
    return;
  }
  if (fs::exists(spec.model)) return;
  const std::string ext = spec.model.extension().string();
  if (ext == ".safetensors" || ext == ".ckpt")  // a single-file checkpoint, not a hub id
    throw InputError("no such checkpoint file", spec.model.string());
  if (!looks_like_repo_id(spec.model_ref)) return;
  spec.hub = resolve_hub_model(spec.model_ref, spec.revision, spec.cache_dir, spec.variant);
  spec.model = spec.hub->folder;
}

PipelineSpec PipelineSpec::baseline() const {
  PipelineSpec b = *this;
  b.accelerate.clear();
  b.dtype = precision_dtype();
  b.name = name + "-baseline";
  return b;
}

std::string PipelineSpec::precision_dtype() const {
  if (dtype != "fp8") return dtype;
  return device.rfind("cuda", 0) == 0 ? "fp16" : "fp32";
}

nlohmann::json PipelineSpec::to_json() const {
  nlohmann::json methods = nlohmann::json::array();
  for (const auto& a : accelerate) {
    nlohmann::json m = {{"method", a.method}, {"params", a.params}};
    if (!a.plugin.empty()) m["plugin"] = a.plugin.string();
    methods.push_back(m);
  }
  nlohmann::json j = {{"file", file.string()}, {"name", name},         {"model", model.string()}, {"scheduler", scheduler.empty() ? "default" : scheduler},
                      {"steps", steps},        {"guidance", guidance}, {"height", height},        {"width", width},
                      {"dtype", dtype},        {"device", device},     {"accelerate", methods}};
  if (!model_ref.empty() && model_ref != model.string()) j["model_ref"] = model_ref;  // as written (an id, a relative path)
  if (!scheduler_options.empty()) j["scheduler_options"] = scheduler_options;
  if (guidance_rescale > 0) j["guidance_rescale"] = guidance_rescale;
  if (!variant.empty()) j["variant"] = variant;
  if (!prediction_type.empty()) j["prediction_type"] = prediction_type;
  if (!model_config.empty()) j["config"] = model_config.string();
  if (!loras.empty()) {
    j["lora"] = nlohmann::json::array();
    for (const auto& l : loras) j["lora"].push_back({{"file", l.file.string()}, {"scale", l.scale}});
  }
  if (hub) j["hub"] = hub->to_json();
  if (!origin.is_null()) j["origin"] = origin;
  return j;
}

ModelOptions PipelineSpec::model_options(const CudaTuning& tuning) const {
  ModelOptions mo;
  mo.dir = model;
  mo.variant = variant;
  mo.prediction_type = prediction_type;
  mo.config_dir = model_config;
  mo.loras = loras;
  mo.device = parse_device(device);
  mo.dtype = parse_dtype(precision_dtype(), mo.device);
  mo.fp8 = dtype == "fp8";
  if (mo.fp8 && !has_fp8_gemms(mo.device))
    throw UsageError("dtype fp8 needs a GPU with fp8 tensor cores (compute capability 8.9 or later: Ada, Hopper "
                     "and newer), or the CPU; use fp16 on this one",
                     "--dtype");
  mo.cuda_graphs = tuning.cuda_graphs;
  mo.channels_last = tuning.channels_last;
  mo.cudnn_benchmark = tuning.cudnn_benchmark;
  return mo;
}

GenerateOptions PipelineSpec::generate_options(const RunProtocol& protocol) const {
  GenerateOptions go;
  go.scheduler = scheduler;
  go.scheduler_options = scheduler_options;
  go.steps = steps;
  go.guidance = guidance;
  go.guidance_rescale = guidance_rescale;
  go.height = height;
  go.width = width;
  go.seed = protocol.seed;
  go.batch_size = protocol.batch_size;
  go.noise = protocol.noise;
  go.allow_nonfinite = protocol.allow_nonfinite;
  return go;
}

LoraSpec parse_lora_arg(const std::string& text, const std::string& option) {
  LoraSpec l;
  l.file = text;
  const size_t colon = text.rfind(':');
  if (colon != std::string::npos && colon + 1 < text.size()) {
    const std::string tail = text.substr(colon + 1);
    char* end = nullptr;
    const double v = std::strtod(tail.c_str(), &end);
    if (end && *end == '\0') {
      if (!std::isfinite(v) || std::fabs(v) > 1000) throw UsageError("LoRA scale must be a finite number within ±1000", option);
      l.file = text.substr(0, colon);
      l.scale = v;
    }
  }
  if (l.file.empty()) throw UsageError("give the LoRA as FILE[:SCALE]", option);
  return l;
}

std::vector<std::string> spec_differences(const PipelineSpec& a, const PipelineSpec& b) {
  std::vector<std::string> out;
  auto diff = [&](const std::string& what, const auto& x, const auto& y) {
    if (x != y) {
      std::ostringstream o;
      o << what << ": " << x << " vs " << y;
      out.push_back(o.str());
    }
  };
  diff("scheduler", a.scheduler.empty() ? std::string("default") : a.scheduler, b.scheduler.empty() ? std::string("default") : b.scheduler);
  diff("scheduler options", a.scheduler_options.dump(), b.scheduler_options.dump());
  diff("steps", a.steps, b.steps);
  diff("guidance", a.guidance, b.guidance);
  diff("guidance_rescale", a.guidance_rescale, b.guidance_rescale);
  diff("height", a.height, b.height);
  diff("width", a.width, b.width);
  diff("dtype", a.dtype, b.dtype);
  diff("prediction type", a.prediction_type.empty() ? std::string("model's") : a.prediction_type,
       b.prediction_type.empty() ? std::string("model's") : b.prediction_type);
  diff("device", a.device, b.device);
  diff("accelerate methods", a.accelerate.size(), b.accelerate.size());
  return out;
}

}  // namespace diffbench
