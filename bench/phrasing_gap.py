"""Is the short-query gap in the words or in the pictures? Shopper precision@10 of one model on the train and
validation galleries, each 2- and 3-attribute combination asked in each of the protocol's phrasings and in
a training text's frame ("photo of <compact phrasing>", a frame the alt texts use); prints JSON.

    python bench/phrasing_gap.py [--model models/baseline] [--root .]

Run after `make repro`. On the train gallery the model has seen every picture with its captions and alt
texts; on validation, none.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from fashion_search.config import load_params, section, seed
from fashion_search.data.attributes import image_attributes
from fashion_search.data.pairs import read_pairs
from fashion_search.embedding import embed_images, embed_texts, tokenize_queries
from fashion_search.evaluate.shopper import HEADLINE_FAMILIES, build_families, query_measures, relevant
from fashion_search.image_cache import open_cache
from fashion_search.models.loader import load_model
from fashion_search.stage import run

PHRASINGS = {"compact": lambda texts: texts[0], "after": lambda texts: texts[min(1, len(texts) - 1)],
             "worn": lambda texts: texts[-1], "photo of compact (a training frame)": lambda texts: f"photo of {texts[0]}"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--root", type=Path, default=Path(__file__).resolve().parents[1])
    parser.add_argument("--model", type=Path, default=Path("models/baseline"))
    args = parser.parse_args()
    root = args.root
    params = load_params(root / "params.yaml")
    shopper, batch = section(params, "evaluate").shopper, section(params, "evaluate").batch_size
    torch.manual_seed(seed(params))
    checkpoint, _ = load_model(root / args.model)
    fit, text = section(params, "image").fit, section(params, "text")
    result = {"model": args.model.as_posix()}
    for split in ("train", "val"):
        pairs = read_pairs(root / f"data/processed/{split}.parquet", "split")
        attributes = image_attributes(root / "data/raw", pairs["image"].tolist())
        pixels = open_cache(root / "data/cache/images", pairs["image"].tolist(), checkpoint.pixel_spec, fit)
        images = embed_images(checkpoint, pixels, batch)
        families = [f for f in build_families(attributes, shopper.min_relevant, shopper.max_queries, seed(params))
                    if f.name in HEADLINE_FAMILIES]
        result[split] = {"images": len(pairs)}
        for family in families:
            masks = [relevant(attributes, c) for c in family.combinations]
            entry = {"combinations": len(masks), "base_rate": float(np.mean([m.mean() for m in masks]))}
            for name, pick in PHRASINGS.items():
                texts = [pick(options) for options in family.texts]
                scores = embed_texts(checkpoint, tokenize_queries(checkpoint, texts, text.max_tokens,
                                                                   text.long_text), batch) @ images.T
                entry[name] = float(np.mean([query_measures(row.numpy(), mask, np.zeros_like(mask))["precision_at_10"]
                                             for row, mask in zip(scores, masks)]))
            result[split][family.name] = entry
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    run(main)
