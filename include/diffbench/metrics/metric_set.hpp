// The quality metrics a command computes (`--metrics clip,psnr,ssim`) and which way each is better.
#pragma once

#include <string>

namespace diffbench {

struct MetricSet {
  bool clip = false;  // CLIP score: each image against its prompt
  bool psnr = false;  // PSNR of an image against its reference image (the baseline's, or --against's)
  bool ssim = false;  // SSIM, likewise
  bool lpips = false; // LPIPS (AlexNet v0.1), likewise; needs its weights
  bool kid = false;   // KID of the image set against another set (Inception-v3 features; needs its weights)
  bool fid = false;   // FID, likewise
  bool pickscore = false;  // PickScore of each image against its prompt (a CLIPModel checkpoint)
  bool hps = false;        // HPS v2 likewise (an open_clip checkpoint)

  bool fidelity() const { return psnr || ssim || lpips; }  // needs reference images
  bool distribution() const { return kid || fid; }         // needs the Inception weights and a second set
};

// Parses a comma-separated list ("clip,psnr,ssim,lpips,kid,fid,pickscore,hps"; names in any order, each at
// most once). imagereward (not implemented: it needs BLIP) and unknown names are UsageErrors naming `where`
// and the known names.
MetricSet parse_metric_set(const std::string& list, const std::string& where = "--metrics");

// "clip,psnr,ssim,lpips,kid,fid,pickscore,hps" (in that order, only the chosen ones).
std::string to_string(const MetricSet& metrics);

}  // namespace diffbench
