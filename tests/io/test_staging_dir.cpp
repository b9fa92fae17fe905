// StagingDir never loses a user's files (issue 18's data-loss repros): trailing separators,
// the current and home folders, --force over a folder diffbench did not write, the replace flag
// at commit, concurrent writers, stale staging folders.
#include <sys/wait.h>
#include <unistd.h>

#include <cstdlib>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/io/staging_dir.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

void touch(const fs::path& p, const std::string& text = "x") { std::ofstream(p) << text; }

std::string read(const fs::path& p) {
  std::ifstream in(p);
  return std::string((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
}

// Names in `dir` (files and folders), sorted.
std::vector<std::string> names(const fs::path& dir) {
  std::vector<std::string> out;
  for (const auto& e : fs::directory_iterator(dir)) out.push_back(e.path().filename().string());
  std::sort(out.begin(), out.end());
  return out;
}

// Runs `f` with the current folder set to `dir`.
template <typename F>
void in_folder(const fs::path& dir, F f) {
  const fs::path before = fs::current_path();
  fs::current_path(dir);
  try {
    f();
  } catch (...) {
    fs::current_path(before);
    throw;
  }
  fs::current_path(before);
}

}  // namespace

TEST(StagingDir, NormalisesTrailingSeparatorsAndDots) {
  const fs::path base = test::temp_dir("staging-norm");
  EXPECT_EQ(normalize_output_path(base / "x/"), base / "x");
  EXPECT_EQ(normalize_output_path(base / "x" / "."), base / "x");
  EXPECT_EQ(normalize_output_path(base / "y" / ".." / "x//"), base / "x");
  in_folder(base, [&] { EXPECT_EQ(normalize_output_path("x/"), base / "x"); });
  fs::remove_all(base);
}

TEST(StagingDir, TrailingSlashWritesBesideTheTargetNotInsideIt) {
  const fs::path base = test::temp_dir("staging-slash");
  {
    StagingDir s(base.string() + "/x/", false);
    EXPECT_EQ(s.path().parent_path(), base);
    EXPECT_EQ(s.target(), base / "x");
    touch(s.path() / "run.json", "new");
    s.commit();
  }
  EXPECT_EQ(names(base), std::vector<std::string>{"x"});  // no staging folder or lock file left
  EXPECT_EQ(read(base / "x" / "run.json"), "new");
  fs::remove_all(base);
}

TEST(StagingDir, ForceNeverReplacesAFolderDiffbenchDidNotWrite) {
  // Issue 18: mkdir -p x && touch x/keep && diffbench generate ... --out x/ --force deleted x/keep.
  const fs::path base = test::temp_dir("staging-keep");
  fs::create_directories(base / "x");
  touch(base / "x" / "keep", "user data");
  for (const std::string out : {"/x/", "/x", "/x/."})
    EXPECT_THROW((StagingDir(base.string() + out, true)), UsageError) << out;
  EXPECT_EQ(read(base / "x" / "keep"), "user data");
  EXPECT_EQ(names(base), std::vector<std::string>{"x"});
  fs::remove_all(base);
}

TEST(StagingDir, ForceReplacesDiffbenchsOwnFolder) {
  const fs::path base = test::temp_dir("staging-force");
  fs::create_directories(base / "x");
  touch(base / "x" / "report.json", "old");
  touch(base / "x" / "000000.png", "old image");
  {
    StagingDir s(base / "x/", true);
    touch(s.path() / "report.json", "new");
    s.commit();
  }
  EXPECT_EQ(names(base / "x"), std::vector<std::string>{"report.json"});
  EXPECT_EQ(read(base / "x" / "report.json"), "new");
  EXPECT_EQ(names(base), std::vector<std::string>{"x"});
  fs::remove_all(base);
}

TEST(StagingDir, RefusesTheCurrentHomeAndRootFolders) {
  const fs::path base = test::temp_dir("staging-cwd");
  fs::create_directories(base / "work");
  touch(base / "work" / "run.json");  // even a folder that looks like diffbench's
  touch(base / "work" / "keep");
  in_folder(base / "work", [&] {
    for (const std::string out : {".", "./", "..", "../work", ""})
      for (bool replace : {false, true}) EXPECT_THROW((StagingDir(out, replace)), UsageError) << out;
  });
  EXPECT_THROW((StagingDir("/", true)), UsageError);
  const char* old_home = std::getenv("HOME");
  const std::string saved = old_home ? old_home : "";
  ::setenv("HOME", (base / "work").c_str(), 1);
  EXPECT_THROW((StagingDir(base / "work", true)), UsageError);
  EXPECT_THROW((StagingDir(base, true)), UsageError);
  if (old_home) ::setenv("HOME", saved.c_str(), 1); else ::unsetenv("HOME");
  EXPECT_EQ(names(base / "work"), (std::vector<std::string>{"keep", "run.json"}));
  fs::remove_all(base);
}

TEST(StagingDir, CommitHonoursTheReplaceFlag) {
  // Two writers of one --out without --force: the second must not silently replace the first.
  const fs::path base = test::temp_dir("staging-commit");
  StagingDir s(base / "x", false);
  touch(s.path() / "report.json", "second");
  fs::create_directories(base / "x");
  touch(base / "x" / "report.json", "first");  // appeared while `s` was working
  EXPECT_THROW(s.commit(), UsageError);
  EXPECT_EQ(read(base / "x" / "report.json"), "first");
  fs::remove_all(base);
}

TEST(StagingDir, ASecondWriterOfTheSameTargetFailsAtOnce) {
  const fs::path base = test::temp_dir("staging-lock");
  {
    StagingDir first(base / "x", true);
    EXPECT_TRUE(fs::exists(base / ".x.lock"));
    EXPECT_THROW((StagingDir(base / "x/", true)), UsageError);
    StagingDir other(base / "y", false);  // another target is not blocked
    touch(first.path() / "run.json", "first");
    first.commit();
  }
  EXPECT_EQ(read(base / "x" / "run.json"), "first");
  StagingDir again(base / "x", true);  // released at destruction
  fs::remove_all(base);
}

TEST(StagingDir, RemovesStagingFoldersOfDeadProcesses) {
  const fs::path base = test::temp_dir("staging-stale");
  const pid_t child = ::fork();
  if (child == 0) ::_exit(0);
  ::waitpid(child, nullptr, 0);  // a pid that no longer runs
  const fs::path stale = base / (".x.partial-" + std::to_string(child));
  fs::create_directories(stale);
  touch(stale / "000000.png");
  const fs::path alive = base / (".x.partial-" + std::to_string(::getppid()));
  fs::create_directories(alive);
  {
    StagingDir s(base / "x", false);
    ASSERT_EQ(s.removed_stale().size(), 1u);
    EXPECT_EQ(s.removed_stale()[0], stale);
  }
  EXPECT_FALSE(fs::exists(stale));
  EXPECT_TRUE(fs::exists(alive));
  fs::remove_all(base);
}

// remove_tree replaces std::filesystem::remove_all, which crashed on the GPU machine (see the header):
// it removes a nested tree, removes a symbolic link without touching what it points to, and a missing
// path is no error.
TEST(RemoveTree, RemovesNestedFoldersAndLinksButNotTheirTargets) {
  const fs::path base = test::temp_dir("remove-tree");
  const fs::path keep = base / "keep";
  fs::create_directories(keep);
  touch(keep / "precious.txt", "mine");
  const fs::path tree = base / "tree";
  fs::create_directories(tree / "a" / "b" / "c");
  for (const auto& d : {tree, tree / "a", tree / "a" / "b", tree / "a" / "b" / "c"}) touch(d / "f.png");
  fs::create_directory_symlink(keep, tree / "a" / "link-to-keep");
  fs::create_symlink(keep / "precious.txt", tree / "file-link");
  std::error_code ec;
  remove_tree(tree, ec);
  EXPECT_FALSE(ec) << ec.message();
  EXPECT_FALSE(fs::exists(fs::symlink_status(tree)));
  EXPECT_EQ(read(keep / "precious.txt"), "mine");
  remove_tree(base / "not-there", ec);
  EXPECT_FALSE(ec) << ec.message();
  remove_tree(keep / "precious.txt", ec);  // a plain file
  EXPECT_FALSE(ec);
  EXPECT_FALSE(fs::exists(keep / "precious.txt"));
  remove_tree(base, ec);
}

// diffbench's own sources never call std::filesystem::remove_all (the reason is in staging_dir.hpp).
TEST(RemoveTree, NoSourceCallsFilesystemRemoveAll) {
  const fs::path root = DIFFBENCH_SOURCE_DIR;
  std::vector<std::string> offenders;
  for (const char* dir : {"src", "apps", "include"})
    for (const auto& e : fs::recursive_directory_iterator(root / dir)) {
      if (!e.is_regular_file()) continue;
      const std::string text = read(e.path());
      if (text.find("fs::remove_all(") != std::string::npos || text.find("filesystem::remove_all(") != std::string::npos)
        offenders.push_back(fs::relative(e.path(), root).string());
    }
  EXPECT_TRUE(offenders.empty()) << "use remove_tree (io/staging_dir.hpp) in: " << ::testing::PrintToString(offenders);
}
