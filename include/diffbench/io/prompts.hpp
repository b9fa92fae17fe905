// Prompt sets for evaluation runs: COCO captions, PartiPrompts, GenEval and plain lists.
#pragma once

#include <cstddef>
#include <string>
#include <vector>

namespace diffbench {

struct PromptSet {
  std::string source;                // the spec it was loaded from, as given
  std::vector<std::string> prompts;  // in file order, text exactly as stored
};

// Loads the first `num_samples` prompts (0 = all) named by `spec`:
//   coco:FILE     COCO captions JSON (images[], annotations[]): for each image in images[] order,
//                 its first caption in annotations[] order (the lowest annotation id in the
//                 official files). Every image taken must have a caption.
//   parti:FILE    PartiPrompts TSV with a header row (Prompt, Category, Challenge, Note): the Prompt
//                 column. Fields are split on tabs only; quote characters are kept as written
//                 (Python's csv module would strip the quotes of a field that starts with one).
//   geneval:FILE  GenEval metadata JSONL: the "prompt" of each line.
//   FILE.txt      one prompt per line.
//   FILE.jsonl    one JSON object per line with a string "prompt".
//   demo          the bundled demo's 32 held-out captions (assets/demo/prompts.txt, io/assets.hpp).
//   coco2017-val  the bundled first captions of the first 5,000 COCO 2017 val images
//                 (assets/prompts/coco2017-val-first-captions.jsonl), the evaluator's default.
// Text is UTF-8 and kept as stored, leading/trailing spaces included; only the line ending (LF or
// CRLF) and a UTF-8 byte-order mark at the start of the file are removed. Blank lines at the end of
// a file are ignored; a blank line elsewhere is an error in .txt and TSV files and skipped in JSONL.
// Throws InputError, with `where` = "FILE" or "FILE:LINE", for a missing file, an unknown prefix or
// extension, invalid UTF-8 or JSON, a line without a string "prompt", an empty set, or fewer
// prompts than `num_samples`.
PromptSet load_prompts(const std::string& spec, size_t num_samples);

}  // namespace diffbench
