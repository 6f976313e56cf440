"""Stage index: embed the search gallery with the served model; write models/index/ for query and serve."""

import argparse
from pathlib import Path

import pandas as pd

from fashion_search.config import load_params, section, seed
from fashion_search.data.attributes import image_attributes
from fashion_search.data.pairs import read_pairs, require
from fashion_search.device import pick_runtime
from fashion_search.models import MADE_BY, MODELS
from fashion_search.models.loader import load_model
from fashion_search.search.calibration import weak_match_threshold
from fashion_search.search.facets import facet_values
from fashion_search.search.index import embed_gallery, gallery_pairs, image_paths, write_index
from fashion_search.search.served_model import choose_model
from fashion_search.search.vectors import resolve_kind
from fashion_search.stage import run

def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in MODELS:
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True, help="metrics/evaluate.json, for serve.model: best")
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    serve, image, text = section(params, "serve"), section(params, "image"), section(params, "text")
    rerank_k = section(params, "retrieval").rerank_k

    model = choose_model(serve.model, require(args.metrics, "evaluate"), serve.select_by)
    model_dir = require(getattr(args, model), MADE_BY[model])
    checkpoint, scorer = load_model(model_dir, model)
    validation = read_pairs(args.val, "split")
    not_test = pd.concat([read_pairs(args.train, "split"), validation], ignore_index=True)
    pairs = gallery_pairs(not_test, read_pairs(args.test, "split"), serve.gallery)
    runtime_settings = section(params, "runtime")
    runtime = pick_runtime(runtime_settings.device, runtime_settings.precision, runtime_settings.compile)
    cache = require(args.cache, "cache_images")
    embeddings = embed_gallery(checkpoint, pairs, args.raw, image.fit, serve.batch_size, cache, runtime)

    # When nothing matches well: the validation images' own shopper queries against off-domain ones.
    validation = validation.drop_duplicates("image").reset_index(drop=True)
    shopper = section(params, "evaluate").shopper
    weak_match = weak_match_threshold(
        checkpoint, image_attributes(args.raw, validation["image"].tolist()),
        embed_gallery(checkpoint, validation, args.raw, image.fit, serve.batch_size, cache, runtime),
        shopper.min_relevant, shopper.max_queries, seed(params), text.max_tokens, text.long_text,
        serve.batch_size)
    reference = {
        "model": model, "model_dir": model_dir.as_posix(), "gallery": serve.gallery,
        "selected_by": f"validation {serve.select_by}" if serve.model == "best" else "serve.model",
        "faiss": resolve_kind(serve.faiss, len(pairs)), "max_tokens": text.max_tokens,
        "long_text": text.long_text, "image_fit": image.fit,
        "rerank_k": rerank_k if scorer is not None else None, "examples": serve.examples,
        "weak_match": weak_match,
    }
    facets = facet_values(image_attributes(args.raw, pairs["image"].tolist()))
    write_index(args.out, pairs["image"].tolist(), image_paths(pairs, args.raw), embeddings, reference,
                pairs["caption"].tolist(), facets)
    print(f"{args.out}: {len(pairs)} images embedded with {model} ({reference['faiss']} search), "
          f"filters: {', '.join(facets) or 'none'}, weak-match threshold: {weak_match}")


if __name__ == "__main__":
    run(main)
