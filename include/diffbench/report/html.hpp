// A small HTML (and inline SVG) writer for diffbench's reports. Every piece of text and every
// attribute value goes through html::escape, the one place where untrusted text (prompts, file
// names, spec fields, messages) becomes markup; tag and attribute names are constants of the code
// and are checked. Nothing here knows the evaluation: suite and sweep tables use it as well.
#pragma once

#include <initializer_list>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace diffbench::html {

// & < > " ' as character references: safe in text and in quoted attribute values.
std::string escape(std::string_view text);

// Attributes in order: name (a constant: letters, digits, '-', ':') and value (escaped).
using Attrs = std::vector<std::pair<std::string, std::string>>;

class Writer {
 public:
  // <tag attrs...>; closed by close(). Tag and attribute names must be [a-zA-Z0-9:-]+ (std::logic_error).
  Writer& open(std::string_view tag, const Attrs& attrs = {});
  Writer& close();  // closes the innermost open tag
  // A void element (<img>, <meta>) or, in SVG, a self-closed one (<circle .../>).
  Writer& leaf(std::string_view tag, const Attrs& attrs = {});
  Writer& text(std::string_view text);  // escaped
  // open(tag, attrs), text(text), close().
  Writer& element(std::string_view tag, const Attrs& attrs, std::string_view text);
  // Markup written by this program (the page's CSS and script, another Writer's str()): never text
  // that came from outside.
  Writer& trusted(std::string_view markup);

  // The markup; std::logic_error when a tag is still open.
  const std::string& str() const;

 private:
  void attrs(const Attrs& attrs);
  std::string out_;
  std::vector<std::string> open_;
};

// A whole page: doctype, <meta charset>, title, the shared stylesheet (`kBaseCss`) plus `css`, the
// body markup and `script` at the end of the body. Both `css` and `script` are the program's own.
std::string page(std::string_view title, std::string_view body, std::string_view css = {},
                 std::string_view script = {});

// The stylesheet every diffbench page shares (tables, verdict banner, notes).
extern const char* const kBaseCss;

// The script behind sortable tables: a <th data-sort="KEY" data-worst="asc|desc"> sorts the rows of
// its table's <tbody> by each row's data-KEY attribute (numbers; missing last), worst first on the
// first click and reversed on the next. The page's order without the script is the server's.
extern const char* const kSortScript;

}  // namespace diffbench::html
