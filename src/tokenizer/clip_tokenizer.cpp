#include "diffbench/tokenizer/clip_tokenizer.hpp"

#include <algorithm>
#include <array>
#include <climits>
#include <cstdint>
#include <mutex>
#include <queue>
#include <unordered_map>
#include <unordered_set>

#include "diffbench/error.hpp"
#include "tokenizer/text.hpp"
#include "tokenizer/tokenizer_files.hpp"

namespace fs = std::filesystem;

namespace diffbench {

using namespace tokenizer_detail;

namespace {

constexpr const char* kEndOfWord = "</w>";
constexpr size_t kMaxCachedWords = 100000;

uint64_t pair_key(int32_t a, int32_t b) {
  return (static_cast<uint64_t>(static_cast<uint32_t>(a)) << 32) | static_cast<uint32_t>(b);
}

// The GPT-2 byte-level pre-tokenizer's split of a special literal such as "<|endoftext|>" that the
// CLIP split regex kept whole: runs of letters and runs of other characters ("<|", "endoftext", "|>").
std::vector<std::u32string_view> letter_runs(std::u32string_view text) {
  std::vector<std::u32string_view> runs;
  size_t begin = 0;
  for (size_t i = 1; i <= text.size(); ++i) {
    if (i == text.size() || is_letter(text[i]) != is_letter(text[begin])) {
      runs.push_back(text.substr(begin, i - begin));
      begin = i;
    }
  }
  return runs;
}

// Characters that open_clip's split regex (Python `regex`, IGNORECASE) matches by no alternative:
// whitespace, and U+0345, which case-folds to a letter yet is none, so neither [\p{L}] nor its
// complement takes it.
bool open_clip_unmatched(char32_t c) { return c == 0x345 || is_python_space(c); }

}  // namespace

struct ClipTokenizer::Impl {
  bool open_clip = false;
  int max_length = 77;
  int64_t bos = 0, eos = 0, pad = 0, unk = 0, vocab_size = 0;

  std::array<int32_t, 256> byte_id{};      // id of a byte's symbol, -1 when not in the vocabulary
  std::array<int32_t, 256> byte_end_id{};  // the same with "</w>" appended
  std::unordered_map<uint64_t, std::pair<int32_t, int32_t>> merges;  // (left, right) -> (rank, merged id)

  // Hugging Face: tokens split out of the raw text before normalisation, longest first.
  std::vector<std::pair<std::u32string, int64_t>> added;
  // Literals of the split regex and what they become (open_clip: an id; HF: -1, split further).
  std::vector<std::u32string> split_literals;
  std::vector<int64_t> literal_ids;

  mutable std::mutex cache_mutex;
  mutable std::unordered_map<std::string, std::vector<int32_t>> cache;

  // The merges of one word: repeatedly the pair of lowest rank, the leftmost of equal ones (as the
  // reference's loop, which merges every occurrence of the best pair left to right; a merged token's
  // own pairs always rank later). A heap of candidate pairs over a linked list of symbols makes this
  // O(n log n) in the word's length, so that a 1 MB "word" takes a second rather than minutes.
  std::vector<int32_t> merge_symbols(const std::string& word) const {
    const size_t n = word.size();
    std::vector<int32_t> id(n);
    std::vector<size_t> next(n), prev(n);
    std::vector<bool> alive(n, true);
    for (size_t i = 0; i < n; ++i) {
      const auto b = static_cast<unsigned char>(word[i]);
      id[i] = i + 1 == n ? byte_end_id[b] : byte_id[b];
      next[i] = i + 1;  // n = none
      prev[i] = i == 0 ? n : i - 1;
    }
    struct Candidate {
      int32_t rank;
      size_t left;
      int32_t left_id, right_id;
      bool operator>(const Candidate& o) const { return rank != o.rank ? rank > o.rank : left > o.left; }
    };
    std::priority_queue<Candidate, std::vector<Candidate>, std::greater<Candidate>> heap;
    auto consider = [&](size_t left) {
      if (left >= n || next[left] >= n) return;
      auto it = merges.find(pair_key(id[left], id[next[left]]));
      if (it != merges.end()) heap.push({it->second.first, left, id[left], id[next[left]]});
    };
    for (size_t i = 0; i + 1 < n; ++i) consider(i);
    while (!heap.empty()) {
      const Candidate c = heap.top();
      heap.pop();
      const size_t right = next[c.left];
      // Stale when either symbol has been merged since the candidate was pushed.
      if (!alive[c.left] || right >= n || id[c.left] != c.left_id || id[right] != c.right_id) continue;
      id[c.left] = merges.at(pair_key(c.left_id, c.right_id)).second;
      alive[right] = false;
      next[c.left] = next[right];
      if (next[right] < n) prev[next[right]] = c.left;
      if (prev[c.left] < n) consider(prev[c.left]);
      consider(c.left);
    }
    std::vector<int32_t> symbols;
    for (size_t i = 0; i < n; i = next[i]) symbols.push_back(id[i]);
    return symbols;
  }

  // BPE over the bytes of one pre-tokenized word; "</w>" goes on the last symbol.
  std::vector<int32_t> bpe(const std::string& word) const {
    {
      std::lock_guard<std::mutex> lock(cache_mutex);
      auto it = cache.find(word);
      if (it != cache.end()) return it->second;
    }
    std::vector<int32_t> symbols = merge_symbols(word);
    for (auto& s : symbols)
      if (s < 0) s = static_cast<int32_t>(unk);
    std::lock_guard<std::mutex> lock(cache_mutex);
    if (cache.size() >= kMaxCachedWords) cache.clear();
    cache.emplace(word, symbols);
    return symbols;
  }

  void append_word(std::vector<int64_t>& ids, std::u32string_view word) const {
    for (int32_t id : bpe(encode_utf8(word))) ids.push_back(id);
  }

  // Normalised text -> split -> BPE, until `limit` ids (words after it cannot change those before).
  void append_pieces(std::vector<int64_t>& ids, const std::u32string& text, size_t limit) const {
    const auto space = open_clip ? &open_clip_unmatched : &is_white_space;
    for (const Piece& p : clip_split(text, split_literals, space)) {
      if (ids.size() >= limit) return;
      const std::u32string_view piece = std::u32string_view(text).substr(p.begin, p.end - p.begin);
      if (p.special >= 0 && literal_ids[p.special] >= 0) {
        ids.push_back(literal_ids[p.special]);
      } else if (p.special >= 0) {
        for (auto run : letter_runs(piece)) append_word(ids, run);
      } else {
        append_word(ids, piece);
      }
    }
  }

  std::vector<int64_t> tokenize(const std::string& text, size_t limit = SIZE_MAX) const {
    const std::u32string chars = decode_utf8(text, "prompt");
    std::vector<int64_t> ids;
    if (open_clip) {
      // basic_clean (ftfy, html.unescape twice, strip), whitespace_clean, str.lower
      std::u32string cleaned = html_unescape(html_unescape(ftfy_lite(chars)));
      append_pieces(ids, lower_python(python_split_join(cleaned)), limit);
      return ids;
    }
    // Special tokens come out of the raw text first; the rest is normalised segment by segment.
    auto append_segment = [&](size_t begin, size_t end) {
      if (begin == end || ids.size() >= limit) return;
      const std::u32string_view segment = std::u32string_view(chars).substr(begin, end - begin);
      append_pieces(ids, lower_per_char(collapse_white_space(nfc(segment))), limit);
    };
    size_t start = 0;
    for (size_t i = 0; i < chars.size() && ids.size() < limit;) {
      const std::pair<std::u32string, int64_t>* match = nullptr;
      for (const auto& token : added) {
        if (chars.compare(i, token.first.size(), token.first) == 0) {
          match = &token;
          break;
        }
      }
      if (!match) {
        ++i;
        continue;
      }
      append_segment(start, i);
      ids.push_back(match->second);
      i += match->first.size();
      start = i;
    }
    append_segment(start, chars.size());
    return ids;
  }
};

namespace {

std::shared_ptr<ClipTokenizer::Impl> build(const TokenizerFiles& files, const TokenizerOptions& options,
                                           bool open_clip) {
  if (options.max_length < 2)
    throw UsageError("max_length must be at least 2 (BOS and EOS), got " + std::to_string(options.max_length),
                     "max_length");
  auto impl = std::make_shared<ClipTokenizer::Impl>();
  impl->open_clip = open_clip;
  impl->max_length = options.max_length;

  std::unordered_map<std::string, int64_t> vocab(files.vocab.begin(), files.vocab.end());
  std::unordered_map<std::string, int64_t> added(files.added_tokens.begin(), files.added_tokens.end());
  for (const auto& [token, id] : files.vocab) impl->vocab_size = std::max(impl->vocab_size, id + 1);
  for (const auto& [token, id] : files.added_tokens) impl->vocab_size = std::max(impl->vocab_size, id + 1);
  for (const auto& [token, id] : files.extra_specials) {
    impl->vocab_size = std::max(impl->vocab_size, id + 1);
    if (id >= 0) added.emplace(token, id);
  }
  if (impl->vocab_size > INT32_MAX) throw InputError("vocabulary ids beyond 2^31", files.vocab_source);

  auto find = [&](const std::string& token) -> int64_t {
    if (auto it = added.find(token); it != added.end()) return it->second;
    if (auto it = vocab.find(token); it != vocab.end()) return it->second;
    return -1;
  };
  auto resolve = [&](const std::string& token, const std::string& role) -> int64_t {
    const int64_t id = find(token);
    if (id < 0)
      throw InputError(role + " '" + token + "' is not in the vocabulary",
                       files.config_source.empty() ? files.vocab_source : files.config_source);
    return id;
  };

  const auto symbols = byte_symbols();
  for (int b = 0; b < 256; ++b) {
    const std::string& symbol = symbols[b];
    impl->byte_id[b] = static_cast<int32_t>(find(symbol));
    impl->byte_end_id[b] = static_cast<int32_t>(find(symbol + kEndOfWord));
  }
  impl->merges.reserve(files.merges.size());
  for (size_t rank = 0; rank < files.merges.size(); ++rank) {
    const auto& [left, right] = files.merges[rank];
    const int64_t a = find(left), b = find(right), merged = find(left + right);
    if (a < 0 || b < 0 || merged < 0)
      throw InputError("merge '" + left + " " + right + "' (rank " + std::to_string(rank) +
                           ") uses a token missing from the vocabulary",
                       files.merges_source);
    // A repeated pair takes its last rank, as the reference implementations' dictionaries do.
    impl->merges.insert_or_assign(pair_key(static_cast<int32_t>(a), static_cast<int32_t>(b)),
                         std::make_pair(static_cast<int32_t>(rank), static_cast<int32_t>(merged)));
  }

  if (open_clip) {
    // open_clip's vocabulary ends with <start_of_text>, <end_of_text>; Hugging Face files call them
    // <|startoftext|>, <|endoftext|>.
    auto special = [&](const char* hf, const char* oc) {
      const int64_t id = find(hf);
      return id >= 0 ? id : resolve(oc, "open_clip special token");
    };
    impl->bos = special("<|startoftext|>", "<start_of_text>");
    impl->eos = special("<|endoftext|>", "<end_of_text>");
    impl->unk = impl->eos;
    impl->pad = options.pad_token ? resolve(*options.pad_token, "pad token") : 0;
    impl->split_literals = {U"<start_of_text>", U"<end_of_text>"};
    impl->literal_ids = {impl->bos, impl->eos};
    return impl;
  }

  const std::string bos = files.bos.value_or("<|startoftext|>");
  const std::string eos = files.eos.value_or("<|endoftext|>");
  const std::string unk = files.unk.value_or("<|endoftext|>");
  const std::string pad = options.pad_token.value_or(files.pad.value_or("<|endoftext|>"));
  impl->bos = resolve(bos, "bos_token");
  impl->eos = resolve(eos, "eos_token");
  impl->unk = resolve(unk, "unk_token");
  impl->pad = resolve(pad, "pad_token");

  // Every special and added token is matched in the raw text, longest first.
  std::unordered_set<std::string> seen;
  auto add = [&](const std::string& content, int64_t id) {
    if (content.empty() || !seen.insert(content).second) return;
    impl->added.emplace_back(decode_utf8(content, "special token"), id);
  };
  for (const auto& [content, id] : files.added_tokens) add(content, id);
  add(bos, impl->bos);
  add(eos, impl->eos);
  add(unk, impl->unk);
  add(pad, impl->pad);
  for (const auto& [content, id] : files.extra_specials) add(content, id >= 0 ? id : resolve(content, "special token"));
  std::stable_sort(impl->added.begin(), impl->added.end(),
                   [](const auto& a, const auto& b) { return a.first.size() > b.first.size(); });
  impl->split_literals = {U"<|startoftext|>", U"<|endoftext|>"};
  impl->literal_ids = {-1, -1};
  return impl;
}

constexpr const char* kBpeSimpleVocab = "bpe_simple_vocab_16e6.txt.gz";

// The vocabulary and merges a tokenizer folder holds: vocab.json + merges.txt, else tokenizer.json
// (when `tokenizer_json`), else open_clip's bpe_simple_vocab_16e6.txt.gz.
TokenizerFiles read_vocab_and_merges(const fs::path& dir, bool tokenizer_json) {
  if (!fs::is_directory(dir)) throw InputError("not a tokenizer directory", dir.string());
  TokenizerFiles files;
  const bool has_vocab = fs::exists(dir / "vocab.json"), has_merges = fs::exists(dir / "merges.txt");
  if (has_vocab && has_merges) {
    read_vocab_json(dir / "vocab.json", files);
    read_merges_txt(dir / "merges.txt", files);
  } else if (tokenizer_json && fs::exists(dir / "tokenizer.json")) {
    read_tokenizer_json(dir / "tokenizer.json", files);
  } else if (!has_vocab && !has_merges && fs::exists(dir / kBpeSimpleVocab)) {
    read_bpe_simple_vocab(dir / kBpeSimpleVocab, files);
  } else {
    const fs::path missing = dir / (has_vocab ? "merges.txt" : "vocab.json");
    throw InputError(std::string("missing (and no ") + (tokenizer_json ? "tokenizer.json or " : "") + kBpeSimpleVocab +
                         " either)",
                     missing.string());
  }
  return files;
}

}  // namespace

ClipTokenizer::ClipTokenizer(std::shared_ptr<Impl> impl) : impl_(std::move(impl)) {}
ClipTokenizer::~ClipTokenizer() = default;
ClipTokenizer::ClipTokenizer(const ClipTokenizer&) = default;
ClipTokenizer& ClipTokenizer::operator=(const ClipTokenizer&) = default;
ClipTokenizer::ClipTokenizer(ClipTokenizer&&) noexcept = default;
ClipTokenizer& ClipTokenizer::operator=(ClipTokenizer&&) noexcept = default;

ClipTokenizer ClipTokenizer::from_dir(const fs::path& dir, const TokenizerOptions& options) {
  TokenizerFiles files = read_vocab_and_merges(dir, /*tokenizer_json=*/true);
  read_special_token_configs(dir, files);
  return ClipTokenizer(build(files, options, false));
}

ClipTokenizer ClipTokenizer::from_tokenizer_json(const fs::path& file, const TokenizerOptions& options) {
  TokenizerFiles files;
  read_tokenizer_json(file, files);
  return ClipTokenizer(build(files, options, false));
}

ClipTokenizer ClipTokenizer::open_clip(const fs::path& dir, const TokenizerOptions& options) {
  return ClipTokenizer(build(read_vocab_and_merges(dir, /*tokenizer_json=*/false), options, true));
}

void write_clip_vocab_files(const fs::path& dir, const fs::path& out_dir) {
  write_vocab_files(read_vocab_and_merges(dir, /*tokenizer_json=*/true), out_dir);
}

std::vector<int64_t> ClipTokenizer::tokenize(const std::string& text) const { return impl_->tokenize(text); }

std::vector<int64_t> ClipTokenizer::encode(const std::string& text) const {
  const size_t length = static_cast<size_t>(impl_->max_length);
  const std::vector<int64_t> tokens = impl_->tokenize(text, length - 2);  // the rest would be cut off
  std::vector<int64_t> ids;
  ids.reserve(length);
  ids.push_back(impl_->bos);
  ids.insert(ids.end(), tokens.begin(), tokens.begin() + static_cast<std::ptrdiff_t>(std::min(tokens.size(), length - 2)));
  ids.push_back(impl_->eos);
  ids.resize(length, impl_->pad);
  return ids;
}

at::Tensor ClipTokenizer::encode_batch(const std::vector<std::string>& texts) const {
  at::Tensor out = at::empty({static_cast<int64_t>(texts.size()), impl_->max_length}, at::kLong);
  int64_t* data = out.data_ptr<int64_t>();
  for (size_t i = 0; i < texts.size(); ++i) {
    const auto ids = encode(texts[i]);
    std::copy(ids.begin(), ids.end(), data + i * ids.size());
  }
  return out;
}

std::vector<int64_t> ClipTokenizer::attention_mask(const std::vector<int64_t>& ids) const {
  std::vector<int64_t> mask(ids.size(), 1);
  for (size_t i = 1; i < ids.size(); ++i) {
    if (ids[i] == impl_->eos) {
      std::fill(mask.begin() + static_cast<std::ptrdiff_t>(i) + 1, mask.end(), 0);
      break;
    }
  }
  return mask;
}

int64_t ClipTokenizer::bos_id() const { return impl_->bos; }
int64_t ClipTokenizer::eos_id() const { return impl_->eos; }
int64_t ClipTokenizer::pad_id() const { return impl_->pad; }
int ClipTokenizer::max_length() const { return impl_->max_length; }
int64_t ClipTokenizer::vocab_size() const { return impl_->vocab_size; }
bool ClipTokenizer::is_open_clip() const { return impl_->open_clip; }

}  // namespace diffbench
