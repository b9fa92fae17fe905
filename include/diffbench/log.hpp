// One logger with levels. Owned by the caller (the command) and passed down; no global state.
#pragma once

#include <iosfwd>
#include <string>

namespace diffbench {

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
  void progress(const std::string& label, long done, long total) const;

 private:
  void write(LogLevel lvl, const char* prefix, const std::string& msg) const;
  LogLevel level_;
  std::ostream* out_;
  bool progress_;
};

}  // namespace diffbench
