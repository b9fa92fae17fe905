// Model ids through a fake Hugging Face hub cache laid out as huggingface_hub lays it out.
#include <cstdlib>
#include <fstream>

#include "diffbench/error.hpp"
#include "diffbench/eval/protocol.hpp"
#include "diffbench/io/assets.hpp"
#include "diffbench/io/hub_cache.hpp"
#include "diffbench/pipeline/spec.hpp"
#include "test_support.hpp"

using namespace diffbench;
namespace fs = std::filesystem;

namespace {

const std::string kMain = "0123456789abcdef0123456789abcdef01234567";
const std::string kOld = "89abcdef0123456789abcdef0123456789abcdef";

// CACHE/models--ORG--NAME with refs/main -> kMain, refs/v1 -> kOld; each snapshot's files are
// symlinks into blobs/ as huggingface_hub writes them; kMain also has fp16 variant files.
class HubCache : public ::testing::Test {
 protected:
  void SetUp() override {
    cache_ = test::temp_dir("hub-cache");
    const fs::path repo = cache_ / "models--acme--tiny-diffusion";
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "blobs");
    std::ofstream(repo / "refs" / "main") << kMain;  // no newline, as huggingface_hub writes it
    std::ofstream(repo / "refs" / "v1") << kOld << "\n";
    for (const auto& [commit, files] : std::vector<std::pair<std::string, std::vector<std::string>>>{
             {kMain, {"model_index.json", "unet/diffusion_pytorch_model.safetensors", "unet/diffusion_pytorch_model.fp16.safetensors"}},
             {kOld, {"model_index.json", "unet/diffusion_pytorch_model.safetensors"}}}) {
      for (const auto& f : files) {
        const fs::path link = repo / "snapshots" / commit / f;
        fs::create_directories(link.parent_path());
        const std::string blob = commit.substr(0, 8) + std::to_string(std::hash<std::string>()(f));
        std::ofstream(repo / "blobs" / blob) << f;
        fs::create_symlink(fs::relative(repo / "blobs" / blob, link.parent_path()), link);
      }
    }
    if (const char* home = std::getenv("HOME")) home_ = home;
    ::unsetenv("HF_HUB_CACHE");
    ::unsetenv("HF_HOME");
  }
  void TearDown() override {
    fs::remove_all(cache_);
    ::unsetenv("HF_HUB_CACHE");
    ::unsetenv("HF_HOME");
    ::setenv("HOME", home_.c_str(), 1);
  }
  fs::path snapshot(const std::string& commit) const {
    return cache_ / "models--acme--tiny-diffusion" / "snapshots" / commit;
  }
  fs::path cache_;
  std::string home_;
};

}  // namespace

TEST(HubId, LooksLikeOrgSlashName) {
  EXPECT_TRUE(looks_like_repo_id("runwayml/stable-diffusion-v1-5"));
  EXPECT_TRUE(looks_like_repo_id("laion/CLIP-ViT-g-14-laion2B-s34B-b88K"));
  EXPECT_TRUE(looks_like_repo_id("a.b/c_d"));
  for (const char* path : {"demo", "./x/y", "../models/sd", "/abs/path", "a/b/c", "a/", "/b", "a/..", "a b/c"})
    EXPECT_FALSE(looks_like_repo_id(path)) << path;
}

TEST_F(HubCache, ResolvesRefsCommitsAndBlobSymlinks) {
  const HubModel m = resolve_hub_model("acme/tiny-diffusion", "", cache_);
  EXPECT_EQ(m.commit, kMain);
  EXPECT_EQ(m.revision, "main");
  EXPECT_EQ(m.folder, snapshot(kMain));
  std::ifstream in(m.folder / "unet" / "diffusion_pytorch_model.safetensors");  // through the blob symlink
  std::string text;
  in >> text;
  EXPECT_EQ(text, "unet/diffusion_pytorch_model.safetensors");
  EXPECT_EQ(resolve_hub_model("acme/tiny-diffusion", "v1", cache_).folder, snapshot(kOld));
  EXPECT_EQ(resolve_hub_model("acme/tiny-diffusion", kOld, cache_).commit, kOld);  // a commit hash directly
  EXPECT_EQ(resolve_hub_model("acme/tiny-diffusion", "", cache_, "fp16").folder, snapshot(kMain));
}

TEST_F(HubCache, CacheFolderFromTheEnvironment) {
  ::setenv("HOME", "/nonexistent-home", 1);
  EXPECT_EQ(hub_cache_dir(), fs::path("/nonexistent-home/.cache/huggingface/hub"));
  ::setenv("HF_HOME", (cache_ / "hf-home").c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), cache_ / "hf-home" / "hub");
  ::setenv("HF_HUB_CACHE", cache_.c_str(), 1);
  EXPECT_EQ(hub_cache_dir(), cache_);
  EXPECT_EQ(hub_cache_dir("/explicit"), fs::path("/explicit"));
  EXPECT_EQ(resolve_hub_model("acme/tiny-diffusion").folder, snapshot(kMain));
  EXPECT_TRUE(hub_model_cached("acme/tiny-diffusion"));
  EXPECT_FALSE(hub_model_cached("acme/other"));
}

TEST_F(HubCache, MissingIdsRevisionsAndVariantsNameWhereTheyLooked) {
  struct Case {
    std::string id, revision, variant, looked;
  };
  const std::vector<Case> cases = {
      {"acme/other", "", "", (cache_ / "models--acme--other").string() + " (no such folder)"},
      {"acme/tiny-diffusion", "v2", "", (cache_ / "models--acme--tiny-diffusion" / "refs" / "v2").string() + " (no such ref)"},
      {"acme/tiny-diffusion", std::string(40, 'f'), "", snapshot(std::string(40, 'f')).string() + " (no such snapshot)"},
      {"acme/tiny-diffusion", "v1", "fp16", snapshot(kOld).string()},
  };
  for (const auto& c : cases) {
    SCOPED_TRACE(c.id + "@" + c.revision);
    try {
      resolve_hub_model(c.id, c.revision, cache_, c.variant);
      ADD_FAILURE() << "resolved";
    } catch (const InputError& e) {
      EXPECT_EQ(e.exit_code(), 2);
      EXPECT_EQ(e.where(), c.id);
      EXPECT_NE(e.message().find(c.looked), std::string::npos) << e.what();
      EXPECT_NE(e.message().find("hf download " + c.id), std::string::npos) << e.what();
    }
  }
}

TEST_F(HubCache, SpecModelIdResolvesThroughTheCache) {
  const fs::path spec = cache_ / "cand.toml";
  std::ofstream(spec) << "[pipeline]\nmodel = \"acme/tiny-diffusion\"\nrevision = \"v1\"\ncache_dir = \"" << cache_.string()
                      << "\"\n";
  const PipelineSpec s = load_spec(spec);
  EXPECT_EQ(s.model, snapshot(kOld));
  ASSERT_TRUE(s.hub.has_value());
  EXPECT_EQ(s.to_json()["hub"]["commit"], kOld);
  EXPECT_EQ(s.to_json()["hub"]["id"], "acme/tiny-diffusion");
  // A folder of that name beside the spec wins over the cache.
  fs::create_directories(cache_ / "acme" / "tiny-diffusion");
  EXPECT_EQ(load_spec(spec).model, cache_ / "acme" / "tiny-diffusion");
  EXPECT_FALSE(load_spec(spec).hub.has_value());
  std::ofstream(spec) << "[pipeline]\nmodel = \"acme/missing\"\ncache_dir = \"" << cache_.string() << "\"\n";
  EXPECT_THROW(load_spec(spec), InputError);
}

// --clip: an id through the cache, or without --clip the first cached of the documented list.
TEST_F(HubCache, DefaultScorerIsTheFirstCachedOfTheList) {
  ::setenv("HF_HUB_CACHE", cache_.c_str(), 1);
  try {
    resolve_scorer("");
    ADD_FAILURE() << "no error without any scorer in the cache";
  } catch (const InputError& e) {
    EXPECT_EQ(e.where(), "--clip");
    for (const auto& id : default_clip_ids()) EXPECT_NE(e.message().find(id), std::string::npos) << e.what();
    EXPECT_NE(e.message().find("hf download laion/CLIP-ViT-g-14-laion2B-s34B-b88K"), std::string::npos) << e.what();
    EXPECT_NE(e.message().find(cache_.string()), std::string::npos) << e.what();
  }
  ASSERT_GE(default_clip_ids().size(), 2u);
  EXPECT_EQ(default_clip_ids()[0], "laion/CLIP-ViT-g-14-laion2B-s34B-b88K");
  // Only the last id cached: it is chosen; then the first as well: the first wins.
  auto add = [&](const std::string& id) {
    const fs::path repo = cache_ / ("models--" + id.substr(0, id.find('/')) + "--" + id.substr(id.find('/') + 1));
    fs::create_directories(repo / "refs");
    fs::create_directories(repo / "snapshots" / kMain);
    std::ofstream(repo / "refs" / "main") << kMain;
    return repo / "snapshots" / kMain;
  };
  const fs::path last = add(default_clip_ids().back());
  ScorerChoice c = resolve_scorer("");
  EXPECT_EQ(c.folder, last);
  EXPECT_EQ(c.id, default_clip_ids().back());
  EXPECT_TRUE(c.is_default);
  const fs::path first = add(default_clip_ids()[0]);
  c = resolve_scorer("");
  EXPECT_EQ(c.folder, first);
  EXPECT_EQ(c.commit, kMain);
  EXPECT_EQ(c.to_json()["id"], default_clip_ids()[0]);
  // Given explicitly: an id, a folder, demo.
  c = resolve_scorer(default_clip_ids().back());
  EXPECT_EQ(c.folder, last);
  EXPECT_FALSE(c.is_default);
  EXPECT_EQ(resolve_scorer(cache_.string()).folder, cache_);
  EXPECT_EQ(resolve_scorer("demo").folder, demo_asset("clip"));
  EXPECT_THROW(resolve_scorer("acme/not-cached"), InputError);
}
