// Typed errors thrown by the library. The command maps each kind to an exit code in one place.
#pragma once

#include <stdexcept>
#include <string>

namespace diffbench {

enum class ErrorKind {
  Usage,        // a bad command line or option value                       -> exit 2
  Input,        // a missing, unreadable or malformed file, prompt or spec   -> exit 2
  Model,        // a checkpoint that disagrees with its config (keys/shapes) -> exit 2
  OutOfMemory,  // the device or host ran out of memory                      -> exit 2
  Numeric,      // NaN or inf in a run's latents or images (dtype, method)   -> exit 2
  Runtime,      // anything else that went wrong while running               -> exit 3
};

// Base of every error the library throws. `where()` names the file, tensor, key or option
// the error is about (may be empty); `what()` is "where: message" ready to print.
class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message, const std::string& where = {});
  ErrorKind kind() const noexcept { return kind_; }
  const std::string& where() const noexcept { return where_; }
  const std::string& message() const noexcept { return message_; }
  int exit_code() const noexcept;

 private:
  ErrorKind kind_;
  std::string where_;
  std::string message_;
};

class UsageError : public Error {
 public:
  explicit UsageError(const std::string& message, const std::string& where = {})
      : Error(ErrorKind::Usage, message, where) {}
};

class InputError : public Error {
 public:
  explicit InputError(const std::string& message, const std::string& where = {})
      : Error(ErrorKind::Input, message, where) {}
};

class ModelError : public Error {
 public:
  explicit ModelError(const std::string& message, const std::string& where = {})
      : Error(ErrorKind::Model, message, where) {}
};

class OutOfMemoryError : public Error {
 public:
  explicit OutOfMemoryError(const std::string& message, const std::string& where = {})
      : Error(ErrorKind::OutOfMemory, message, where) {}
};

class NumericError : public Error {
 public:
  explicit NumericError(const std::string& message, const std::string& where = {})
      : Error(ErrorKind::Numeric, message, where) {}
};

class RuntimeFailure : public Error {
 public:
  explicit RuntimeFailure(const std::string& message, const std::string& where = {})
      : Error(ErrorKind::Runtime, message, where) {}
};

}  // namespace diffbench
