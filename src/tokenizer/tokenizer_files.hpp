// Reading a CLIP tokenizer's files: vocab.json + merges.txt, or tokenizer.json, and the special
// tokens named by tokenizer_config.json / special_tokens_map.json.
#pragma once

#include <cstdint>
#include <filesystem>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace diffbench::tokenizer_detail {

struct TokenizerFiles {
  std::vector<std::pair<std::string, int64_t>> vocab;          // token -> id
  std::string vocab_source;                                    // the file it came from
  std::vector<std::pair<std::string, std::string>> merges;     // in rank order
  std::string merges_source;
  std::vector<std::pair<std::string, int64_t>> added_tokens;   // tokenizer.json added_tokens
  // Special token strings from the configs (unset when no file names them).
  std::optional<std::string> bos, eos, unk, pad;
  // additional_special_tokens (id -1: looked up) and added_tokens_decoder (with their ids)
  std::vector<std::pair<std::string, int64_t>> extra_specials;
  std::string config_source;                // the config file that named them, for errors
};

// vocab.json as {token: id}; merges.txt lines "a b" after an optional "#version" line.
void read_vocab_json(const std::filesystem::path& file, TokenizerFiles& out);
void read_merges_txt(const std::filesystem::path& file, TokenizerFiles& out);
// tokenizer.json: model.vocab, model.merges ("a b" strings or [a, b] pairs), added_tokens and
// padding.pad_token.
void read_tokenizer_json(const std::filesystem::path& file, TokenizerFiles& out);
// tokenizer_config.json and special_tokens_map.json in `dir`, when present (the former wins).
void read_special_token_configs(const std::filesystem::path& dir, TokenizerFiles& out);

}  // namespace diffbench::tokenizer_detail
