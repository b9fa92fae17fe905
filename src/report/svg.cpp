#include "diffbench/report/svg.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

#include "diffbench/report/html.hpp"
#include "util/format.hpp"

namespace diffbench::svg {

namespace {

constexpr double kLeft = 58, kRight = 14, kTop = 42, kBottom = 46;

std::string num(double v) { return fixed(v, 1); }

// Digits after the point that tell ticks `step` apart.
int tick_digits(double step) { return step >= 1 ? 0 : static_cast<int>(std::ceil(-std::log10(step) - 1e-9)); }

struct Range {
  double lo = std::numeric_limits<double>::infinity(), hi = -std::numeric_limits<double>::infinity();
  void add(double v) {
    if (!std::isfinite(v)) return;
    lo = std::min(lo, v);
    hi = std::max(hi, v);
  }
  bool empty() const { return lo > hi; }
  // A range with room: a single value (or none) widens to a unit around it; 4 % padding either side.
  Range padded(bool from_zero) const {
    Range r = empty() ? Range{0, 1} : *this;
    if (from_zero) r.lo = std::min(0.0, r.lo);
    if (r.hi - r.lo < 1e-12) {
      const double w = std::max(std::abs(r.hi) * 0.05, 1e-3);
      r.lo -= w;
      r.hi += w;
    }
    const double pad = 0.04 * (r.hi - r.lo);
    if (!(from_zero && r.lo == 0)) r.lo -= pad;
    r.hi += pad;
    return r;
  }
};

// Pixel mapping of one plot's frame.
struct Frame {
  double x0, x1, y0, y1;  // data range
  double w, h;            // svg size
  double px(double x) const { return kLeft + (x - x0) / (x1 - x0) * (w - kLeft - kRight); }
  double py(double y) const { return h - kBottom - (y - y0) / (y1 - y0) * (h - kTop - kBottom); }
};

void open_svg(html::Writer& w, const PlotOptions& o, const std::string& klass) {
  w.open("svg", {{"class", "plot " + klass},
                 {"width", std::to_string(o.width)},
                 {"height", std::to_string(o.height)},
                 {"viewBox", "0 0 " + std::to_string(o.width) + " " + std::to_string(o.height)},
                 {"role", "img"},
                 {"font-family", "system-ui, sans-serif"},
                 {"font-size", "11"}});
  w.element("title", {}, o.title);
  w.element("text", {{"x", num(o.width / 2.0)}, {"y", "16"}, {"text-anchor", "middle"}, {"font-size", "13"},
                     {"font-weight", "600"}},
            o.title);
}

// Axes, grid lines, tick labels and axis labels.
void axes(html::Writer& w, const Frame& f, const PlotOptions& o, bool x_ticks = true) {
  const std::string grid = "#e6e9ed", ink = "#4a5560";
  const auto y_ticks = nice_ticks(f.y0, f.y1);
  const int y_digits = tick_digits(y_ticks.size() > 1 ? y_ticks[1] - y_ticks[0] : 1);
  for (double t : y_ticks) {
    const double y = f.py(t);
    w.leaf("line", {{"x1", num(kLeft)}, {"x2", num(f.w - kRight)}, {"y1", num(y)}, {"y2", num(y)}, {"stroke", grid}});
    w.element("text", {{"x", num(kLeft - 5)}, {"y", num(y + 4)}, {"text-anchor", "end"}, {"fill", ink}}, fixed(t, y_digits));
  }
  if (x_ticks) {
    const auto ticks = nice_ticks(f.x0, f.x1);
    const int digits = tick_digits(ticks.size() > 1 ? ticks[1] - ticks[0] : 1);
    for (double t : ticks) {
      const double x = f.px(t);
      w.leaf("line", {{"x1", num(x)}, {"x2", num(x)}, {"y1", num(kTop)}, {"y2", num(f.h - kBottom)}, {"stroke", grid}});
      w.element("text", {{"x", num(x)}, {"y", num(f.h - kBottom + 15)}, {"text-anchor", "middle"}, {"fill", ink}},
                fixed(t, digits));
    }
  }
  w.leaf("rect", {{"x", num(kLeft)}, {"y", num(kTop)}, {"width", num(f.w - kLeft - kRight)},
                  {"height", num(f.h - kTop - kBottom)}, {"fill", "none"}, {"stroke", ink}});
  w.element("text", {{"x", num((kLeft + f.w - kRight) / 2)}, {"y", num(f.h - 8)}, {"text-anchor", "middle"}}, o.x_label);
  w.element("text", {{"x", "14"}, {"y", num((kTop + f.h - kBottom) / 2)}, {"text-anchor", "middle"},
                     {"transform", "rotate(-90 14 " + num((kTop + f.h - kBottom) / 2) + ")"}},
            o.y_label);
}

// Legend entries in a row above the frame, from `x`.
void legend(html::Writer& w, double x, const std::vector<std::pair<std::string, std::string>>& entries) {
  const double y = kTop - 8;
  for (const auto& [name, colour] : entries) {
    w.leaf("rect", {{"x", num(x)}, {"y", num(y - 9)}, {"width", "10"}, {"height", "10"}, {"fill", colour}});
    w.element("text", {{"x", num(x + 14)}, {"y", num(y)}}, name);
    x += 24 + 6.2 * static_cast<double>(name.size());
  }
}

// A total for people: three significant digits or so.
std::string short_number(double v) { return fixed(v, v >= 100 ? 0 : v >= 10 ? 1 : v >= 1 ? 2 : 3); }

}  // namespace

std::vector<double> nice_ticks(double lo, double hi, int count) {
  if (!(hi > lo) || !std::isfinite(lo) || !std::isfinite(hi)) return {lo};
  const double raw = (hi - lo) / std::max(1, count);
  const double mag = std::pow(10.0, std::floor(std::log10(raw)));
  double step = mag;
  for (double m : {1.0, 2.0, 5.0, 10.0})
    if (m * mag >= raw) {
      step = m * mag;
      break;
    }
  std::vector<double> out;
  for (double t = std::ceil(lo / step) * step; t <= hi + step * 1e-9; t += step) out.push_back(std::abs(t) < step * 1e-9 ? 0 : t);
  return out;
}

std::string plot(const std::vector<Series>& series, const PlotOptions& o) {
  Range xr, yr;
  for (const auto& s : series)
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
      if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) {
        xr.add(s.x[i]);
        yr.add(s.y[i]);
      }
  if (o.diagonal) {  // one range for both axes, so the diagonal is at 45 degrees
    xr.add(yr.lo);
    xr.add(yr.hi);
    yr = xr;
  }
  const Range xp = xr.padded(false), yp = o.diagonal ? xp : yr.padded(o.y_from_zero);
  const Frame f{xp.lo, xp.hi, yp.lo, yp.hi, static_cast<double>(o.width), static_cast<double>(o.height)};
  html::Writer w;
  open_svg(w, o, "xy");
  axes(w, f, o);
  if (o.diagonal)
    w.leaf("line", {{"x1", num(f.px(xp.lo))}, {"y1", num(f.py(xp.lo))}, {"x2", num(f.px(xp.hi))}, {"y2", num(f.py(xp.hi))},
                    {"stroke", "#9aa4ae"}, {"stroke-dasharray", "4 3"}});
  for (const auto& s : series) {
    if (s.lines) {
      std::string pts;
      for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i)
        if (std::isfinite(s.x[i]) && std::isfinite(s.y[i])) pts += num(f.px(s.x[i])) + "," + num(f.py(s.y[i])) + " ";
      w.leaf("polyline", {{"points", pts}, {"fill", "none"}, {"stroke", s.colour}, {"stroke-width", "1.2"},
                          {"stroke-opacity", "0.7"}});
    }
    if (!s.points) continue;
    for (size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      if (!std::isfinite(s.x[i]) || !std::isfinite(s.y[i])) continue;
      html::Attrs circle = {{"cx", num(f.px(s.x[i]))}, {"cy", num(f.py(s.y[i]))}, {"r", "3.2"},
                            {"fill", s.colour}, {"fill-opacity", "0.8"}};
      if (!s.point_class.empty()) circle.push_back({"class", s.point_class});
      if (i < s.tips.size()) {
        w.open("circle", circle).element("title", {}, s.tips[i]).close();
      } else {
        w.leaf("circle", circle);
      }
      if (i < s.labels.size() && !s.labels[i].empty()) {
        // Right of the point, or left of it near the frame's right edge; below it near the top.
        const double lx = f.px(s.x[i]), ly = f.py(s.y[i]);
        const bool left = lx + 8 + 6.0 * static_cast<double>(s.labels[i].size()) > f.w - kRight;
        w.element("text", {{"x", num(left ? lx - 5 : lx + 5)}, {"y", num(ly - 5 < kTop + 10 ? ly + 13 : ly - 5)},
                           {"text-anchor", left ? "end" : "start"}, {"font-size", "10"}, {"fill", "#33404d"},
                           {"class", "point-label"}},
                  s.labels[i]);
      }
    }
  }
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& s : series)
    if (!s.name.empty()) entries.emplace_back(s.name, s.colour);
  legend(w, kLeft, entries);
  w.close();
  return w.str();
}

std::string stacked_bars(const std::vector<std::string>& labels, const std::vector<Segment>& segments,
                         const std::vector<std::vector<double>>& values, const PlotOptions& o) {
  Range yr;
  yr.add(0);
  for (const auto& bar : values) {
    double total = 0;
    for (double v : bar) total += std::isfinite(v) ? std::max(v, 0.0) : 0.0;
    yr.add(total * 1.12);  // room for the total written above the bar
  }
  const Range yp = yr.padded(true);
  const Frame f{0, 1, yp.lo, yp.hi, static_cast<double>(o.width), static_cast<double>(o.height) };
  html::Writer w;
  open_svg(w, o, "bars");
  axes(w, f, o, false);
  const double plot_w = f.w - kLeft - kRight;
  const double slot = plot_w / std::max<size_t>(labels.size(), 1), bar_w = std::min(slot * 0.6, 90.0);
  for (size_t k = 0; k < labels.size() && k < values.size(); ++k) {
    const double x = kLeft + slot * (static_cast<double>(k) + 0.5) - bar_w / 2;
    double base = 0;
    for (size_t s = 0; s < segments.size() && s < values[k].size(); ++s) {
      const double v = std::isfinite(values[k][s]) ? std::max(values[k][s], 0.0) : 0.0;
      const double top = f.py(base + v), bottom = f.py(base);
      w.open("rect", {{"x", num(x)}, {"y", num(top)}, {"width", num(bar_w)}, {"height", num(bottom - top)},
                      {"fill", segments[s].colour}})
          .element("title", {}, labels[k] + ": " + segments[s].name + " " + fixed(v, 4))
          .close();
      base += v;
    }
    w.element("text", {{"x", num(x + bar_w / 2)}, {"y", num(f.py(base) - 4)}, {"text-anchor", "middle"}}, short_number(base));
    w.element("text", {{"x", num(x + bar_w / 2)}, {"y", num(f.h - kBottom + 15)}, {"text-anchor", "middle"}}, labels[k]);
  }
  std::vector<std::pair<std::string, std::string>> entries;
  for (const auto& s : segments) entries.emplace_back(s.name, s.colour);
  legend(w, kLeft, entries);
  w.close();
  return w.str();
}

std::string colour_bar(const std::vector<std::string>& colours, double max, const std::string& label, int width) {
  html::Writer w;
  const int h = 34;
  w.open("svg", {{"class", "colour-bar"}, {"width", std::to_string(width)},
                 {"height", std::to_string(h)}, {"font-family", "system-ui, sans-serif"}, {"font-size", "11"}});
  w.open("defs").open("linearGradient", {{"id", "heat-gradient"}});
  for (size_t i = 0; i < colours.size(); ++i)
    w.leaf("stop", {{"offset", fixed(100.0 * static_cast<double>(i) / std::max<size_t>(colours.size() - 1, 1), 1) + "%"},
                    {"stop-color", colours[i]}});
  w.close().close();
  w.leaf("rect", {{"x", "0"}, {"y", "0"}, {"width", std::to_string(width)}, {"height", "14"}, {"fill", "url(#heat-gradient)"},
                  {"stroke", "#4a5560"}});
  w.element("text", {{"x", "0"}, {"y", "28"}}, "0");
  w.element("text", {{"x", num(width / 2.0)}, {"y", "28"}, {"text-anchor", "middle"}}, label);
  w.element("text", {{"x", std::to_string(width)}, {"y", "28"}, {"text-anchor", "end"}}, fixed(max, max < 10 ? 1 : 0));
  w.close();
  return w.str();
}

}  // namespace diffbench::svg
