// The demo's CLIP BPE vocabulary: byte-level symbols (as OpenAI CLIP's bytes_to_unicode), each
// also with "</w>", then merges learned from the grammar's words until every word is one token,
// then <|startoftext|> and <|endoftext|>. Written as vocab.json + merges.txt (+ the tokenizer
// configs), so ClipTokenizer and transformers' CLIPTokenizer load it like any CLIP tokenizer.
#pragma once

#include <cstdint>
#include <filesystem>
#include <string>
#include <utility>
#include <vector>

namespace diffbench::demo {

struct BpeVocab {
  std::vector<std::string> tokens;                           // id -> token
  std::vector<std::pair<std::string, std::string>> merges;  // in rank order
  int64_t bos_id = 0;                                        // <|startoftext|>
  int64_t eos_id = 0;                                        // <|endoftext|> (also pad and unk)
};

// BPE trained on `words` (each counted once): repeatedly merge the most frequent adjacent pair
// (ties: the lexicographically smallest), until no word has two symbols left.
BpeVocab build_bpe_vocab(const std::vector<std::string>& words);

// vocab.json, merges.txt ("#version: 0.2" first), tokenizer_config.json and
// special_tokens_map.json into `dir` (created when missing).
void write_tokenizer_files(const BpeVocab& vocab, const std::filesystem::path& dir);

}  // namespace diffbench::demo
