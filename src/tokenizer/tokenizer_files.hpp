// Reading a CLIP tokenizer's files: vocab.json + merges.txt, tokenizer.json, or open_clip's
// bpe_simple_vocab_16e6.txt.gz, and the special tokens named by tokenizer_config.json /
// special_tokens_map.json; writing vocab.json + merges.txt.
#pragma once

#include <cstdint>
#include <filesystem>
#include <array>
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

// GPT-2's bytes_to_unicode(): the UTF-8 symbol of each byte. Printable Latin-1 bytes map to
// themselves, the others to U+0100 onwards.
std::array<std::string, 256> byte_symbols();

// vocab.json as {token: id}; merges.txt lines "a b" after an optional "#version" line.
void read_vocab_json(const std::filesystem::path& file, TokenizerFiles& out);
void read_merges_txt(const std::filesystem::path& file, TokenizerFiles& out);
// tokenizer.json: model.vocab, model.merges ("a b" strings or [a, b] pairs), added_tokens and
// padding.pad_token.
void read_tokenizer_json(const std::filesystem::path& file, TokenizerFiles& out);
// open_clip's (and OpenAI CLIP's) bpe_simple_vocab_16e6.txt.gz: a header line, then merges "a b";
// the first 48,894 are used. The vocabulary is derived as CLIP does: the 256 byte symbols (printable
// bytes first), the same with "</w>", one token per merge, <|startoftext|>, <|endoftext|>.
void read_bpe_simple_vocab(const std::filesystem::path& file, TokenizerFiles& out);
// Writes files.vocab (in id order) and files.merges as Hugging Face's vocab.json (one line, as
// json.dumps writes it) and merges.txt ("#version: 0.2" header).
void write_vocab_files(const TokenizerFiles& files, const std::filesystem::path& dir);
// tokenizer_config.json and special_tokens_map.json in `dir`, when present (the former wins).
void read_special_token_configs(const std::filesystem::path& dir, TokenizerFiles& out);

}  // namespace diffbench::tokenizer_detail
