// A Python file's syntax tree, read by Python's own `ast` module: `python3 -I -S` runs a small script
// that reads the file's text from standard input and prints the tree as JSON. The file itself is
// never executed or imported.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace diffbench {

// The module's tree: every node an object {"_t": "ClassName", "lineno", "end_lineno", fields...};
// statements also carry "_src", their source text. InputError (exit 2) when no python3 is on PATH
// ($DIFFBENCH_PYTHON names another interpreter) or the file has a syntax error ("FILE:LINE").
nlohmann::json parse_python(const std::string& text, const std::filesystem::path& file);

}  // namespace diffbench
