#!/usr/bin/env python3
"""Writes assets/prompts/coco2017-val-first-captions.jsonl, diffbench's default prompt set.

For each of the first N images of COCO 2017 val in images[] order, its first caption: the first
annotation for that image in annotations[] order (the lowest annotation id in the official file).
Captions are kept exactly as stored (whitespace included). One JSON object per line:
{"image_id": ID, "prompt": CAPTION}.

    python3 tools/extract-coco-prompts.py PATH/TO/captions_val2017.json \
        assets/prompts/coco2017-val-first-captions.jsonl --count 5000

captions_val2017.json is the official annotation file from annotations_trainval2017.zip
(https://cocodataset.org), licensed CC BY 4.0 by the COCO Consortium.
"""
import argparse
import json


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("captions", help="captions_val2017.json")
    ap.add_argument("out", help="output .jsonl")
    ap.add_argument("--count", type=int, default=5000)
    args = ap.parse_args()
    with open(args.captions, encoding="utf-8") as f:
        coco = json.load(f)
    images = [img["id"] for img in coco["images"][: args.count]]
    first = {}
    for ann in coco["annotations"]:
        first.setdefault(ann["image_id"], ann["caption"])
    with open(args.out, "w", encoding="utf-8", newline="\n") as out:
        for image_id in images:
            out.write(json.dumps({"image_id": image_id, "prompt": first[image_id]}, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
