// One logger with levels. Owned by the caller (the command) and passed down; no global state.
#pragma once

#include <iosfwd>
#include <string>

namespace diffbench {

class Progress;

enum class LogLevel { Quiet = 0, Error = 1, Warn = 2, Info = 3, Debug = 4 };

class Logger {
 public:
  // `progress` enables the in-place progress line (the command turns it on only on a TTY).
  Logger(LogLevel level, std::ostream& out, bool progress = false);

  // A logger that prints nothing; for library callers that do not care.
  static const Logger& silent();

  LogLevel level() const { return level_; }
  bool progress_enabled() const { return progress_; }

  void error(const std::string& msg) const { write(LogLevel::Error, "error: ", msg); }
  void warn(const std::string& msg) const { write(LogLevel::Warn, "warning: ", msg); }
  void info(const std::string& msg) const { write(LogLevel::Info, "", msg); }
  void debug(const std::string& msg) const { write(LogLevel::Debug, "debug: ", msg); }

  // Draws "label [#####.....] done/total" in place; a final call with done == total ends the line.
  // While a Progress (progress.hpp) runs, the step goes into its line instead.
  void progress(const std::string& label, long done, long total) const;

 private:
  friend class Progress;
  void write(LogLevel lvl, const char* prefix, const std::string& msg) const;
  void set_progress(const Progress* p) const { active_ = p; }
  void progress_line(const std::string& text) const;  // "\r" + text, the rest of the line cleared
  void end_progress_line() const;                      // a newline after an in-place line
  LogLevel level_;
  std::ostream* out_;
  bool progress_;
  mutable const Progress* active_ = nullptr;
  mutable bool line_open_ = false;  // an in-place line is on the terminal
};

}  // namespace diffbench
