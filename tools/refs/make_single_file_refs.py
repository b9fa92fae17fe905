#!/usr/bin/env python3
"""Reference for the single-file checkpoint tests (tests/pipeline/test_single_file.cpp):
tests/pipeline/data/tiny-sd-original.tensors.json lists, for the tiny test pipeline converted to the
original (CompVis / Stability) layout by diffusers' own conversion script, every tensor's name, shape
and XXH3-64 of its float32 bytes ("name": [shape, xxh3], one per line). The checkpoints themselves (about 20 MB each) are not committed: the
test writes them from the fixture with diffbench's inverse key table and checks them against this list.

  "sd1": tiny-sd as it is (text encoder under cond_stage_model.transformer.).
  "sd2": tiny-sd made SD 2.x-shaped (tests/pipeline/single_file_support.hpp does the same in C++): the
         UNet's proj_in/proj_out as linear layers (use_linear_projection, weights [C, C]), the text
         encoder written as an open_clip text tower (cond_stage_model.model., q/k/v joined into in_proj).

How it was made (diffusers 0.42.1, torch 2.11 CPU, safetensors, xxhash from PyPI):
    git show HEAD:scripts/convert_diffusers_to_original_stable_diffusion.py > convert.py   # diffusers' repo
    PYTHONPATH=DEPS python tools/refs/make_single_file_refs.py convert.py ../shared/fixtures/tiny-sd \
        tests/pipeline/data/tiny-sd-original.tensors.json
The script's own functions convert each component (its __main__ hard-codes file names and its SD 2.x test
needs 23 text layers, so they are called directly). Its SD 2.x text path expects transformers' older
"text_model."-prefixed names, which are added first.
"""
import importlib.util
import json
import sys
from pathlib import Path

import xxhash
from safetensors.torch import load_file


def main(script, folder, out):
    spec = importlib.util.spec_from_file_location("convert", script)
    conv = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(conv)
    folder = Path(folder)
    unet = load_file(folder / "unet/diffusion_pytorch_model.safetensors")
    vae = load_file(folder / "vae/diffusion_pytorch_model.safetensors")
    text = load_file(folder / "text_encoder/model.safetensors")

    def original(unet, text, v2):
        sd = {"model.diffusion_model." + k: v for k, v in conv.convert_unet_state_dict(unet).items()}
        sd.update({"first_stage_model." + k: v for k, v in conv.convert_vae_state_dict(vae).items()})
        if v2:
            prefixed = {"transformer.text_model." + k: v for k, v in text.items()}
            sd.update({"cond_stage_model.model." + k: v for k, v in conv.convert_text_enc_state_dict_v20(prefixed).items()})
        else:
            sd.update({"cond_stage_model.transformer." + k: v for k, v in conv.convert_text_enc_state_dict(text).items()})
        return sd

    def listing(sd):
        out = {}
        for name in sorted(sd):
            t = sd[name].contiguous().float()
            out[name] = [list(t.shape), xxhash.xxh3_64_hexdigest(t.numpy().tobytes())]
        return out

    unet2 = {k: (v.reshape(v.shape[0], v.shape[1]) if (".proj_in.weight" in k or ".proj_out.weight" in k) else v)
             for k, v in unet.items()}
    result = {"sd1": listing(original(unet, text, False)), "sd2": listing(original(unet2, text, True))}
    lines = []  # one tensor per line: "name": [shape, xxh3]
    for family, listing_ in result.items():
        rows = [f'  {json.dumps(n)}: [{json.dumps(v[0])}, "{v[1]}"]' for n, v in listing_.items()]
        lines.append(f' "{family}": {{\n' + ",\n".join(rows) + "\n }")
    Path(out).write_text("{\n" + ",\n".join(lines) + "\n}\n")
    print({k: len(v) for k, v in result.items()}, "->", out)


if __name__ == "__main__":
    main(*sys.argv[1:4])
