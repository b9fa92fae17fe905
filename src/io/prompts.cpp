#include "diffbench/io/prompts.hpp"

#include <cstdint>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <unordered_map>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/read_file.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

std::string at_line(const std::string& file, size_t line) { return file + ":" + std::to_string(line); }

std::string read_text_file(const std::string& file) {
  std::string data = read_regular_file(file);  // a FIFO or device is refused before it can block
  if (data.compare(0, 3, "\xEF\xBB\xBF") == 0) data.erase(0, 3);  // UTF-8 byte-order mark
  return data;
}

// Byte offset of the first invalid UTF-8 sequence, or npos. Rejects overlong forms, surrogates
// and code points above U+10FFFF, as Python's strict utf-8 codec does.
size_t invalid_utf8_at(const std::string& s) {
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const size_t n = s.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = p[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t cp;
    if (c >= 0xC2 && c <= 0xDF) len = 2, cp = c & 0x1F;
    else if (c >= 0xE0 && c <= 0xEF) len = 3, cp = c & 0x0F;
    else if (c >= 0xF0 && c <= 0xF4) len = 4, cp = c & 0x07;
    else return i;
    if (i + len > n) return i;
    for (size_t k = 1; k < len; ++k) {
      if ((p[i + k] & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (p[i + k] & 0x3F);
    }
    if ((len == 3 && cp < 0x800) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)) || (cp >= 0xD800 && cp <= 0xDFFF))
      return i;
    i += len;
  }
  return std::string::npos;
}

bool is_blank(const std::string& s) { return s.find_first_not_of(" \t\r\n\f\v") == std::string::npos; }

// The file's lines without their LF / CRLF endings; trailing blank lines dropped.
std::vector<std::string> split_lines(const std::string& data) {
  std::vector<std::string> lines;
  size_t start = 0;
  while (start < data.size()) {
    size_t end = data.find('\n', start);
    if (end == std::string::npos) end = data.size();
    std::string line = data.substr(start, end - start);
    if (!line.empty() && line.back() == '\r') line.pop_back();
    lines.push_back(std::move(line));
    start = end + 1;
  }
  while (!lines.empty() && is_blank(lines.back())) lines.pop_back();
  return lines;
}

void check_utf8(const std::string& text, const std::string& where) {
  const size_t bad = invalid_utf8_at(text);
  if (bad != std::string::npos)
    throw InputError("invalid UTF-8 at byte " + std::to_string(bad + 1) + " of the line", where);
}

// Stops once `limit` prompts are read (0 = no limit).
std::vector<std::string> read_txt(const std::string& file, size_t limit) {
  const auto lines = split_lines(read_text_file(file));
  std::vector<std::string> out;
  for (size_t i = 0; i < lines.size() && (limit == 0 || out.size() < limit); ++i) {
    check_utf8(lines[i], at_line(file, i + 1));
    if (is_blank(lines[i])) throw InputError("blank line (an empty prompt)", at_line(file, i + 1));
    out.push_back(lines[i]);
  }
  return out;
}

std::vector<std::string> read_jsonl(const std::string& file, size_t limit) {
  const auto lines = split_lines(read_text_file(file));
  std::vector<std::string> out;
  for (size_t i = 0; i < lines.size() && (limit == 0 || out.size() < limit); ++i) {
    if (is_blank(lines[i])) continue;
    const std::string where = at_line(file, i + 1);
    check_utf8(lines[i], where);
    const nlohmann::json j = parse_json(lines[i], where);
    if (!j.is_object()) throw InputError("expected a JSON object with a \"prompt\"", where);
    auto it = j.find("prompt");
    if (it == j.end()) throw InputError("no \"prompt\" key", where);
    if (!it->is_string()) throw InputError("\"prompt\" is not a string", where);
    if (is_blank(it->get<std::string>())) throw InputError("empty \"prompt\"", where);
    out.push_back(it->get<std::string>());
  }
  return out;
}

std::vector<std::string> split_tabs(const std::string& line) {
  std::vector<std::string> fields;
  size_t start = 0;
  while (true) {
    const size_t tab = line.find('\t', start);
    fields.push_back(line.substr(start, tab == std::string::npos ? std::string::npos : tab - start));
    if (tab == std::string::npos) break;
    start = tab + 1;
  }
  return fields;
}

std::vector<std::string> read_parti(const std::string& file, size_t limit) {
  const auto lines = split_lines(read_text_file(file));
  if (lines.empty()) throw InputError("empty file (expected a header row)", file);
  const auto header = split_tabs(lines[0]);
  size_t col = header.size();
  for (size_t k = 0; k < header.size(); ++k)
    if (header[k] == "Prompt") col = k;
  if (col == header.size()) throw InputError("header has no \"Prompt\" column", at_line(file, 1));
  std::vector<std::string> out;
  for (size_t i = 1; i < lines.size() && (limit == 0 || out.size() < limit); ++i) {
    const std::string where = at_line(file, i + 1);
    check_utf8(lines[i], where);
    const auto fields = split_tabs(lines[i]);
    if (fields.size() <= col || is_blank(fields[col])) throw InputError("row has no prompt", where);
    out.push_back(fields[col]);
  }
  return out;
}

std::vector<std::string> read_coco(const std::string& file, size_t limit) {
  const nlohmann::json j = parse_json(read_text_file(file), file);
  if (!j.is_object() || !j.contains("images") || !j["images"].is_array() || !j.contains("annotations") ||
      !j["annotations"].is_array())
    throw InputError("not a COCO captions file: expected \"images\" and \"annotations\" arrays", file);
  const auto& images = j["images"];
  const auto& annotations = j["annotations"];
  const size_t n = limit == 0 ? images.size() : std::min(limit, images.size());

  // Image id -> its position among the images taken; then the first caption of each.
  std::unordered_map<int64_t, size_t> wanted;
  for (size_t i = 0; i < n; ++i) {
    const auto& img = images[i];
    if (!img.is_object() || !img.contains("id") || !img["id"].is_number_integer())
      throw InputError("images[" + std::to_string(i) + "] has no integer \"id\"", file);
    wanted.emplace(img["id"].get<int64_t>(), i);
  }
  std::vector<std::string> out(n);
  std::vector<bool> found(n, false);
  size_t remaining = n;
  for (size_t a = 0; a < annotations.size() && remaining > 0; ++a) {
    const auto& ann = annotations[a];
    if (!ann.is_object() || !ann.contains("image_id") || !ann["image_id"].is_number_integer() ||
        !ann.contains("caption") || !ann["caption"].is_string())
      throw InputError("annotations[" + std::to_string(a) + "] lacks an integer \"image_id\" or a string \"caption\"",
                       file);
    auto it = wanted.find(ann["image_id"].get<int64_t>());
    if (it == wanted.end() || found[it->second]) continue;
    out[it->second] = ann["caption"].get<std::string>();
    found[it->second] = true;
    --remaining;
  }
  for (size_t i = 0; i < n; ++i)
    if (!found[i])
      throw InputError("image " + std::to_string(images[i]["id"].get<int64_t>()) + " (images[" + std::to_string(i) +
                           "]) has no caption",
                       file);
  return out;
}

bool ends_with(const std::string& s, const std::string& suffix) {
  return s.size() >= suffix.size() && s.compare(s.size() - suffix.size(), suffix.size(), suffix) == 0;
}

}  // namespace

PromptSet load_prompts(const std::string& spec, size_t num_samples) {
  PromptSet set;
  set.source = spec;
  if (spec.empty()) throw InputError("empty prompt-set spec (use coco:FILE, parti:FILE, geneval:FILE, FILE.txt or FILE.jsonl)");

  // "kind:FILE" when the part before the first ':' is a known kind.
  std::string kind, file = spec;
  if (spec == "demo") file = resolve_demo_alias(spec, "prompts.txt").string();  // the bundled demo prompts
  if (spec == "coco2017-val" && !fs::exists(spec))  // the bundled default set
    file = (assets_dir() / "prompts" / "coco2017-val-first-captions.jsonl").string();
  if (const size_t colon = spec.find(':'); colon != std::string::npos) {
    const std::string prefix = spec.substr(0, colon);
    if (prefix == "coco" || prefix == "parti" || prefix == "geneval") {
      kind = prefix;
      file = spec.substr(colon + 1);
      if (file.empty()) throw InputError("no file after '" + prefix + ":'", spec);
    } else if (!fs::exists(spec) && !prefix.empty() &&
               prefix.find_first_not_of("abcdefghijklmnopqrstuvwxyz") == std::string::npos) {
      throw InputError("unknown prompt-set prefix '" + prefix + ":' (known: coco:, parti:, geneval:)", spec);
    }
  }
  if (kind.empty()) {
    if (ends_with(file, ".txt")) kind = "txt";
    else if (ends_with(file, ".jsonl")) kind = "jsonl";
    else
      throw InputError("unknown prompt-file type: expected a .txt or .jsonl file, or coco:/parti:/geneval: before the "
                       "path",
                       file);
  }

  if (kind == "coco") set.prompts = read_coco(file, num_samples);
  else if (kind == "parti") set.prompts = read_parti(file, num_samples);
  else if (kind == "txt") set.prompts = read_txt(file, num_samples);
  else set.prompts = read_jsonl(file, num_samples);  // geneval and .jsonl

  if (set.prompts.empty()) throw InputError("no prompts in the file", file);
  // A NUL byte would cut the prompt short in C strings and reports (JSON can carry one as \u0000).
  for (size_t i = 0; i < set.prompts.size(); ++i)
    if (set.prompts[i].find('\0') != std::string::npos)
      throw InputError("prompt " + std::to_string(i + 1) + " contains a NUL byte", file);
  if (num_samples != 0 && set.prompts.size() < num_samples)
    throw InputError("asked for " + std::to_string(num_samples) + " prompts but the file has only " +
                         std::to_string(set.prompts.size()),
                     file);
  return set;
}

}  // namespace diffbench
