#!/usr/bin/env python3
"""Reference PickScore and HPS v2 values for tests/metrics/test_preference.cpp, on the shared random-weight scorers.

PickScore, as its reference code scores (transformers CLIPModel; one image against its own prompt): the shared
tiny-clip model (../shared/fixtures/tiny-clip), the shared `pixel_values` of tiny-clip-reference.safetensors
(Pillow preprocessing; transformers >= 5's default processor differs by up to 2/255) and its texts tokenised by
the model's CLIPTokenizer (padding, truncation, max_length 77):
    image_embs = model.get_image_features(pixel_values); image_embs /= norm
    text_embs = model.get_text_features(input_ids, attention_mask); text_embs /= norm
    scores = model.logit_scale.exp() * (text_embs @ image_embs.T)   -> the diagonal
HPS v2, as its score.py reports it: the diagonal of image_features @ text_features.T of the open_clip model's
normalised features, taken from tiny-openclip-reference.safetensors (computed there by open_clip itself on the
same 6 images and texts). Writes tests/metrics/data/preference-expected.json.

    PYTHONPATH=<transformers, safetensors> python tools/refs/make_preference_refs.py SHARED_DIR
"""
import json
import os
import sys

import torch
import transformers
from safetensors.torch import load_file

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "metrics", "data", "preference-expected.json")


def features(out):
    return out if torch.is_tensor(out) else out.pooler_output  # transformers >= 5 returns a ModelOutput


def main():
    fixtures = os.path.join(sys.argv[1], "fixtures")
    ref = load_file(os.path.join(fixtures, "tiny-clip-reference.safetensors"))
    texts = json.load(open(os.path.join(fixtures, "tiny-clip-reference.json")))["texts"]
    model = transformers.CLIPModel.from_pretrained(os.path.join(fixtures, "tiny-clip")).eval()
    tok = transformers.CLIPTokenizer.from_pretrained(os.path.join(fixtures, "tiny-clip"))
    with torch.no_grad():
        image_embs = features(model.get_image_features(pixel_values=ref["pixel_values"]))
        image_embs = image_embs / torch.norm(image_embs, dim=-1, keepdim=True)
        t = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
        text_embs = features(model.get_text_features(input_ids=t["input_ids"], attention_mask=t["attention_mask"]))
        text_embs = text_embs / torch.norm(text_embs, dim=-1, keepdim=True)
        pick = (model.logit_scale.exp() * (text_embs @ image_embs.T)).diagonal()
    oc = load_file(os.path.join(fixtures, "tiny-openclip-reference.safetensors"))
    hps = torch.diagonal(oc["image_features_normalized"] @ oc["text_features_normalized"].T)
    out = {"transformers": transformers.__version__, "texts": texts, "logit_scale_exp": model.logit_scale.exp().item(),
           "pickscore": pick.tolist(), "hps": hps.tolist()}
    with open(OUT, "w") as f:
        json.dump(out, f, indent=1)
        f.write("\n")
    print(out)


if __name__ == "__main__":
    main()
