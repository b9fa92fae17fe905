// An output folder that appears only when complete: files are written into a hidden sibling
// folder, which replaces the target in one rename on commit() and is removed if never committed.
#pragma once

#include <filesystem>

namespace diffbench {

class StagingDir {
 public:
  // Refuses (UsageError) a non-empty existing `target` unless `replace` is set.
  StagingDir(const std::filesystem::path& target, bool replace);
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  const std::filesystem::path& target() const { return target_; }
  void commit();

 private:
  std::filesystem::path target_;
  std::filesystem::path staging_;
  bool committed_ = false;
};

// Writes `text` to `file` through a temporary name and a rename.
void write_file_atomic(const std::filesystem::path& file, const std::string& text);

}  // namespace diffbench
