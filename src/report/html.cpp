#include "diffbench/report/html.hpp"

#include <stdexcept>

namespace diffbench::html {

namespace {

bool valid_name(std::string_view name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == ':'))
      return false;
  return true;
}

void check_name(std::string_view name, const char* what) {
  if (!valid_name(name)) throw std::logic_error(std::string("html: bad ") + what + " name '" + std::string(name) + "'");
}

}  // namespace

std::string escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      case '\'': out += "&#39;"; break;
      case '\0': out += "\xEF\xBF\xBD"; break;  // U+FFFD, as an HTML parser reads a NUL in text
      default: out += c;
    }
  }
  return out;
}

void Writer::attrs(const Attrs& attrs) {
  for (const auto& [name, value] : attrs) {
    check_name(name, "attribute");
    out_ += ' ' + name + "=\"" + escape(value) + '"';
  }
}

Writer& Writer::open(std::string_view tag, const Attrs& a) {
  check_name(tag, "tag");
  out_ += '<';
  out_ += tag;
  attrs(a);
  out_ += '>';
  open_.emplace_back(tag);
  return *this;
}

Writer& Writer::close() {
  if (open_.empty()) throw std::logic_error("html: close() with no open tag");
  out_ += "</" + open_.back() + '>';
  open_.pop_back();
  return *this;
}

Writer& Writer::leaf(std::string_view tag, const Attrs& a) {
  check_name(tag, "tag");
  out_ += '<';
  out_ += tag;
  attrs(a);
  out_ += "/>";
  return *this;
}

Writer& Writer::text(std::string_view t) {
  out_ += escape(t);
  return *this;
}

Writer& Writer::element(std::string_view tag, const Attrs& a, std::string_view t) { return open(tag, a).text(t).close(); }

Writer& Writer::trusted(std::string_view markup) {
  out_ += markup;
  return *this;
}

const std::string& Writer::str() const {
  if (!open_.empty()) throw std::logic_error("html: <" + open_.back() + "> is not closed");
  return out_;
}

std::string page(std::string_view title, std::string_view body, std::string_view css, std::string_view script) {
  Writer w;
  w.trusted("<!DOCTYPE html>\n").open("html", {{"lang", "en"}}).open("head");
  w.leaf("meta", {{"charset", "utf-8"}});
  w.leaf("meta", {{"name", "viewport"}, {"content", "width=device-width, initial-scale=1"}});
  w.element("title", {}, title);
  w.open("style").trusted(kBaseCss).trusted(css).close();
  w.close().open("body").trusted(body);
  if (!script.empty()) w.open("script").trusted(script).close();
  w.close().close().trusted("\n");
  return w.str();
}

const char* const kBaseCss = R"css(
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0 auto; max-width: 1400px;
       padding: 16px 24px; color: #1d232a; background: #fff; }
h1 { font-size: 22px; margin: 4px 0 12px; } h2 { font-size: 18px; margin: 28px 0 8px; border-bottom: 1px solid #d8dde3; }
table { border-collapse: collapse; margin: 8px 0; }
th, td { border: 1px solid #d8dde3; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f3f5f7; }
th[data-sort] { cursor: pointer; user-select: none; } th[data-sort]:hover { background: #e4e9ee; }
th.sorted-asc::after { content: " \25B2"; } th.sorted-desc::after { content: " \25BC"; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.verdict { padding: 12px 16px; border-radius: 6px; margin: 8px 0 12px; font-size: 16px; }
.verdict.pass { background: #e5f5e8; border: 1px solid #7cc58a; }
.verdict.warn { background: #fff6dd; border: 1px solid #e0b640; }
.verdict.fail { background: #fde8e8; border: 1px solid #e07b7b; }
.verdict .word { font-weight: 700; font-size: 20px; margin-right: 12px; }
.warning { background: #fff6dd; border-left: 4px solid #e0b640; padding: 6px 10px; margin: 6px 0; }
.failure { background: #fde8e8; border-left: 4px solid #e07b7b; padding: 6px 10px; margin: 6px 0; }
.muted { color: #5f6b77; } code { background: #f3f5f7; padding: 0 3px; border-radius: 3px; }
)css";

const char* const kSortScript = R"js(
document.querySelectorAll('th[data-sort]').forEach(function (th) {
  th.addEventListener('click', function () {
    var table = th.closest('table'), body = table.tBodies[0], key = th.getAttribute('data-sort');
    var worst = th.getAttribute('data-worst') === 'desc' ? -1 : 1;
    var dir = th.classList.contains(worst > 0 ? 'sorted-asc' : 'sorted-desc') ? -worst : worst;
    table.querySelectorAll('th[data-sort]').forEach(function (h) { h.classList.remove('sorted-asc', 'sorted-desc'); });
    th.classList.add(dir > 0 ? 'sorted-asc' : 'sorted-desc');
    var rows = Array.prototype.slice.call(body.rows);
    rows.sort(function (a, b) {
      var x = parseFloat(a.getAttribute('data-' + key)), y = parseFloat(b.getAttribute('data-' + key));
      if (isNaN(x) || isNaN(y)) return isNaN(x) - isNaN(y);
      return x === y ? parseFloat(a.getAttribute('data-index')) - parseFloat(b.getAttribute('data-index')) : dir * (x - y);
    });
    rows.forEach(function (r) { body.appendChild(r); });
  });
});
)js";

}  // namespace diffbench::html
