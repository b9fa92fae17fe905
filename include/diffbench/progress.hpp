// Progress of a long run, batch by batch, on the logger's stream (stderr): on a terminal one line
// redrawn in place (a bar, batch k/N, images per second, ETA; the step within the batch while it
// runs), otherwise one line per batch with the same figures. Nothing below LogLevel::Info, so
// --quiet silences it while --json (stdout) leaves it on.
#pragma once

#include <string>
#include <vector>

#include "diffbench/log.hpp"

namespace diffbench {

class Progress {
 public:
  // `groups`: each group's name ("" for one unnamed group) and how many batches it will run; the
  // ETA sums each group's remaining batches times that group's mean seconds per batch (the overall
  // mean until a group has one), so two pipelines of different speed, interleaved or one after the
  // other, are estimated alike. While it lives, the logger's step bars draw into its line.
  Progress(const Logger& log, std::string label, std::vector<std::pair<std::string, size_t>> groups);
  ~Progress();
  Progress(const Progress&) = delete;
  Progress& operator=(const Progress&) = delete;

  // One batch of `group` done: `images` images in `seconds`.
  void batch_done(size_t group, size_t images, double seconds);
  // The running batch is at step `done` of `total` (terminal only).
  void step(long done, long total) const;

  // "batch 12/32 (candidate) · 3.41 images/s · ETA 0:42", as printed after the latest batch; with
  // `running`, the batch under way ("batch 13/32 · ...", no group: the caller does not say which).
  std::string figures(bool running = false) const;

  // "0:42", "12:03", "1:02:03"; "?" for a negative or non-finite number of seconds.
  static std::string clock(double seconds);

 private:
  void draw(double fraction, const std::string& text) const;
  const Logger& log_;
  std::string label_;
  std::vector<std::pair<std::string, size_t>> groups_;
  std::vector<size_t> done_;       // batches done per group
  std::vector<double> seconds_;    // their seconds per group
  size_t images_ = 0;
  size_t last_group_ = 0;
  size_t total_ = 0;
  bool active_;
};

}  // namespace diffbench
