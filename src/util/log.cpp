#include "diffbench/log.hpp"

#include <iostream>
#include <sstream>

#include "diffbench/progress.hpp"

namespace diffbench {

Logger::Logger(LogLevel level, std::ostream& out, bool progress)
    : level_(level), out_(&out), progress_(progress) {}

const Logger& Logger::silent() {
  static const Logger quiet(LogLevel::Quiet, std::cerr, false);
  return quiet;
}

void Logger::write(LogLevel lvl, const char* prefix, const std::string& msg) const {
  if (static_cast<int>(lvl) > static_cast<int>(level_)) return;
  if (line_open_) {  // a message goes above the in-place line, which the next update redraws
    (*out_) << "\r\033[K";
    line_open_ = false;
  }
  (*out_) << prefix << msg << '\n';
  out_->flush();
}

void Logger::progress(const std::string& label, long done, long total) const {
  if (!progress_ || level_ < LogLevel::Info || total <= 0) return;
  if (active_) return active_->step(done, total);
  constexpr int kWidth = 30;
  const int filled = static_cast<int>(kWidth * done / total);
  std::ostringstream line;
  line << '\r' << label << " [" << std::string(filled, '#') << std::string(kWidth - filled, '.') << "] "
       << done << '/' << total;
  (*out_) << line.str();
  if (done >= total) (*out_) << '\n';
  out_->flush();
}

void Logger::progress_line(const std::string& text) const {
  (*out_) << '\r' << text << "\033[K";
  out_->flush();
  line_open_ = true;
}

void Logger::end_progress_line() const {
  if (!line_open_) return;
  (*out_) << '\n';
  out_->flush();
  line_open_ = false;
}

}  // namespace diffbench
