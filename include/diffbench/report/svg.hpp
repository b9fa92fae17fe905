// Plots as inline SVG, written through html::Writer (so every label and tooltip is escaped): an
// x/y plot of points and lines with an optional y = x diagonal, stacked bars, and a colour bar.
#pragma once

#include <string>
#include <vector>

namespace diffbench::svg {

struct Series {
  std::string name;    // legend entry
  std::string colour;  // a CSS colour of the program's own, e.g. "#1f77b4"
  std::vector<double> x, y;
  std::vector<std::string> tips;  // one tooltip per point (empty: none)
  bool lines = false;             // join the points in order
  bool points = true;
  std::vector<std::string> labels;  // text written beside each point (empty: none)
  std::string point_class;          // the class of each point's <circle> ("": none)
};

struct PlotOptions {
  std::string title, x_label, y_label;
  int width = 440, height = 320;
  bool diagonal = false;      // draw y = x and give both axes the same range
  bool y_from_zero = false;   // the y axis starts at 0
};

// Points (and lines) of every series on shared axes with "nice" ticks. Non-finite values are left out.
std::string plot(const std::vector<Series>& series, const PlotOptions& options);

struct Segment {
  std::string name;
  std::string colour;
};

// One bar per label; bar k stacks values[k][s] for each segment s (bottom to top), with the total
// above the bar and a legend of the segments.
std::string stacked_bars(const std::vector<std::string>& labels, const std::vector<Segment>& segments,
                         const std::vector<std::vector<double>>& values, const PlotOptions& options);

// A horizontal colour bar from 0 to `max` (`colours`: evenly spaced stops), labelled at both ends.
std::string colour_bar(const std::vector<std::string>& colours, double max, const std::string& label, int width = 260);

// Tick positions for [lo, hi]: about `count` round numbers (1, 2 or 5 times a power of ten).
std::vector<double> nice_ticks(double lo, double hi, int count = 5);

}  // namespace diffbench::svg
