// libFuzzer target: the CLIP tokenizer, loading and encoding. The first byte picks what the rest is:
//   'E' (byte % 3 == 0): a prompt, encoded by the tokenizer in $DIFFBENCH_FUZZ_TOKENIZER (a folder with
//                        vocab.json + merges.txt; tools/fuzz.sh passes the full CLIP vocabulary when
//                        ../shared has it, else the demo model's) in both flavours, Hugging Face and open_clip;
//   'L' (1): vocab.json NUL merges.txt NUL prompt: the files loaded from a folder, then the prompt encoded;
//   'J' (2): tokenizer.json NUL prompt: the same through tokenizer.json;
//   'G' (exactly): the bytes of an open_clip bpe_simple_vocab_16e6.txt.gz, loaded from a folder holding only
//                  it (gzip inflation, the merges list, the derived vocabulary), then a prompt encoded.
// Any exception but InputError is a bug, and so is an encoding that is not BOS, the first tokens of
// tokenize(), EOS and padding, max_length ids in all, each a vocabulary id.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

#include "diffbench/error.hpp"
#include "diffbench/tokenizer/clip_tokenizer.hpp"
#include "fuzz_support.hpp"

using diffbench::ClipTokenizer;
using diffbench::fuzz::check;

namespace {

void check_encoding(const ClipTokenizer& tok, const std::string& text) {
  std::vector<int64_t> ids, tokens;
  try {
    ids = tok.encode(text);
    tokens = tok.tokenize(text);
  } catch (const diffbench::InputError&) {
    return;  // invalid UTF-8
  }
  const size_t length = static_cast<size_t>(tok.max_length());
  check(ids.size() == length, "encode() did not give max_length ids");
  check(ids.front() == tok.bos_id(), "encode() does not start with BOS");
  const size_t n = std::min(tokens.size(), length - 2);
  for (size_t i = 0; i < n; ++i) check(ids[i + 1] == tokens[i], "encode() differs from tokenize()'s first tokens");
  check(ids[n + 1] == tok.eos_id(), "EOS is not after the text's tokens");
  for (size_t i = n + 2; i < length; ++i) check(ids[i] == tok.pad_id(), "padding is not the pad id");
  for (int64_t id : tokens) check(id >= 0 && id < tok.vocab_size(), "a token id outside the vocabulary");
  // The mask covers BOS up to the first EOS after it (the text may hold EOS tokens of its own).
  const auto mask = tok.attention_mask(ids);
  const size_t first_eos = static_cast<size_t>(std::find(ids.begin() + 1, ids.end(), tok.eos_id()) - ids.begin());
  check(mask.size() == length, "the attention mask has another length");
  for (size_t i = 0; i < length; ++i) check(mask[i] == (i <= first_eos ? 1 : 0), "the attention mask is not BOS..EOS");
}

// Splits at the first NUL; the second part is empty when there is none.
std::pair<std::string, std::string> split(const std::string& s) {
  const size_t nul = s.find('\0');
  if (nul == std::string::npos) return {s, ""};
  return {s.substr(0, nul), s.substr(nul + 1)};
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  static const std::vector<ClipTokenizer> fixed = [] {
    const char* dir = std::getenv("DIFFBENCH_FUZZ_TOKENIZER");
    if (!dir) {
      std::fprintf(stderr, "set DIFFBENCH_FUZZ_TOKENIZER to a folder with vocab.json and merges.txt\n");
      std::exit(2);
    }
    return std::vector<ClipTokenizer>{ClipTokenizer::from_dir(dir), ClipTokenizer::open_clip(dir)};
  }();
  const std::string rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const auto& dir = diffbench::fuzz::scratch_dir();
  std::optional<ClipTokenizer> loaded, loaded_open_clip;
  std::string text;
  try {
    if (data[0] == 'G') {
      for (const char* f : {"vocab.json", "merges.txt", "tokenizer.json"}) std::filesystem::remove(dir / f);
      diffbench::fuzz::write_scratch("bpe_simple_vocab_16e6.txt.gz", rest.data(), rest.size());
      text = "a photo of a cat";
      loaded = ClipTokenizer::from_dir(dir);
      loaded_open_clip = ClipTokenizer::open_clip(dir);
    } else switch (data[0] % 3) {
      case 0:
        for (const auto& tok : fixed) check_encoding(tok, rest);
        return 0;
      case 1: {
        const auto [vocab, after] = split(rest);
        const auto [merges, prompt] = split(after);
        std::filesystem::remove(dir / "tokenizer.json");
        std::filesystem::remove(dir / "bpe_simple_vocab_16e6.txt.gz");
        diffbench::fuzz::write_scratch("vocab.json", vocab.data(), vocab.size());
        diffbench::fuzz::write_scratch("merges.txt", merges.data(), merges.size());
        text = prompt;
        loaded = ClipTokenizer::from_dir(dir);
        loaded_open_clip = ClipTokenizer::open_clip(dir);
        break;
      }
      default: {
        const auto [json, prompt] = split(rest);
        const auto file = diffbench::fuzz::write_scratch("tokenizer.json", json.data(), json.size());
        text = prompt;
        loaded = ClipTokenizer::from_tokenizer_json(file);
        break;
      }
    }
  } catch (const diffbench::InputError&) {
    if (!loaded) return 0;  // open_clip's stricter special tokens may still refuse what from_dir took
  }
  check_encoding(*loaded, text);
  if (loaded_open_clip) check_encoding(*loaded_open_clip, text);
  return 0;
}
