#!/usr/bin/env python3
"""One summary line of a `diffbench bench --json` result, the form every tools/gpu-*.sh prints:
    == LABEL batch B: MEDIAN s/batch median (p90 P s/image; text T, denoise D, vae V; first generation F s[; skipped S %])
Usage: tools/bench-line.py BENCH_JSON LABEL"""
import json
import sys

if len(sys.argv) != 3:
    sys.exit(__doc__)
j = json.load(open(sys.argv[1]))
s = j["stages_mean_s"]
line = "== %-24s batch %d: %.4f s/batch median (p90 %.4f s/image; text %.4f, denoise %.4f, vae %.4f;" \
       " first generation %.2f s" % (sys.argv[2], j["batch_size"], j["seconds_per_batch_median"],
                                     j["seconds_per_image"]["p90"], s["text_encoder_s"], s["denoise_s"],
                                     s["vae_decode_s"], j["first_generation_s"])
if j.get("skipped_module_fraction"):
    line += "; skipped modules %.0f %%" % (100 * j["skipped_module_fraction"])
print(line + ")")
