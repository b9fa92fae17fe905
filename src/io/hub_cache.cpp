#include "diffbench/io/hub_cache.hpp"

#include <cctype>
#include <cstdlib>
#include <fstream>

#include "diffbench/error.hpp"

namespace diffbench {

namespace fs = std::filesystem;

namespace {

bool is_commit_hash(const std::string& s) {
  if (s.size() != 40) return false;
  for (char c : s)
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  return true;
}

bool is_name_part(const std::string& s) {
  if (s.empty() || s[0] == '.' || s.size() > 96) return false;
  for (char c : s)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
  return s.find("..") == std::string::npos;
}

std::string env(const char* name) {
  const char* v = std::getenv(name);
  return v ? v : "";
}

// CACHE/models--ORG--NAME
fs::path repo_folder(const fs::path& cache, const std::string& repo_id) {
  std::string name = "models--" + repo_id;
  const auto slash = name.find('/');
  name.replace(slash, 1, "--");
  return cache / name;
}

std::string read_ref(const fs::path& file) {
  std::ifstream in(file);
  std::string s;
  in >> s;
  return s;
}

struct Lookup {
  fs::path folder;                  // the snapshot, empty when not found
  std::string commit;
  std::vector<std::string> looked;  // what was looked at, for the error
};

Lookup lookup(const std::string& repo_id, const std::string& revision, const fs::path& cache) {
  Lookup l;
  const fs::path repo = repo_folder(cache, repo_id);
  if (!fs::is_directory(repo)) {
    l.looked.push_back(repo.string() + " (no such folder)");
    return l;
  }
  std::string commit = revision;
  if (!is_commit_hash(revision)) {
    const fs::path ref = repo / "refs" / revision;
    if (!fs::is_regular_file(ref)) {
      l.looked.push_back(ref.string() + " (no such ref)");
      return l;
    }
    commit = read_ref(ref);
    if (!is_commit_hash(commit)) {
      l.looked.push_back(ref.string() + " (does not hold a commit hash)");
      return l;
    }
  }
  const fs::path snap = repo / "snapshots" / commit;
  if (!fs::is_directory(snap)) {
    l.looked.push_back(snap.string() + " (no such snapshot)");
    return l;
  }
  l.folder = snap;
  l.commit = commit;
  return l;
}

bool has_variant_file(const fs::path& dir, const std::string& variant) {
  const std::string suffix = "." + variant + ".safetensors";
  std::error_code ec;
  for (auto it = fs::recursive_directory_iterator(dir, ec); !ec && it != fs::recursive_directory_iterator();
       it.increment(ec)) {
    const std::string name = it->path().filename().string();
    if (name.size() > suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0)
      return true;
  }
  return false;
}

}  // namespace

nlohmann::json HubModel::to_json() const {
  return {{"id", repo_id}, {"revision", revision}, {"commit", commit}, {"folder", folder.string()}};
}

bool looks_like_repo_id(const std::string& text) {
  const auto slash = text.find('/');
  if (slash == std::string::npos || text.find('/', slash + 1) != std::string::npos) return false;
  return is_name_part(text.substr(0, slash)) && is_name_part(text.substr(slash + 1));
}

fs::path hub_cache_dir(const fs::path& cache_dir) {
  if (!cache_dir.empty()) return cache_dir;
  if (auto v = env("HF_HUB_CACHE"); !v.empty()) return v;
  if (auto v = env("HF_HOME"); !v.empty()) return fs::path(v) / "hub";
  const std::string home = env("HOME");
  return fs::path(home.empty() ? "~" : home) / ".cache" / "huggingface" / "hub";
}

bool hub_model_cached(const std::string& repo_id, const std::string& revision, const fs::path& cache_dir) {
  if (!looks_like_repo_id(repo_id)) return false;
  return !lookup(repo_id, revision.empty() ? "main" : revision, hub_cache_dir(cache_dir)).folder.empty();
}

HubModel resolve_hub_model(const std::string& repo_id, const std::string& revision, const fs::path& cache_dir,
                           const std::string& variant) {
  if (!looks_like_repo_id(repo_id))
    throw InputError("not a folder and not a Hugging Face model id of the form ORG/NAME", repo_id);
  const std::string rev = revision.empty() ? "main" : revision;
  const fs::path cache = hub_cache_dir(cache_dir);
  const Lookup l = lookup(repo_id, rev, cache);
  const std::string download = "hf download " + repo_id + (rev != "main" ? " --revision " + rev : std::string()) +
                               (cache_dir.empty() ? std::string() : " --cache-dir " + cache_dir.string());
  if (l.folder.empty()) {
    std::string looked;
    for (const auto& s : l.looked) looked += "\n  " + s;
    throw InputError("model '" + repo_id + "' (revision " + rev + ") is not in the local Hugging Face cache " +
                         cache.string() + "; looked in:" + looked + "\ndownload it with: " + download +
                         " (or huggingface-cli download " + repo_id + "), or give a local folder",
                     repo_id);
  }
  if (!variant.empty() && !has_variant_file(l.folder, variant))
    throw InputError("the cached snapshot has no *." + variant + ".safetensors files (variant=\"" + variant +
                         "\"); looked in:\n  " + l.folder.string() + "\ndownload them with: " + download +
                         " --include '*." + variant + ".safetensors' '*.json' '*.txt'",
                     repo_id);
  HubModel m;
  m.repo_id = repo_id;
  m.revision = rev;
  m.commit = l.commit;
  m.cache_dir = cache;
  m.folder = l.folder;
  return m;
}

}  // namespace diffbench
