// What `diffbench methods` prints and docs/methods.md holds: every method's description and
// parameters (type, default, range, help), straight from the MethodInfo / ParamSpec declarations.
#pragma once

#include <filesystem>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "diffbench/accel/method.hpp"

namespace diffbench {

// The built-in methods and those of `plugins` (loaded in order; InputError naming a bad one), in
// name order: [{name, description, plugin (plugins' only), incompatible, params: [{name, type,
// default, min, max, min_exclusive, choices, range, help}]}]. `range` is the text "[1, 11]",
// "> 1", "one of: a, b" or "" (any).
nlohmann::json describe_methods(const std::vector<std::filesystem::path>& plugins = {});

// `describe_methods` entries for people: a block per method, a line per parameter. With `only`,
// that method alone (UsageError listing the known names when absent).
std::string render_methods_text(const nlohmann::json& methods, const std::string& only = "");

// docs/methods.md: the built-ins as Markdown tables (regenerate: `diffbench methods --markdown`).
std::string render_methods_markdown(const nlohmann::json& methods);

}  // namespace diffbench
