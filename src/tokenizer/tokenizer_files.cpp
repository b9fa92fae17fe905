#include "tokenizer/tokenizer_files.hpp"

#include <algorithm>
#include <fstream>
#include <sstream>
#include <string_view>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/io/gzip.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/read_file.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "tokenizer/text.hpp"

namespace fs = std::filesystem;
using nlohmann::json;

namespace diffbench::tokenizer_detail {
namespace {

// GPT-2's bytes_to_unicode(): which bytes keep their own code point.
bool printable_byte(int b) { return (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF); }

// One merge "a b": two non-empty symbols, one space. `line_no` names the line in errors (0: a
// tokenizer.json model.merges entry).
std::pair<std::string, std::string> parse_merge(std::string_view line, size_t line_no, const std::string& source) {
  const size_t space = line.find(' ');
  if (space == std::string_view::npos || space == 0 || space + 1 == line.size() ||
      line.find(' ', space + 1) != std::string_view::npos)
    throw InputError((line_no ? "line " + std::to_string(line_no) : std::string("model.merges entry")) +
                         " is not a merge 'a b': '" + std::string(line) + "'",
                     source);
  return {std::string(line.substr(0, space)), std::string(line.substr(space + 1))};
}

void read_vocab_object(const json& vocab, const std::string& source, TokenizerFiles& out) {
  if (!vocab.is_object()) throw InputError("the vocabulary is not a JSON object of token -> id", source);
  out.vocab.clear();
  out.vocab.reserve(vocab.size());
  for (const auto& [token, id] : vocab.items()) {
    if (!id.is_number_integer() || id.get<int64_t>() < 0)
      throw InputError("vocabulary entry '" + token + "' has no non-negative integer id", source);
    out.vocab.emplace_back(token, id.get<int64_t>());
  }
  if (out.vocab.empty()) throw InputError("the vocabulary is empty", source);
  out.vocab_source = source;
}

// A special token given as a string or as an AddedToken object {"content": ...}.
std::optional<std::string> token_content(const json& value) {
  if (value.is_string()) return value.get<std::string>();
  if (value.is_object() && value.contains("content") && value["content"].is_string())
    return value["content"].get<std::string>();
  return std::nullopt;
}

// Fills the special tokens that `config` names and `out` does not have yet.
void take_specials(const json& config, const std::string& source, TokenizerFiles& out) {
  if (!config.is_object()) throw InputError("expected a JSON object at the top level", source);
  bool used = false;
  auto take = [&](const char* key, std::optional<std::string>& slot) {
    if (slot || !config.contains(key)) return;
    if (auto content = token_content(config[key])) {
      slot = content;
      used = true;
    }
  };
  take("bos_token", out.bos);
  take("eos_token", out.eos);
  take("unk_token", out.unk);
  take("pad_token", out.pad);
  if (config.contains("additional_special_tokens") && config["additional_special_tokens"].is_array())
    for (const auto& t : config["additional_special_tokens"])
      if (auto content = token_content(t)) out.extra_specials.emplace_back(*content, -1);
  if (config.contains("added_tokens_decoder") && config["added_tokens_decoder"].is_object()) {
    for (const auto& [key, t] : config["added_tokens_decoder"].items()) {
      auto content = token_content(t);
      int64_t id = -1;
      try {
        size_t used_chars = 0;
        id = std::stoll(key, &used_chars);
        if (used_chars != key.size() || id < 0) id = -1;
      } catch (const std::exception&) {
      }
      if (!content || id < 0) throw InputError("added_tokens_decoder entry '" + key + "' is malformed", source);
      out.extra_specials.emplace_back(*content, id);
    }
  }
  if (used && out.config_source.empty()) out.config_source = source;
}

}  // namespace

void read_vocab_json(const fs::path& file, TokenizerFiles& out) {
  read_vocab_object(read_json_file(file), file.string(), out);
}

void read_merges_txt(const fs::path& file, TokenizerFiles& out) {
  std::istringstream in(read_regular_file(file));  // a FIFO or device is refused before it can block
  const std::string source = file.string();
  out.merges.clear();
  std::string line;
  size_t line_no = 0;
  while (std::getline(in, line)) {
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.pop_back();
    if (line.empty() || (line_no == 1 && line.rfind("#version", 0) == 0)) continue;
    out.merges.push_back(parse_merge(line, line_no, source));
  }
  out.merges_source = source;
}

std::array<std::string, 256> byte_symbols() {
  std::array<std::string, 256> symbols;
  char32_t next = 256;
  for (int b = 0; b < 256; ++b) append_utf8(symbols[b], printable_byte(b) ? static_cast<char32_t>(b) : next++);
  return symbols;
}

void read_bpe_simple_vocab(const fs::path& file, TokenizerFiles& out) {
  constexpr size_t kMerges = 49152 - 256 - 2;  // as CLIP's SimpleTokenizer slices them
  const std::string source = file.string();
  const std::string text = read_gzip_file(file, 64ull << 20);
  out.merges.clear();
  out.merges.reserve(kMerges);
  size_t pos = text.find('\n');  // line 1 is the file's header
  for (size_t line_no = 2; pos != std::string::npos && out.merges.size() < kMerges; ++line_no) {
    const size_t begin = pos + 1;
    pos = text.find('\n', begin);
    const std::string_view line(text.data() + begin, (pos == std::string::npos ? text.size() : pos) - begin);
    if (line.empty() && pos == std::string::npos) break;  // the final newline
    out.merges.push_back(parse_merge(line, line_no, source));
  }
  if (out.merges.size() < kMerges)
    throw InputError("has " + std::to_string(out.merges.size()) + " merges; CLIP's vocabulary needs " +
                         std::to_string(kMerges),
                     source);
  out.merges_source = source;

  const auto symbols = byte_symbols();
  std::vector<std::string> tokens;
  tokens.reserve(2 * 256 + kMerges + 2);
  for (const bool printable : {true, false})  // bytes_to_unicode()'s order: the printable bytes first
    for (int b = 0; b < 256; ++b)
      if (printable_byte(b) == printable) tokens.push_back(symbols[b]);
  for (size_t i = 0; i < 256; ++i) tokens.push_back(tokens[i] + "</w>");
  for (const auto& [a, b] : out.merges) tokens.push_back(a + b);
  tokens.push_back("<|startoftext|>");
  tokens.push_back("<|endoftext|>");
  out.vocab.clear();
  out.vocab.reserve(tokens.size());
  for (size_t id = 0; id < tokens.size(); ++id) out.vocab.emplace_back(std::move(tokens[id]), static_cast<int64_t>(id));
  out.vocab_source = source;
}

void write_vocab_files(const TokenizerFiles& files, const fs::path& dir) {
  auto by_id = files.vocab;
  std::sort(by_id.begin(), by_id.end(), [](const auto& a, const auto& b) { return a.second < b.second; });
  std::string vocab = "{";
  for (size_t i = 0; i < by_id.size(); ++i)
    vocab += (i ? ", " : "") + json(by_id[i].first).dump() + ": " + std::to_string(by_id[i].second);
  vocab += "}";
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : files.merges) merges += a + " " + b + "\n";
  fs::create_directories(dir);
  write_file_atomic(dir / "vocab.json", vocab);
  write_file_atomic(dir / "merges.txt", merges);
}

void read_tokenizer_json(const fs::path& file, TokenizerFiles& out) {
  const std::string source = file.string();
  const json root = read_json_file(file);
  if (!root.is_object() || !root.contains("model") || !root["model"].is_object())
    throw InputError("no 'model' object", source);
  const json& model = root["model"];
  if (model.contains("type") && model["type"] != "BPE")
    throw InputError("model.type is " + model["type"].dump() + ", expected \"BPE\"", source);
  if (!model.contains("vocab")) throw InputError("no model.vocab", source);
  read_vocab_object(model["vocab"], source + " (model.vocab)", out);
  if (!model.contains("merges") || !model["merges"].is_array()) throw InputError("no model.merges array", source);
  out.merges.clear();
  out.merges.reserve(model["merges"].size());
  for (const auto& m : model["merges"]) {
    if (m.is_string()) {  // "a b"
      out.merges.push_back(parse_merge(m.get<std::string>(), 0, source));
    } else if (m.is_array() && m.size() == 2 && m[0].is_string() && m[1].is_string()) {  // ["a", "b"]
      out.merges.emplace_back(m[0].get<std::string>(), m[1].get<std::string>());
    } else {
      throw InputError("model.merges entry " + m.dump() + " is neither 'a b' nor [a, b]", source);
    }
  }
  out.merges_source = source + " (model.merges)";
  if (root.contains("added_tokens") && root["added_tokens"].is_array()) {
    for (const auto& t : root["added_tokens"]) {
      if (!t.is_object() || !t.contains("id") || !t.contains("content") || !t["id"].is_number_integer() ||
          !t["content"].is_string())
        throw InputError("added_tokens entry " + t.dump() + " lacks an integer id or a content", source);
      out.added_tokens.emplace_back(t["content"].get<std::string>(), t["id"].get<int64_t>());
    }
  }
  if (!out.unk && model.contains("unk_token") && model["unk_token"].is_string())
    out.unk = model["unk_token"].get<std::string>();
  if (!out.pad && root.contains("padding") && root["padding"].is_object() &&
      root["padding"].contains("pad_token") && root["padding"]["pad_token"].is_string())
    out.pad = root["padding"]["pad_token"].get<std::string>();
}

void read_special_token_configs(const fs::path& dir, TokenizerFiles& out) {
  // tokenizer_config.json first: its values win over special_tokens_map.json's and tokenizer.json's.
  TokenizerFiles from_configs;
  for (const char* name : {"tokenizer_config.json", "special_tokens_map.json"}) {
    const fs::path file = dir / name;
    if (fs::exists(file)) take_specials(read_json_file(file), file.string(), from_configs);
  }
  auto merge = [](std::optional<std::string>& dst, const std::optional<std::string>& src) {
    if (src) dst = src;
  };
  merge(out.bos, from_configs.bos);
  merge(out.eos, from_configs.eos);
  merge(out.unk, from_configs.unk);
  merge(out.pad, from_configs.pad);
  out.extra_specials.insert(out.extra_specials.end(), from_configs.extra_specials.begin(),
                            from_configs.extra_specials.end());
  if (!from_configs.config_source.empty()) out.config_source = from_configs.config_source;
}

}  // namespace diffbench::tokenizer_detail
