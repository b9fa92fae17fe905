#include "diffbench/error.hpp"

namespace diffbench {

namespace {
std::string compose(const std::string& where, const std::string& message) {
  return where.empty() ? message : where + ": " + message;
}
}  // namespace

Error::Error(ErrorKind kind, const std::string& message, const std::string& where)
    : std::runtime_error(compose(where, message)), kind_(kind), where_(where), message_(message) {}

int Error::exit_code() const noexcept {
  switch (kind_) {
    case ErrorKind::Usage:
    case ErrorKind::Input:
    case ErrorKind::Model:
    case ErrorKind::OutOfMemory:
    case ErrorKind::Numeric:
      return 2;
    case ErrorKind::Runtime:
      break;
  }
  return 3;
}

}  // namespace diffbench
