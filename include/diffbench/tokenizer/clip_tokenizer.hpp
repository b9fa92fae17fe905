// CLIP's byte-level BPE tokenizer, in two flavours that give the same ids on ordinary prompts:
//  - Hugging Face's CLIPTokenizer (transformers' fast tokenizer): special tokens split out of the raw
//    text, then NFC, whitespace runs -> one space, lower-casing (per character), the CLIP split regex,
//    byte-level symbols, BPE with "</w>" on each word's last symbol; BOS + ids + EOS, truncated to
//    max_length keeping EOS last, padded with the pad token (<|endoftext|> for SD1.x, "!" for some SD2).
//  - open_clip's SimpleTokenizer: ftfy-lite cleaning (see open_clip()), html.unescape twice, whitespace
//    collapsed and stripped, Python str.lower; same BPE; padded with 0, EOT kept last on truncation.
#pragma once

#include <cstdint>
#include <filesystem>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <ATen/ATen.h>

namespace diffbench {

struct TokenizerOptions {
  int max_length = 77;                   // ids per prompt, BOS and EOS included
  std::optional<std::string> pad_token;  // overrides the folder's pad token when set
};

class ClipTokenizer {
 public:
  // vocab.json + merges.txt when present, else tokenizer.json, else open_clip's
  // bpe_simple_vocab_16e6.txt.gz (the vocabulary derived as CLIP does); with tokenizer_config.json /
  // special_tokens_map.json when present. Throws InputError naming the missing or corrupt file.
  static ClipTokenizer from_dir(const std::filesystem::path& dir, const TokenizerOptions& options = {});
  // A Hugging Face tokenizer.json alone: model.vocab, model.merges ("a b" or ["a", "b"]),
  // added_tokens, padding.pad_token.
  static ClipTokenizer from_tokenizer_json(const std::filesystem::path& file, const TokenizerOptions& options = {});
  // open_clip's SimpleTokenizer over the vocab.json + merges.txt (or bpe_simple_vocab_16e6.txt.gz)
  // in `dir`; pads with 0.
  // ftfy.fix_text is approximated by NFC, quote uncurling, Latin ligatures and full-width forms;
  // its mojibake repair is not done.
  static ClipTokenizer open_clip(const std::filesystem::path& dir, const TokenizerOptions& options = {});

  ~ClipTokenizer();
  ClipTokenizer(const ClipTokenizer&);
  ClipTokenizer& operator=(const ClipTokenizer&);
  ClipTokenizer(ClipTokenizer&&) noexcept;
  ClipTokenizer& operator=(ClipTokenizer&&) noexcept;

  // BOS, the text's tokens, EOS, padding: exactly max_length() ids. Throws InputError
  // (where = "prompt") on invalid UTF-8. Thread-safe.
  std::vector<int64_t> encode(const std::string& text) const;
  // The tokens of the text alone: no BOS/EOS, no truncation, no padding.
  std::vector<int64_t> tokenize(const std::string& text) const;
  // [B, max_length] int64.
  at::Tensor encode_batch(const std::vector<std::string>& texts) const;
  // 1 up to and including the first EOS after BOS, 0 after it.
  std::vector<int64_t> attention_mask(const std::vector<int64_t>& ids) const;

  int64_t bos_id() const;
  int64_t eos_id() const;
  int64_t pad_id() const;
  int max_length() const;
  int64_t vocab_size() const;
  bool is_open_clip() const;

  struct Impl;

 private:
  explicit ClipTokenizer(std::shared_ptr<Impl> impl);
  std::shared_ptr<Impl> impl_;
};

// Writes the vocabulary and merges of the tokenizer folder `dir` (any layout from_dir reads) as
// Hugging Face's vocab.json (one line, as Python's json.dumps(vocab, ensure_ascii=False) writes it)
// and merges.txt into `out_dir`, so that transformers' CLIPTokenizer can read that folder.
void write_clip_vocab_files(const std::filesystem::path& dir, const std::filesystem::path& out_dir);

}  // namespace diffbench
