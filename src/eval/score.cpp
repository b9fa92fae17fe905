#include "diffbench/eval/score.hpp"

#include <array>
#include <cstdio>

#include "diffbench/dist/process_group.hpp"
#include "diffbench/error.hpp"
#include "diffbench/eval/distributed.hpp"
#include "diffbench/eval/distribution_quality.hpp"
#include "diffbench/eval/preference_quality.hpp"
#include "diffbench/eval/quality.hpp"
#include "diffbench/io/image.hpp"
#include "diffbench/io/json_config.hpp"
#include "diffbench/io/prompts.hpp"

namespace diffbench {

namespace fs = std::filesystem;

MetricSet default_score_metrics(bool against, bool clip, bool lpips, bool inception) {
  MetricSet m;
  m.clip = clip || (!against && !inception);
  m.psnr = m.ssim = against;
  m.lpips = against && lpips;
  m.kid = m.fid = inception;
  return m;
}

namespace {

// The prompts of a `generate` output folder: its run.json's "prompts", in image order. Empty
// when the folder has no run.json.
std::vector<std::string> run_json_prompts(const fs::path& images) {
  const fs::path file = images / "run.json";
  if (!fs::exists(file)) return {};
  const nlohmann::json run = read_json_file(file);
  if (!run.contains("prompts") || !run["prompts"].is_array())
    throw InputError("has no \"prompts\" list (give --prompts SOURCE)", file.string());
  std::vector<std::string> out;
  for (const auto& p : run["prompts"]) {
    if (!p.is_string()) throw InputError("\"prompts\" holds a non-string", file.string());
    out.push_back(p.get<std::string>());
  }
  return out;
}

// A multi-process run: every rank's per-image results, gathered in image order into rank 0's
// (which returns true); the Inception features are added again a batch at a time, so their running
// moments are the one-process run's. The other ranks return false: they are done.
bool gather_scores(ProcessGroup& group, const Shard& shard, int batch_size, std::array<std::vector<double>*, 3> lists,
                   FidelityScores& fidelity, nlohmann::json& names, ImageSetFeatures* features,
                   nlohmann::json* distributed) {
  nlohmann::json psnr = nlohmann::json::array();
  for (const auto& p : fidelity.psnr) psnr.push_back({p.db, p.capped, p.identical});
  const nlohmann::json mine = {{"rank", group.world().rank},
                               {"host", rank_host_name()},
                               {"images", {shard.first, shard.end}},
                               {"lists", {*lists[0], *lists[1], *lists[2]}},
                               {"psnr", psnr},
                               {"ssim", fidelity.ssim},
                               {"lpips", fidelity.lpips},
                               {"files", names}};
  const std::vector<uint8_t> packed = nlohmann::json::to_cbor(mine);  // CBOR: every double as it is, NaN too
  const std::vector<std::string> texts = group.gather(std::string(packed.begin(), packed.end()));
  const std::vector<at::Tensor> rows = features ? group.gather(features->rows()) : std::vector<at::Tensor>{};
  if (!group.root()) return false;
  for (auto* list : lists) list->clear();
  fidelity = {};
  names = nlohmann::json::array();
  nlohmann::json ranks = nlohmann::json::array();
  for (const auto& text : texts) {
    const nlohmann::json r = nlohmann::json::from_cbor(std::vector<uint8_t>(text.begin(), text.end()));
    for (size_t k = 0; k < lists.size(); ++k)
      for (double v : r["lists"][k]) lists[k]->push_back(v);
    for (const auto& p : r["psnr"]) fidelity.psnr.push_back({p[0].get<double>(), p[1].get<bool>(), p[2].get<bool>()});
    for (double v : r["ssim"]) fidelity.ssim.push_back(v);
    for (double v : r["lpips"]) fidelity.lpips.push_back(v);
    for (const auto& f : r["files"]) names.push_back(f);
    ranks.push_back({{"rank", r["rank"]}, {"host", r["host"]}, {"images", r["images"]}});
  }
  if (features) {
    *features = {};
    const at::Tensor all = at::cat(rows, 0);
    for (int64_t first = 0; first < all.size(0); first += batch_size)
      features->add(all.narrow(0, first, std::min<int64_t>(batch_size, all.size(0) - first)));
  }
  const World& world = group.world();
  *distributed = {{"world_size", world.size},
                  {"launcher", world.launcher},
                  {"backend", "gloo"},
                  {"split", "contiguous shards of whole batches; rank 0 gathers every image's scores"},
                  {"ranks", ranks}};
  return true;
}

}  // namespace

nlohmann::json run_score(const ScoreOptions& o) {
  const MetricSet& m = o.metrics;
  if (m.clip && o.clip.empty()) throw UsageError("the CLIP score needs a scorer: --clip DIR", "--clip");
  std::vector<std::string> run_prompts;
  const bool with_prompts = m.clip || m.pickscore || m.hps;  // each image against its prompt
  if (with_prompts && o.prompts.empty()) run_prompts = run_json_prompts(o.images);
  if (with_prompts && o.prompts.empty() && run_prompts.empty())
    throw UsageError(std::string(m.clip ? "the CLIP score needs" : "preference scores need") +
                         " prompts: --prompts SOURCE (or a run.json beside the images, as generate writes)",
                     "--prompts");
  if (m.fidelity() && o.against.empty())
    throw UsageError("PSNR and SSIM compare with reference images: --against DIR", "--against");
  if (m.lpips && o.lpips.empty()) throw UsageError("LPIPS needs its weights: --lpips FILE", "--lpips");
  if (m.distribution() && o.inception.empty())
    throw UsageError("KID and FID need the FID Inception weights: --inception FILE", "--inception");
  if (m.distribution() && o.against.empty() && o.reference_images.empty())
    throw UsageError("KID and FID compare the images with another set: --reference-images DIR or --against DIR",
                     "--reference-images");
  if (o.batch_size < 1) throw UsageError("batch size must be at least 1", "--batch-size");
  const PreferenceScorers preference = load_preference_scorers(m, o.pickscore, o.hps);
  const auto files = list_pngs(o.images);
  if (files.empty()) throw InputError("no PNG images", o.images.string());
  const size_t n = o.num_samples ? o.num_samples : files.size();
  if (n > files.size())
    throw UsageError("asked for " + std::to_string(n) + " images but the folder has " + std::to_string(files.size()),
                     "--num-samples");
  if (!o.against.empty() && !fs::is_directory(o.against)) throw InputError("not a folder", o.against.string());
  std::vector<std::string> prompts;
  std::string prompt_source = o.prompts;
  if (with_prompts && !o.prompts.empty()) {
    prompts = load_prompts(o.prompts, n).prompts;
  } else if (with_prompts) {
    if (run_prompts.size() < n)
      throw InputError("lists " + std::to_string(run_prompts.size()) + " prompts for " + std::to_string(n) + " images",
                       (o.images / "run.json").string());
    prompts.assign(run_prompts.begin(), run_prompts.begin() + static_cast<std::ptrdiff_t>(n));
    prompt_source = (o.images / "run.json").string();
  }
  std::unique_ptr<ClipScorer> scorer;
  if (m.clip) scorer = ClipScorer::load(o.clip, o.device);
  const std::unique_ptr<Lpips> lpips = m.lpips ? Lpips::load(o.lpips) : nullptr;
  // KID/FID: the other sets' files are listed (and checked) before any image is scored.
  std::vector<fs::path> against_files, reference_files;
  if (m.distribution() && !o.against.empty()) against_files = image_set_files(o.against);
  if (m.distribution() && !o.reference_images.empty()) reference_files = image_set_files(o.reference_images);
  const std::unique_ptr<InceptionFeatures> inception = m.distribution() ? InceptionFeatures::load(o.inception) : nullptr;
  ImageSetFeatures image_features;

  std::vector<double> per_sample, per_pickscore, per_hps;
  FidelityScores fidelity;
  nlohmann::json names = nlohmann::json::array();
  const auto batch = static_cast<size_t>(o.batch_size);
  // A multi-process run: each rank scores a shard of whole batches (the one-process run's batches).
  const Shard shard = o.group ? shard_prompts(n, o.batch_size, o.group->world(), true) : Shard{0, n};
  for (size_t first = shard.first; first < shard.end; first += batch) {  // a batch at a time: never every image in memory
    const size_t count = std::min(batch, shard.end - first);
    std::vector<at::Tensor> images;
    std::vector<std::string> texts;
    for (size_t i = first; i < first + count; ++i) {
      images.push_back(read_png(files[i]));
      names.push_back(files[i].filename().string());
      if (with_prompts) texts.push_back(prompts[i]);
      if (!m.fidelity()) continue;
      const fs::path ref_file = o.against / files[i].filename();
      if (!fs::exists(ref_file))
        throw InputError("no reference image of that name for " + files[i].string(), ref_file.string());
      const at::Tensor ref = read_png(ref_file);
      if (ref.sizes() != images.back().sizes())
        throw InputError("reference image is " + std::to_string(ref.size(2)) + "x" + std::to_string(ref.size(1)) +
                             " but " + files[i].string() + " is " + std::to_string(images.back().size(2)) + "x" +
                             std::to_string(images.back().size(1)),
                         ref_file.string());
      fidelity.add(ref, images.back(), m, lpips.get());
    }
    if (m.clip) {
      const auto s = scorer->score(images, texts, o.batch_size);
      per_sample.insert(per_sample.end(), s.begin(), s.end());
    }
    if (inception) image_features.add(inception->features(images));
    for (auto [scorer, out] : {std::pair{preference.pickscore.get(), &per_pickscore}, std::pair{preference.hps.get(), &per_hps}})
      if (scorer) {
        const auto s = scorer->score(images, texts, o.batch_size);
        out->insert(out->end(), s.begin(), s.end());
      }
  }

  nlohmann::json distributed;
  if (o.group && !gather_scores(*o.group, shard, o.batch_size, {&per_sample, &per_pickscore, &per_hps}, fidelity, names,
                                inception ? &image_features : nullptr, &distributed))
    return nullptr;  // rank 0 has every rank's scores
  nlohmann::json j = {{"images", o.images.string()}, {"n", n}, {"files", names}, {"metrics", to_string(m)}};
  if (o.group) j["distributed"] = distributed;
  if (m.clip) {
    j["clip_score"] = ClipScorer::aggregate(per_sample, o.clip_score);
    j["per_sample"] = per_sample;
    j["clip"] = o.clip.string();
    j["mode"] = to_string(o.clip_score);
    j["prompts"] = prompt_source;
  }
  if (m.fidelity()) {
    j["against"] = o.against.string();
    const nlohmann::json f = fidelity_metrics_json(fidelity, "each image vs the --against image of the same name", {},
                                                   o.seed, nullptr);
    for (auto it = f.begin(); it != f.end(); ++it) j[it.key()] = it.value();
  }
  if (preference.pickscore) j["pickscore"] = score_preference_json(*preference.pickscore, per_pickscore);
  if (preference.hps) j["hps"] = score_preference_json(*preference.hps, per_hps);
  if (inception) {
    ImageSetFeatures against_set, reference_set;
    std::vector<NamedImageSet> others;
    if (!against_files.empty()) {
      against_set = files_features(*inception, against_files, o.batch_size);
      others.push_back({"against", o.against, &against_set});
    }
    if (!reference_files.empty()) {
      reference_set = files_features(*inception, reference_files, o.batch_size);
      others.push_back({"reference", o.reference_images, &reference_set});
    }
    j.update(score_distribution_json(m, image_features, others, o.seed));
  }
  return j;
}

std::string render_score(const nlohmann::json& j) {
  std::string out;
  char line[512];
  if (j.contains("clip_score")) {
    std::snprintf(line, sizeof line, "CLIP score (%s): %.2f over %zu images\n", j["mode"].get<std::string>().c_str(),
                  j["clip_score"].get<double>(), j["n"].get<size_t>());
    out += line;
  }
  for (const auto& [key, label] : {std::pair{"pickscore", "PickScore"}, std::pair{"hps", "HPS v2"}})
    if (j.contains(key) && j[key]["mean"].is_number()) {
      std::snprintf(line, sizeof line, "%s (higher is better): %.4f over %zu images\n", label,
                    j[key]["mean"].get<double>(), j["n"].get<size_t>());
      out += line;
    }
  for (const auto& [key, label, unit, digits] :
       {std::tuple{"psnr", "PSNR", " dB", 2}, std::tuple{"ssim", "SSIM", "", 4}, std::tuple{"lpips", "LPIPS", "", 4}}) {
    if (!j.contains(key)) continue;
    const auto& m = j[key];
    const size_t worst = m["worst_index"].get<size_t>();
    std::snprintf(line, sizeof line, "%s vs %s (%s): mean %.*f%s [%.*f, %.*f], worst %.*f%s (%s)\n", label,
                  j["against"].get<std::string>().c_str(), m["direction"].get<std::string>().c_str(), digits, m["mean"].get<double>(), unit, digits,
                  m["ci95"][0].get<double>(), digits, m["ci95"][1].get<double>(), digits, m["worst"].get<double>(), unit,
                  j["files"][worst].get<std::string>().c_str());
    out += line;
  }
  for (const char* role : {"against", "reference"}) {
    if (j.contains("kid") && j["kid"].contains(role)) {
      const auto& k = j["kid"][role];
      std::snprintf(line, sizeof line, "KID vs %s (lower is better): %.5f ± %.5f (%s vs %s images)\n",
                    k["images"].get<std::string>().c_str(), k["mean"].get<double>(), k["std"].get<double>(),
                    j["kid"]["n"].dump().c_str(), k["n"].dump().c_str());
      out += line;
    }
    if (j.contains("fid") && j["fid"].contains(role)) {
      const auto& f = j["fid"][role];
      std::snprintf(line, sizeof line, "FID vs %s (lower is better): %.3f%s\n", f["images"].get<std::string>().c_str(),
                    f["value"].get<double>(), j["fid"]["reliable"].get<bool>() ? "" : " (unreliable: fewer than 2048 images; prefer KID)");
      out += line;
    }
  }
  if (j.contains("psnr") && j["psnr"]["capped"].get<size_t>() > 0)
    out += "PSNR capped at 100 dB for " + j["psnr"]["capped"].dump() + " image(s), " + j["psnr"]["identical"].dump() +
           " identical to the reference\n";
  return out;
}

}  // namespace diffbench
