// An output folder that appears only when complete: files are written into a hidden sibling
// folder, which replaces the target in one rename on commit() and is removed if never committed.
//
// The rules that keep a user's files safe:
// - the path is normalised first (absolute, no "." / ".." parts, no trailing separator), so `out/` and
//   `out` name the same folder and the staging folder always lies beside the target, never inside it;
// - the current folder, a folder above it, the home folder (or one above it) and `/` are never a target;
// - a non-empty target is refused unless `replace` is set, and even then only a folder diffbench
//   wrote (it holds run.json, report.json or suite.json) is replaced; nothing outside the target and the
//   staging folder is ever removed;
// - a lock file `.NAME.lock` beside the target is held from construction to destruction, so a second
//   diffbench writing the same target fails at once instead of replacing the first one's results;
// - all of this is checked in the constructor, before any work, and again in commit();
// - staging folders of processes that no longer run are removed, unless the caller resumes: then
//   the newest one holding `resume.marker` (eval's journal) is adopted as this process's staging
//   folder (renamed to this pid) and the others removed. keep_partial() leaves the staging folder
//   in place at destruction (an interrupted eval, to be resumed).
#pragma once

#include <filesystem>
#include <string>
#include <vector>

namespace diffbench {

// Removes `p` and everything under it without following symbolic links; a missing `p` is no error.
// Use it instead of std::filesystem::remove_all: the torch wheel's libtorch.so exports its own copy of
// remove_all, built against an older libstdc++, and the dynamic linker binds diffbench's calls to it;
// with a newer compiler's libstdc++ (the GPU machine's) it crashed on any non-empty folder.
void remove_tree(const std::filesystem::path& p, std::error_code& ec);

// `p` absolute and lexically normal, without a trailing separator ("runs/x/" -> "/cwd/runs/x").
std::filesystem::path normalize_output_path(const std::filesystem::path& p);

// How a staging folder left by an ended process is treated: `marker` names the file that makes it
// resumable; with `adopt`, the newest resumable one is continued instead of removed.
struct StagingResume {
  std::string marker;
  bool adopt = false;
};

class StagingDir {
 public:
  // Throws UsageError (naming the target) for the cases above; InputError when a folder cannot be created.
  StagingDir(const std::filesystem::path& target, bool replace, const StagingResume& resume = {});
  ~StagingDir();
  StagingDir(const StagingDir&) = delete;
  StagingDir& operator=(const StagingDir&) = delete;

  const std::filesystem::path& path() const { return staging_; }
  const std::filesystem::path& target() const { return target_; }
  // Staging folders of this target left by processes that no longer run (removed by the constructor).
  const std::vector<std::filesystem::path>& removed_stale() const { return removed_stale_; }
  // Of those, the ones that held resume.marker (a run that --resume could have continued).
  const std::vector<std::filesystem::path>& removed_resumable() const { return removed_resumable_; }
  // The adopted folder's name before it became path() (empty when nothing was adopted).
  const std::filesystem::path& adopted() const { return adopted_; }
  // The staging folder is not removed at destruction (commit() still moves it into place).
  void keep_partial() { keep_ = true; }
  // Moves the staging folder into place. Without `replace`, a target that became non-empty meanwhile
  // is an error (the staging folder is kept until destruction); with it, the old folder is moved
  // aside, the new one renamed in, and only then the old one removed.
  void commit();

 private:
  void lock();
  std::filesystem::path target_;
  std::filesystem::path staging_;
  std::filesystem::path lock_file_;
  std::vector<std::filesystem::path> removed_stale_, removed_resumable_;
  std::filesystem::path adopted_;
  int lock_fd_ = -1;
  bool keep_ = false;
  bool replace_ = false;
  bool committed_ = false;
};

// Writes `text` to `file` through a temporary name and a rename.
void write_file_atomic(const std::filesystem::path& file, const std::string& text);

}  // namespace diffbench
