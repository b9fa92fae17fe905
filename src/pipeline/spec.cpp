#include "diffbench/pipeline/spec.hpp"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include <toml++/toml.h>
#include <utf8proc.h>

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

// toml++ 3.3 (Debian's) has undefined behaviour that text can reach (all found by fuzz_spec):
//  - its test for non-ASCII whitespace reaches __builtin_unreachable for U+00A1..U+0499,
//    U+2C5E..U+2FFF, U+3001..U+3057 and U+FB26..U+FEFE (a fault of its generated tables, mended in
//    3.4), and its parser assumes in places that a character it takes for whitespace (it counts
//    U+0085, U+00A0, U+2028, U+3000, U+FEFF and others as such) cannot be there. So toml++ sees
//    neither kind: shield() swaps each for its own stand-in from Supplementary Private Use Area-A,
//    which toml++ treats as any other non-ASCII character (allowed in strings and comments, an error
//    elsewhere, as TOML says), and unshield() swaps them back in every key, string and message.
//    A leading byte order mark stays (toml++ skips it); a text that holds a stand-in is refused.
//  - it assumes (TOML_ASSERT_ASSUME) that a table header's key starts with a key character or a
//    quote; a header such as "[=" breaks that. Headers are the lines that start with '[' outside
//    strings, comments and the brackets of values.
//  - it assumes (TOML_ASSERT_ASSUME in parse_value) that an array element does not start with '}';
//    "[1, }" breaks that. A '}' whose innermost open bracket is an array's '[' is never valid TOML.
//  - it assumes that a date-like value followed by a space and one digit goes on
//    (refuse_date_with_one_digit_time).
//    refuse_what_tomlpp_misreads() refuses these three in the shielded text, before toml++ reads it.
constexpr std::pair<char32_t, char32_t> kShieldedRanges[] = {
    {0x85, 0x85},     {0xA0, 0x499},    {0x1680, 0x1680}, {0x180E, 0x180E}, {0x2000, 0x200B}, {0x2028, 0x2029},
    {0x202F, 0x202F}, {0x205F, 0x2060}, {0x2C5E, 0x2FFF}, {0x3000, 0x3057}, {0xFB26, 0xFEFF}};
constexpr char32_t kStandInBase = 0xF0000;

constexpr char32_t stand_in_count() {
  char32_t n = 0;
  for (const auto& [lo, hi] : kShieldedRanges) n += hi - lo + 1;
  return n;
}
static_assert(stand_in_count() == 0xBE2, "the refusal message names U+F0000..U+F0BE1");

// The code point of the well-formed UTF-8 sequence at text[i] and its length (0 when malformed,
// overlong or a surrogate: utf8proc refuses those, and their bytes are left for toml++ to report).
std::pair<char32_t, size_t> utf8_at(const std::string& text, size_t i) {
  utf8proc_int32_t cp = -1;
  const utf8proc_ssize_t len = utf8proc_iterate(reinterpret_cast<const utf8proc_uint8_t*>(text.data()) + i,
                                                static_cast<utf8proc_ssize_t>(text.size() - i), &cp);
  if (len <= 0 || cp < 0) return {0, 0};
  return {static_cast<char32_t>(cp), static_cast<size_t>(len)};
}

// Rewrites every well-formed UTF-8 sequence of text through swap (code point -> code point).
template <typename Swap>
std::string swap_code_points(const std::string& text, Swap swap) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const auto [cp, len] = utf8_at(text, i);
    if (len <= 1) {
      out += text[i++];
      continue;
    }
    utf8proc_uint8_t bytes[4];
    out.append(reinterpret_cast<const char*>(bytes),
               static_cast<size_t>(utf8proc_encode_char(static_cast<utf8proc_int32_t>(swap(cp, i)), bytes)));
    i += len;
  }
  return out;
}

std::string shield(const std::string& text, const fs::path& file) {
  const bool bom = text.rfind("\xEF\xBB\xBF", 0) == 0;
  return swap_code_points(text, [&](char32_t cp, size_t at) -> char32_t {
    if (bom && at == 0) return cp;
    if (cp >= kStandInBase && cp < kStandInBase + stand_in_count())
      throw InputError("private-use characters U+F0000..U+F0BE1 are not accepted in a spec",
                       file.string() + ":" + std::to_string(1 + std::count(text.begin(), text.begin() + static_cast<std::ptrdiff_t>(at), '\n')));
    char32_t offset = 0;
    for (const auto& [lo, hi] : kShieldedRanges) {
      if (cp >= lo && cp <= hi) return kStandInBase + offset + (cp - lo);
      offset += hi - lo + 1;
    }
    return cp;
  });
}

std::string unshield(const std::string& text) {
  if (text.find('\xF3') == std::string::npos) return text;  // every stand-in starts with byte F3
  return swap_code_points(text, [](char32_t cp, size_t) -> char32_t {
    if (cp < kStandInBase || cp >= kStandInBase + stand_in_count()) return cp;
    char32_t offset = cp - kStandInBase;
    for (const auto& [lo, hi] : kShieldedRanges) {
      if (offset <= hi - lo) return lo + offset;
      offset -= hi - lo + 1;
    }
    return cp;
  });
}

// unshield() over every key and string below node, in place.
void unshield(toml::node& node) {
  if (auto* s = node.as_string()) {
    s->get() = unshield(s->get());
  } else if (auto* a = node.as_array()) {
    for (auto& item : *a) unshield(item);
  } else if (auto* t = node.as_table()) {
    std::vector<std::string> shielded_keys;
    for (auto&& [k, v] : *t) {
      unshield(v);
      if (unshield(std::string(k.str())) != k.str()) shielded_keys.emplace_back(k.str());
    }
    for (const auto& k : shielded_keys) {
      auto it = t->find(k);
      const toml::key restored(unshield(k), it->first.source());
      it->second.visit([&](auto& v) { t->insert_or_assign(restored, std::move(v)); });
      t->erase(k);
    }
  }
}

// The value that starts at text[i] (a digit), read as toml++ reads one: when it looks like a date
// (ten characters besides '_', the 5th and 8th '-') and a space and one digit follow it, toml++ reads
// on for a time and then assumes (TOML_ASSERT_ASSUME in parse_value's scan) that the character after
// that digit does not end the value. A time's hour has two digits, so "2024-01-01 1 " is never TOML.
template <typename Refuse>
void refuse_date_with_one_digit_time(const std::string& text, size_t i, const Refuse& refuse) {
  std::u32string chars;
  size_t j = i;
  while (j < text.size() && chars.size() <= 10) {
    const auto [cp, len] = utf8_at(text, j);
    if (len == 0 || cp == ' ' || cp == '\t' || (cp >= '\n' && cp <= '\r') || cp == ',' || cp == ']' || cp == '}' || cp == '#') break;
    if (cp != '_') chars += cp;
    j += len;
  }
  const auto digit = [&](size_t k) { return k < text.size() && std::isdigit(static_cast<unsigned char>(text[k])); };
  if (chars.size() == 10 && chars[4] == '-' && chars[7] == '-' && j < text.size() && text[j] == ' ' && digit(j + 1) &&
      j + 2 < text.size() && !digit(j + 2))
    refuse("a date's time needs a two-digit hour (YYYY-MM-DD HH:MM:SS)");
}

void refuse_what_tomlpp_misreads(const std::string& text, const fs::path& file) {
  const auto key_start = [](char c) {
    return std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-' || c == '"' || c == '\'' || c == ']';
  };
  const size_t n = text.size();
  size_t line = 1;
  const auto refuse = [&](const std::string& what) {
    throw InputError("invalid TOML: " + what, file.string() + ":" + std::to_string(line));
  };
  std::string open;            // the open '[' and '{' of values, innermost last
  bool line_start = true;      // nothing but whitespace so far on this line
  char last = '\n';            // the last character on this line that is not whitespace ('\n': none)
  // A quote opens a string where TOML has a key or a value: first on a line, or after = [ , { or the
  // '.' of a dotted key. Anywhere else (inside a bare value such as 1~2"x") toml++ reads it as part of
  // that bad value, so it is scanned as such.
  const auto opens_string = [&] { return last == '\n' || (last != '\0' && std::strchr("=[,{.", last) != nullptr); };
  for (size_t i = text.rfind("\xEF\xBB\xBF", 0) == 0 ? 3 : 0; i < n; ++i) {  // toml++ skips a leading BOM
    const char c = text[i];
    if (c == '\n') {
      ++line;
      line_start = true;
      last = '\n';
    } else if (c == ' ' || c == '\t' || c == '\r') {
    } else if (c == '#') {
      while (i + 1 < n && text[i + 1] != '\n') ++i;
    } else if ((c == '"' || c == '\'') && opens_string()) {
      const bool triple = i + 2 < n && text[i + 1] == c && text[i + 2] == c;
      i += triple ? 3 : 1;
      for (; i < n; ++i) {
        if (text[i] == '\n') ++line;
        if (c == '"' && text[i] == '\\') {
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
    } else if (c == '[' && open.empty() && line_start) {
      size_t j = i + 1;
      if (j < n && text[j] == '[') ++j;
      i = j - 1;  // the header's key and closing brackets are scanned as the rest of the line
      while (j < n && (text[j] == ' ' || text[j] == '\t')) ++j;
      if (j < n && !key_start(text[j])) refuse("a table header must start with a key (a name or a quoted string)");
      line_start = false;
      last = '[';
    } else {
      if (std::isdigit(static_cast<unsigned char>(c)) && (line_start || std::strchr("=[,{", last) != nullptr))
        refuse_date_with_one_digit_time(text, i, refuse);
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
  const std::string shielded = shield(text, file);
  refuse_what_tomlpp_misreads(shielded, file);
  toml::table root;
  try {
    root = toml::parse(shielded, file.string());
  } catch (const toml::parse_error& e) {
    throw InputError("invalid TOML: " + unshield(std::string(e.description())),
                     file.string() + ":" + std::to_string(e.source().begin.line));
  }
  unshield(root);
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
