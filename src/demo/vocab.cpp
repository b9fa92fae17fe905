#include "diffbench/demo/vocab.hpp"

#include <algorithm>
#include <map>

#include <nlohmann/json.hpp>

#include "diffbench/error.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "tokenizer/text.hpp"

namespace diffbench::demo {

namespace fs = std::filesystem;

namespace {

// OpenAI CLIP's bytes_to_unicode(): printable bytes map to themselves, the others to 256 + n,
// listed in that order (the order of CLIP's first 256 vocabulary entries).
std::vector<std::string> byte_symbols_in_vocab_order() {
  std::vector<int> bs, cs;
  for (int b = '!'; b <= '~'; ++b) bs.push_back(b);
  for (int b = 0xA1; b <= 0xAC; ++b) bs.push_back(b);
  for (int b = 0xAE; b <= 0xFF; ++b) bs.push_back(b);
  cs = bs;
  int n = 0;
  for (int b = 0; b < 256; ++b) {
    if (std::find(bs.begin(), bs.end(), b) == bs.end()) {
      bs.push_back(b);
      cs.push_back(256 + n++);
    }
  }
  std::vector<std::string> out;
  for (int c : cs) {
    std::string s;
    tokenizer_detail::append_utf8(s, static_cast<char32_t>(c));
    out.push_back(s);
  }
  return out;
}

}  // namespace

BpeVocab build_bpe_vocab(const std::vector<std::string>& words) {
  BpeVocab v;
  const auto symbols = byte_symbols_in_vocab_order();
  v.tokens = symbols;
  for (const auto& s : symbols) v.tokens.push_back(s + "</w>");

  // Words as symbol lists; the grammar is lower-case ASCII, so a byte is its own symbol.
  std::vector<std::vector<std::string>> split;
  for (const auto& w : words) {
    if (w.empty()) continue;
    std::vector<std::string> sym;
    for (unsigned char ch : w) {
      if (ch < 'a' || ch > 'z') throw UsageError("grammar words must be lower-case ASCII letters", w);
      sym.emplace_back(1, static_cast<char>(ch));
    }
    sym.back() += "</w>";
    split.push_back(std::move(sym));
  }
  for (;;) {
    std::map<std::pair<std::string, std::string>, int> counts;
    for (const auto& sym : split)
      for (size_t i = 0; i + 1 < sym.size(); ++i) ++counts[{sym[i], sym[i + 1]}];
    if (counts.empty()) break;
    auto best = counts.begin();  // std::map order: ties go to the smallest pair
    for (auto it = counts.begin(); it != counts.end(); ++it)
      if (it->second > best->second) best = it;
    const auto pair = best->first;
    v.merges.push_back(pair);
    // Two different pairs can spell the same token: it gets one id.
    if (std::find(v.tokens.begin(), v.tokens.end(), pair.first + pair.second) == v.tokens.end())
      v.tokens.push_back(pair.first + pair.second);
    for (auto& sym : split) {
      std::vector<std::string> merged;
      for (size_t i = 0; i < sym.size(); ++i) {
        if (i + 1 < sym.size() && sym[i] == pair.first && sym[i + 1] == pair.second) {
          merged.push_back(pair.first + pair.second);
          ++i;
        } else {
          merged.push_back(sym[i]);
        }
      }
      sym = std::move(merged);
    }
  }
  v.bos_id = static_cast<int64_t>(v.tokens.size());
  v.tokens.push_back("<|startoftext|>");
  v.eos_id = static_cast<int64_t>(v.tokens.size());
  v.tokens.push_back("<|endoftext|>");
  return v;
}

void write_tokenizer_files(const BpeVocab& v, const fs::path& dir) {
  fs::create_directories(dir);
  nlohmann::ordered_json vocab = nlohmann::ordered_json::object();
  for (size_t i = 0; i < v.tokens.size(); ++i) vocab[v.tokens[i]] = i;
  write_file_atomic(dir / "vocab.json", vocab.dump() + "\n");
  std::string merges = "#version: 0.2\n";
  for (const auto& [a, b] : v.merges) merges += a + " " + b + "\n";
  write_file_atomic(dir / "merges.txt", merges);
  const nlohmann::ordered_json config = {{"bos_token", "<|startoftext|>"},  {"eos_token", "<|endoftext|>"},
                                         {"pad_token", "<|endoftext|>"},    {"unk_token", "<|endoftext|>"},
                                         {"model_max_length", 77},          {"do_lower_case", true},
                                         {"tokenizer_class", "CLIPTokenizer"}, {"clean_up_tokenization_spaces", false}};
  write_file_atomic(dir / "tokenizer_config.json", config.dump(2) + "\n");
  const nlohmann::ordered_json specials = {{"bos_token", "<|startoftext|>"}, {"eos_token", "<|endoftext|>"},
                                           {"pad_token", "<|endoftext|>"}, {"unk_token", "<|endoftext|>"}};
  write_file_atomic(dir / "special_tokens_map.json", specials.dump(2) + "\n");
}

}  // namespace diffbench::demo
