#include "diffbench/metrics/metric_set.hpp"

#include "diffbench/error.hpp"

namespace diffbench {

namespace {
constexpr const char* kAvailable = "clip, psnr, ssim, lpips, kid, fid, pickscore, hps";
}  // namespace

MetricSet parse_metric_set(const std::string& list, const std::string& where) {
  MetricSet m;
  size_t start = 0;
  bool any = false;
  while (start <= list.size()) {
    const size_t comma = std::min(list.find(',', start), list.size());
    const std::string name = list.substr(start, comma - start);
    start = comma + 1;
    bool* flag = name == "clip"    ? &m.clip
                 : name == "psnr"  ? &m.psnr
                 : name == "ssim"  ? &m.ssim
                 : name == "lpips" ? &m.lpips
                 : name == "kid"   ? &m.kid
                 : name == "fid"   ? &m.fid
                 : name == "pickscore" ? &m.pickscore
                 : name == "hps"   ? &m.hps
                                   : nullptr;
    if (!flag) {
      if (name == "imagereward")
        throw UsageError("metric 'imagereward' is not supported (it needs BLIP, which diffbench does not implement; "
                         "available: " + std::string(kAvailable) + ")",
                         where);
      throw UsageError("unknown metric '" + name + "' in '" + list + "' (available: " + kAvailable + ")", where);
    }
    if (*flag) throw UsageError("metric '" + name + "' is listed twice", where);
    *flag = true;
    any = true;
  }
  if (!any) throw UsageError("no metric given", where);
  return m;
}

std::string to_string(const MetricSet& m) {
  std::string out;
  for (auto [on, name] : {std::pair{m.clip, "clip"}, std::pair{m.psnr, "psnr"}, std::pair{m.ssim, "ssim"},
                          std::pair{m.lpips, "lpips"}, std::pair{m.kid, "kid"}, std::pair{m.fid, "fid"},
                          std::pair{m.pickscore, "pickscore"}, std::pair{m.hps, "hps"}})
    if (on) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

}  // namespace diffbench
