"""Stage evaluate: every measure (strict, item level, Marqo protocol, small galleries, by attribute, shopper
queries) for baseline, finetuned and xattn on the test split, with intervals and paired differences; the
figures `serve.select_by` chooses by, on the validation split; Recall@K plots, the retrieval grid, and the test
rankings as TREC run files with their qrels; metrics/headline.json, the few figures `dvc exp show` shows."""

import argparse
from pathlib import Path

import pandas as pd

from fashion_search.atomic import atomic_path, write_json
from fashion_search.config import load_params, section, seed, stage_params
from fashion_search.data.pairs import read_pairs, require
from fashion_search.device import pick_runtime
from fashion_search.evaluate.attributes import query_attributes, unlabelled_queries
from fashion_search.evaluate.grid import draw_grid
from fashion_search.evaluate.headline import headline
from fashion_search.evaluate.measures import gallery_description
from fashion_search.evaluate.pipeline import (ShopperGallery, TestGallery, evaluate_model, flat_metric_names,
                                              paired_differences, record_models, test_metrics, trec_judgements,
                                              trec_rankings, validate_model)
from fashion_search.evaluate.trec import write_trec
from fashion_search.models import MADE_BY, MODELS
from fashion_search.models.loader import load_model
from fashion_search.stage import run
from fashion_search.tracking import start_run

PLOTTED = ("strict_t2i", "strict_i2t", "item_t2i", "item_i2t")


def plot_file(curve: str) -> str:
    """strict_t2i -> t2i_recall_at_k.csv (the report's curve keeps its name); item_t2i -> item_t2i_recall_at_k.csv."""
    return f"{curve.removeprefix('strict_')}_recall_at_k.csv"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    for name in MODELS:
        parser.add_argument(f"--{name}", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True, help="to tell which shopper combinations no training "
                        "image shows")
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--headline", type=Path, required=True, help="the figures `dvc exp show` shows")
    parser.add_argument("--by-attribute", type=Path, required=True)
    parser.add_argument("--plots", type=Path, required=True)
    parser.add_argument("--grid", type=Path, required=True)
    parser.add_argument("--trec", type=Path, required=True, help="the test rankings as TREC runs and qrels")
    args = parser.parse_args()
    params = load_params()
    settings, image, text = section(params, "evaluate"), section(params, "image"), section(params, "text")
    rerank_k, seed_value = section(params, "retrieval").rerank_k, seed(params)
    runtime_settings = section(params, "runtime")
    runtime = pick_runtime(runtime_settings.device, runtime_settings.precision, runtime_settings.compile)
    gallery = TestGallery(read_pairs(args.test, "split"), args.raw, image.fit, require(args.cache, "cache_images"))
    validation = TestGallery(read_pairs(args.val, "split"), args.raw, image.fit, args.cache)
    attributes = query_attributes(gallery.pairs["image"].tolist(), args.raw)
    queries = [*settings.queries, gallery.pairs["caption"].iloc[0]]
    train_images = read_pairs(args.train, "split")["image"].tolist()
    # the short texts the models trained on: train_baseline's alt texts (finetune's, with the same seed, are
    # the first of the same texts per image)
    alt_texts = max(section(params, "train_baseline").alt_texts, section(params, "finetune").alt_texts)
    shopper = ShopperGallery.build(gallery.pairs["image"].tolist(), args.raw, settings, seed_value, train_images,
                                   alt_texts)
    shopper_validation = ShopperGallery.build(validation.pairs["image"].tolist(), args.raw, settings, seed_value)

    with start_run("evaluate", stage_params(params, "evaluate")) as logger:
        record_models(logger, {name: getattr(args, name) for name in MODELS})
        results, validated = {}, {}
        for name in MODELS:  # each model loaded once, for the test and the validation split
            model = load_model(require(getattr(args, name), MADE_BY[name]), name)
            results[name] = evaluate_model(name, model, gallery, attributes, settings, seed_value, queries, text,
                                           rerank_k, runtime, shopper)
            validated.update(validate_model(name, model, validation, shopper_validation, settings, seed_value, text,
                                            rerank_k, runtime))
        metrics = {name: test_metrics(result, seed_value) for name, result in results.items()}
        metrics["differences"] = paired_differences(results, seed_value)
        metrics["validation"] = validated
        metrics["gallery"] = gallery_description(gallery.pairs, settings, seed_value)
        metrics["gallery"]["validation_size"] = len(validation.pairs)
        by_attribute = {name: result.by_attribute for name, result in results.items()}
        by_attribute["unlabelled_queries"] = unlabelled_queries(attributes)
        logger.log_metrics(flat_metric_names(metrics))
        logger.log_parent_metrics(flat_metric_names(metrics))  # one row per pipeline in the MLflow runs table
        logger.log_metrics(flat_metric_names({"by_attribute": by_attribute}))
        for name, result in results.items():
            for curve, values in result.measured.curves.items():
                logger.log_series(f"{name}/{curve}_recall_at_k", values, first_step=1)
        write_json(args.metrics, metrics)
        write_json(args.headline, headline(metrics))
        write_json(args.by_attribute, by_attribute)
        with atomic_path(args.plots) as tmp:
            tmp.mkdir()
            for curve in PLOTTED:
                curves = {"k": list(range(1, settings.plot_max_k + 1))}
                curves.update({name: result.measured.curves[curve] for name, result in results.items()})
                pd.DataFrame(curves).to_csv(tmp / plot_file(curve), index=False)
        rows = [row for query_index in range(len(queries)) for result in results.values()
                for row in result.grid[query_index:query_index + 1]]
        with atomic_path(args.grid) as tmp:
            draw_grid(rows, tmp)
        write_trec(args.trec, trec_judgements(gallery, shopper), trec_rankings(results))
        for path in (args.grid, args.metrics, args.by_attribute):
            logger.log_artifact(path)


if __name__ == "__main__":
    run(main)
