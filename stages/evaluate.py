"""Stage evaluate: strict Recall@K both ways for baseline, finetuned and xattn; plots and the retrieval grid."""

import argparse
from pathlib import Path

import pandas as pd

from fashion_search.atomic import atomic_path
from fashion_search.config import load_params, section, seed
from fashion_search.data.pairs import read_pairs, require
from fashion_search.evaluate.grid import draw_grid
from fashion_search.evaluate.pipeline import TestGallery, chance_metrics, evaluate_model
from fashion_search.stage import run, write_json
from fashion_search.tracking import start_run

MODELS = ("baseline", "finetuned", "xattn")
MADE_BY = {"baseline": "train_baseline", "finetuned": "finetune", "xattn": "train_xattn"}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in MODELS:
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    parser.add_argument("--grid", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    settings, image, text = section(params, "evaluate"), section(params, "image"), section(params, "text")
    rerank_k = section(params, "xattn").rerank_k
    gallery = TestGallery(read_pairs(args.test, "split"), args.raw, image.fit)
    queries = [*settings.queries, gallery.pairs["caption"].iloc[0]]

    tracked = {"seed": seed(params), "image": params["image"], "evaluate": params["evaluate"],
               "xattn.rerank_k": rerank_k}
    with start_run("evaluate", tracked) as logger:
        results = {name: evaluate_model(name, require(getattr(args, name), MADE_BY[name]), gallery, settings,
                                        queries, text.max_tokens, rerank_k) for name in MODELS}
        metrics = {name: result.metrics for name, result in results.items()}
        metrics["gallery"] = {"size": len(gallery.pairs), **chance_metrics(len(gallery.pairs), settings.ks)}
        for name, values in metrics.items():
            logger.log_metrics({f"{name}_{key}": value for key, value in values.items()})
        write_json(args.metrics, metrics)
        with atomic_path(args.plots) as tmp:
            tmp.mkdir()
            for direction in ("t2i", "i2t"):
                curves = {"k": list(range(1, settings.plot_max_k + 1))}
                curves.update({name: result.curves[direction] for name, result in results.items()})
                pd.DataFrame(curves).to_csv(tmp / f"{direction}_recall_at_k.csv", index=False)
        rows = [row for query_index in range(len(queries)) for result in results.values()
                for row in result.grid[query_index:query_index + 1]]
        with atomic_path(args.grid) as tmp:
            draw_grid(rows, tmp)
        logger.log_artifact(args.grid)
        logger.log_artifact(args.metrics)


if __name__ == "__main__":
    run(main)
