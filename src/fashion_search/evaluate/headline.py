"""metrics/headline.json: the few figures that answer the study's questions, for `dvc exp show`.

metrics/evaluate.json keeps every measure (hundreds of columns); this file keeps, per model, the primary
metric (shopper precision@10, the mean of the 2- and 3-attribute families) and item-level text-to-image
Recall@10 with their 95% intervals on the test split, the validation figures `serve.select_by` chooses by,
each model's paired difference from the one before it, and chance. Pipeline time is in metrics/timing.json.
"""

from __future__ import annotations

from typing import Any

from fashion_search.models import MODELS

# headline name -> where evaluate.json keeps it under a model (the interval's ends beside it as _low/_high)
TEST_FIGURES = {"shopper_p10": ("shopper", "headline", "precision_at_10"),
                "item_r10": ("item", "t2i_recall_at_10")}
VALIDATION_FIGURES = {"validation_shopper_ndcg10": "shopper_ndcg_at_10",
                      "validation_item_r10": "item_t2i_recall_at_10"}
DIFFERENCE_FIGURES = {"shopper_p10": "shopper_precision_at_10", "item_r10": "item_t2i_recall_at_10"}


def _at(tree: dict[str, Any], path: tuple[str, ...]) -> Any:
    for key in path:
        if not isinstance(tree, dict) or key not in tree:
            return None
        tree = tree[key]
    return tree


def _with_interval(values: dict[str, Any], name: str, tree: dict[str, Any], path: tuple[str, ...]) -> None:
    *parent, leaf = path
    for end in ("", "_low", "_high"):
        value = _at(tree, (*parent, leaf + end))
        if isinstance(value, (int, float)):
            values[name + end] = float(value)


def headline(metrics: dict[str, Any]) -> dict[str, Any]:
    """The headline of an evaluate metrics dict; a figure the run did not measure is left out."""
    result: dict[str, Any] = {}
    for name in (name for name in MODELS if name in metrics):
        figures: dict[str, float] = {}
        for figure, path in TEST_FIGURES.items():
            _with_interval(figures, figure, metrics[name], path)
        for figure, key in VALIDATION_FIGURES.items():
            value = _at(metrics, ("validation", name, key))
            if isinstance(value, (int, float)):
                figures[figure] = float(value)
        result[name] = figures
    for before, after in zip(MODELS, MODELS[1:]):
        entry = _at(metrics, ("differences", f"{after}_vs_{before}"))
        if isinstance(entry, dict):
            result[f"{after}_minus_{before}"] = {
                figure + suffix: float(entry[key][end]) for figure, key in DIFFERENCE_FIGURES.items() if key in entry
                for suffix, end in (("", "mean"), ("_low", "low"), ("_high", "high"))}
    shopper_chance = next((value for name in MODELS if isinstance(
        value := _at(metrics, (name, "shopper", "headline", "chance_precision_at_10")), (int, float))), None)
    chance = {"shopper_p10": shopper_chance,
              "item_r10": _at(metrics, ("gallery", "item_chance_t2i_recall_at_10"))}
    result["chance"] = {key: float(value) for key, value in chance.items() if isinstance(value, (int, float))}
    return result
