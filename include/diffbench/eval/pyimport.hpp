// A user's Python pipeline file (`1_gen.py`: a diffusers pipeline in a module-level `pipe`, with
// DeepCache, ToMe, T-GATE or a scheduler change applied) translated into a PipelineSpec, statically:
// Python's ast module parses it (eval/python_ast), this interpreter follows the module-level
// statements, functions called from there and `if __name__ == "__main__":`. The file is never run.
//
// Recognised: imports and aliases; constant bindings (strings, numbers, f-strings of constants,
// `"cuda" if torch.cuda.is_available() else "cpu"` -> cuda); StableDiffusionPipeline /
// DiffusionPipeline / AutoPipelineForText2Image .from_pretrained(...) and .to(...); scheduler swaps
// (XScheduler.from_config(pipe.scheduler.config) or .from_pretrained(id, subfolder="scheduler"));
// DeepCacheSDHelper; tomesd.apply_patch / remove_patch; TgateSDLoader, TgateSDDeepCacheLoader and
// pipe.tgate(...); steps, guidance and size from calls of the pipeline. Memory and logging options,
// torch.compile of a component, torch.backends flags, prints, saving and timing are listed as
// not affecting the measurement. Anything else that touches `pipe` or one of its components is an
// InputError naming FILE:LINE and the statement.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

#include "diffbench/pipeline/spec.hpp"

namespace diffbench {

struct PyImport {
  PipelineSpec spec;  // spec.origin holds {"python", "pipeline_class", "statements", "ignored"}
  nlohmann::json statements = nlohmann::json::array();  // {"line", "text", "became"}
  nlohmann::json ignored = nlohmann::json::array();     // {"line", "text", "why"}
};

// Translates the file (its model is not resolved: see resolve_spec_model).
PyImport import_python(const std::filesystem::path& file);
PyImport import_python_text(const std::string& text, const std::filesystem::path& file);

// The spec as TOML, with the statement table as comments.
std::string to_toml(const PyImport& imported);

// What every command that takes a pipeline calls: FILE.py through import_python, any other file as
// a TOML spec (load_spec); the model resolved either way.
PipelineSpec load_pipeline_file(const std::filesystem::path& file);

}  // namespace diffbench
