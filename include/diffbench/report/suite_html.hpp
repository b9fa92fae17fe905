// suite.html and sweep.html: a suite's suite.json (eval/suite.hpp) and a sweep's sweep.json
// (eval/sweep.hpp) as self-contained pages, written through html::Writer (every name, parameter,
// file name and message is escaped) with inline SVG plots. Nothing is fetched; each candidate's
// report.html is linked relatively, so the pages work where the suite's folder is.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace diffbench {

// suite.html: the tally of results and reasons at the top, then one row per candidate (its
// parameters and file, passed/failed, the reason and messages, speedup with its 95 % interval,
// every metric's value or loss computed, seconds per image, where its baseline came from, a link to
// its report.html or error.json), sortable by any number.
std::string render_suite_html(const nlohmann::json& suite);

// sweep.html: per quality metric of sweep.json's `frontiers`, speedup (x) against the metric (y),
// every point labelled with its grid values and the Pareto-optimal ones (`pareto: true`) joined in
// the order of `frontier`; then the table of points with each metric's frontier marked.
std::string render_sweep_html(const nlohmann::json& sweep);

// The suite's folder `dir`: writes suite.html, and sweep.html when `sweep` is not null.
void write_suite_pages(const std::filesystem::path& dir, const nlohmann::json& suite,
                       const nlohmann::json& sweep = nullptr);

}  // namespace diffbench
