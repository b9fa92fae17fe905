#!/usr/bin/env python3
"""Writes src/kernels/gemm_plans.inc, diffbench's table of planned GEMMs, from the output of the GEMM probe
(tools/gpu-gemm-lt.sh, tools/gemm-lt/bench.cu) run on one GPU model: a row for each shape whose fastest
cuBLASLt algorithm (the mean of the probe's two timing rounds) beats what LibTorch runs by at least
MIN_GAIN; the other shapes keep LibTorch's GEMM. Rows of other GPU models already in the file are kept.

Usage: tools/gemm-lt/make-table.py PROBE_LOG [TABLE]   (TABLE default: src/kernels/gemm_plans.inc)
"""
import json
import pathlib
import re
import sys

MIN_GAIN = 0.03
HEADER = """\
// diffbench's table of planned GEMMs (src/kernels/planned_gemm.cu reads it): for a GPU model and the exact
// cuBLASLt version LibTorch loads, the cuBLASLt algorithm configuration that ran fastest for one of the UNet's
// GEMM shapes, where it beat what LibTorch runs by at least {gain:.0f} %.{how}
// Written by tools/gemm-lt/make-table.py from the output of tools/gpu-gemm-lt.sh; do not edit by hand.
// Fields: device, cuBLASLt version, M, N, K, epilogue, then CUBLASLT_ALGO_CONFIG_ ID, TILE_ID, SPLITK_NUM,
// REDUCTION_SCHEME, CTA_SWIZZLING, CUSTOM_OPTION, STAGES_ID, INNER_SHAPE_ID, CLUSTER_SHAPE_ID, and the
// workspace bytes it needs.
"""
EPILOGUE = {"none": "GemmEpilogue::kNone", "bias": "GemmEpilogue::kBias", "accumulate": "GemmEpilogue::kAccumulate"}


def main():
    log = pathlib.Path(sys.argv[1]).read_text()
    table = pathlib.Path(sys.argv[2] if len(sys.argv) > 2 else "src/kernels/gemm_plans.inc")
    device = json.loads(re.search(r"^== device (\{.*\})$", log, re.M).group(1))
    rows, seen = [], set()
    for line in re.findall(r"^== plan (\{.*\})$", log, re.M):
        p = json.loads(line)
        key = (p["m"], p["n"], p["k"], p["epilogue"])
        if key in seen or p["us"] > p["torch_us"] * (1 - MIN_GAIN):
            continue
        seen.add(key)
        rows.append(
            f'    {{"{device["name"]}", {device["cublaslt"]}, {p["m"]}, {p["n"]}, {p["k"]}, {EPILOGUE[p["epilogue"]]}, '
            f'{p["algo"]}, {p["tile"]}, {p["splitk"]}, {p["reduction"]}, {p["swizzle"]}, {p["custom"]}, '
            f'{p["stages"]}, {p["inner"]}, {p["cluster"]}, {p["workspace"]}}},')
    kept = []
    if table.exists():
        marker = f'"{device["name"]}", {device["cublaslt"]},'
        kept = [l for l in table.read_text().splitlines() if l.startswith("    {") and marker not in l]
    how = ""
    if device.get("after_producer"):
        how += "\n// Each GEMM was timed after a kernel that writes its input (the probe's --after-producer)."
    if device.get("in_graph"):
        how += "\n// The timed calls were replayed from a CUDA graph, as the UNet runs them (the probe's --in-graph)."
    table.write_text(HEADER.format(gain=MIN_GAIN * 100, how=how) + "\n".join(kept + rows) + "\n")
    print(f"{table}: {len(rows)} rows for {device['name']} (cuBLASLt {device['cublaslt']}), {len(kept)} others kept")


if __name__ == "__main__":
    main()
