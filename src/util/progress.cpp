#include "diffbench/progress.hpp"

#include <cmath>
#include <cstdio>
#include <algorithm>
#include <numeric>

namespace diffbench {

namespace {

std::string rate(double v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, v >= 100 ? "%.0f" : v >= 10 ? "%.1f" : "%.2f", v);
  return buf;
}

}  // namespace

Progress::Progress(const Logger& log, std::string label, std::vector<std::pair<std::string, size_t>> groups)
    : log_(log), label_(std::move(label)), groups_(std::move(groups)), done_(groups_.size(), 0),
      seconds_(groups_.size(), 0.0), active_(log.level() >= LogLevel::Info) {
  for (const auto& g : groups_) total_ += g.second;
  if (active_) log_.set_progress(this);
}

Progress::~Progress() {
  if (!active_) return;
  log_.set_progress(nullptr);
  log_.end_progress_line();
}

std::string Progress::clock(double s) {
  if (!std::isfinite(s) || s < 0) return "?";
  const long t = std::lround(s);
  char buf[32];
  if (t >= 3600) std::snprintf(buf, sizeof buf, "%ld:%02ld:%02ld", t / 3600, (t / 60) % 60, t % 60);
  else std::snprintf(buf, sizeof buf, "%ld:%02ld", t / 60, t % 60);
  return buf;
}

std::string Progress::figures(bool running) const {
  const size_t done = std::accumulate(done_.begin(), done_.end(), size_t{0});
  const double secs = std::accumulate(seconds_.begin(), seconds_.end(), 0.0);
  std::string out = "batch " + std::to_string(running ? std::min(done + 1, total_) : done) + "/" + std::to_string(total_);
  if (!running && done > 0 && !groups_[last_group_].first.empty()) out += " (" + groups_[last_group_].first + ")";
  if (secs > 0) out += " · " + rate(static_cast<double>(images_) / secs) + " images/s";
  double eta = done > 0 ? 0.0 : std::nan("");
  for (size_t g = 0; g < groups_.size() && done > 0; ++g) {
    const double mean = done_[g] > 0 ? seconds_[g] / static_cast<double>(done_[g]) : secs / static_cast<double>(done);
    eta += mean * static_cast<double>(groups_[g].second - std::min(done_[g], groups_[g].second));
  }
  return out + " · ETA " + clock(eta);
}

void Progress::batch_done(size_t group, size_t images, double seconds) {
  if (group >= groups_.size()) return;
  ++done_[group];
  seconds_[group] += seconds;
  images_ += images;
  last_group_ = group;
  if (!active_) return;
  const size_t done = std::accumulate(done_.begin(), done_.end(), size_t{0});
  if (log_.progress_enabled()) draw(static_cast<double>(done) / static_cast<double>(std::max<size_t>(total_, 1)), figures());
  else log_.info(label_ + ": " + figures());
}

void Progress::step(long done, long total) const {
  if (!active_ || !log_.progress_enabled() || total <= 0) return;
  const size_t batches = std::accumulate(done_.begin(), done_.end(), size_t{0});
  const double fraction = (static_cast<double>(batches) + static_cast<double>(done) / static_cast<double>(total)) /
                          static_cast<double>(std::max<size_t>(total_, 1));
  draw(fraction, figures(true) + " · step " + std::to_string(done) + "/" + std::to_string(total));
}

void Progress::draw(double fraction, const std::string& text) const {
  constexpr int kWidth = 24;
  const int filled = static_cast<int>(std::clamp(fraction, 0.0, 1.0) * kWidth);
  log_.progress_line(label_ + " [" + std::string(filled, '#') + std::string(kWidth - filled, '.') + "] " + text);
}

}  // namespace diffbench
