#include "diffbench/metrics/metric_set.hpp"

#include "diffbench/error.hpp"

namespace diffbench {

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
                                   : nullptr;
    if (!flag) {
      if (name == "kid" || name == "fid" || name == "pickscore" || name == "hps")
        throw UsageError("metric '" + name + "' is not supported yet (available: clip, psnr, ssim, lpips)", where);
      throw UsageError("unknown metric '" + name + "' in '" + list + "' (available: clip, psnr, ssim, lpips)", where);
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
                          std::pair{m.lpips, "lpips"}})
    if (on) out += (out.empty() ? "" : ",") + std::string(name);
  return out;
}

}  // namespace diffbench
