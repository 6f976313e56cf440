"""metrics/headline.json: the figures `dvc exp show` shows, taken from the evaluate metrics, and what the sweep reads."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_search import sweep
from fashion_search.evaluate.headline import headline

REPO = Path(__file__).resolve().parents[1]


def _model(p10: float, item: float, ndcg: float) -> dict:
    return {"shopper": {"headline": {"precision_at_10": p10, "precision_at_10_low": p10 - 0.04,
                                     "precision_at_10_high": p10 + 0.04, "chance_precision_at_10": 0.06}},
            "item": {"t2i_recall_at_10": item, "t2i_recall_at_10_low": item - 0.1, "t2i_recall_at_10_high": item + 0.04},
            "strict": {"t2i_recall_at_10": 0.4}}


def _metrics() -> dict:
    difference = {"mean": 0.01, "low": -0.01, "high": 0.03, "excludes_0": False}
    return {"baseline": _model(0.24, 0.65, 0.27), "finetuned": _model(0.25, 0.66, 0.28), "xattn": _model(0.2, 0.6, 0.2),
            "differences": {"finetuned_vs_baseline": {"shopper_precision_at_10": difference,
                                                      "item_t2i_recall_at_10": difference},
                            "xattn_vs_finetuned": {"item_t2i_recall_at_10": difference}},
            "validation": {"baseline": {"shopper_ndcg_at_10": 0.27, "item_t2i_recall_at_10": 0.78},
                           "finetuned": {"shopper_ndcg_at_10": 0.28, "item_t2i_recall_at_10": 0.79}},
            "gallery": {"size": 516, "item_chance_t2i_recall_at_10": 0.07}}


def _flat(tree: dict, prefix: str = "") -> dict:
    flat = {}
    for key, value in tree.items():
        flat.update(_flat(value, f"{prefix}{key}.") if isinstance(value, dict) else {prefix + key: value})
    return flat


def test_headline_keeps_each_models_primary_figures_with_intervals_differences_and_chance() -> None:
    result = headline(_metrics())
    assert result["finetuned"] == pytest.approx({"shopper_p10": 0.25, "shopper_p10_low": 0.21, "shopper_p10_high": 0.29,
                                   "item_r10": 0.66, "item_r10_low": 0.56, "item_r10_high": 0.70,
                                   "validation_shopper_ndcg10": 0.28, "validation_item_r10": 0.79})
    assert "validation_shopper_ndcg10" not in result["xattn"]  # not measured: left out, not invented
    assert result["finetuned_minus_baseline"] == {"shopper_p10": 0.01, "shopper_p10_low": -0.01,
                                                  "shopper_p10_high": 0.03, "item_r10": 0.01, "item_r10_low": -0.01,
                                                  "item_r10_high": 0.03}
    assert set(result["xattn_minus_finetuned"]) == {"item_r10", "item_r10_low", "item_r10_high"}
    assert result["chance"] == {"shopper_p10": 0.06, "item_r10": 0.07}
    assert len(_flat(result)) < 40  # a readable `dvc exp show`, against hundreds of columns in evaluate.json


def test_every_figure_the_sweep_reads_is_in_the_headline() -> None:
    flat = _flat(headline(_metrics()))
    assert {key for _, key in sweep.COLUMNS} <= set(flat)
    assert sweep.METRICS_FILE == "metrics/headline.json"


def test_the_committed_headline_is_the_committed_metrics_headline() -> None:
    committed = json.loads((REPO / "metrics/headline.json").read_text())
    assert committed == headline(json.loads((REPO / "metrics/evaluate.json").read_text()))


def test_chance_comes_from_any_model_with_shopper_figures() -> None:
    metrics = _metrics()
    del metrics["baseline"]["shopper"]
    result = headline(metrics)
    assert "shopper_p10" not in result["baseline"] and result["chance"]["shopper_p10"] == 0.06
