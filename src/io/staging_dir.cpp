#include "diffbench/io/staging_dir.hpp"

#include <unistd.h>

#include <fstream>

#include "diffbench/error.hpp"

namespace diffbench {

namespace fs = std::filesystem;

StagingDir::StagingDir(const fs::path& target, bool replace) : target_(target) {
  if (target_.empty()) throw UsageError("no output folder given", "--out");
  if (fs::exists(target_)) {
    if (!fs::is_directory(target_)) throw UsageError("exists and is not a folder", target_.string());
    if (!fs::is_empty(target_) && !replace)
      throw UsageError("output folder exists and is not empty; choose another or pass --force", target_.string());
  }
  const fs::path parent = target_.has_parent_path() ? target_.parent_path() : fs::path(".");
  std::error_code ec;
  fs::create_directories(parent, ec);
  if (ec) throw InputError("cannot create folder: " + ec.message(), parent.string());
  staging_ = parent / ("." + target_.filename().string() + ".partial-" + std::to_string(::getpid()));
  fs::remove_all(staging_, ec);
  fs::create_directories(staging_, ec);
  if (ec) throw InputError("cannot create folder: " + ec.message(), staging_.string());
}

StagingDir::~StagingDir() {
  if (!committed_) {
    std::error_code ec;
    fs::remove_all(staging_, ec);
  }
}

void StagingDir::commit() {
  std::error_code ec;
  if (fs::exists(target_)) fs::remove_all(target_, ec);
  fs::rename(staging_, target_, ec);
  if (ec) throw InputError("cannot move the finished output into place: " + ec.message(), target_.string());
  committed_ = true;
}

void write_file_atomic(const fs::path& file, const std::string& text) {
  const fs::path tmp = file.string() + ".tmp";
  {
    std::ofstream out(tmp, std::ios::binary | std::ios::trunc);
    if (!out) throw InputError("cannot write", tmp.string());
    out << text;
    if (!out) throw InputError("write failed", tmp.string());
  }
  std::error_code ec;
  fs::rename(tmp, file, ec);
  if (ec) throw InputError("cannot rename into place: " + ec.message(), file.string());
}

}  // namespace diffbench
