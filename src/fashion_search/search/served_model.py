"""Which trained model the search service answers with, and loading it for embedding and re-ranking."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fashion_search.models.clip import Checkpoint, load_checkpoint
from fashion_search.models.xattn import CrossModalScorer, load_xattn

MODELS = ("baseline", "finetuned", "xattn")
BEST_BY = "t2i_recall_at_10"
STRICT = "strict"


def best_model(metrics: dict[str, Any]) -> str:
    """The model with the highest strict text-to-image Recall@10; the earliest wins a tie.

    Reads both the flat layout ({model: {t2i_recall_at_10}}) and the per-protocol
    one ({model: {strict: {t2i_recall_at_10}}}), so the service does not depend on
    which of the two metrics/evaluate.json currently has.
    """
    scores = {name: _strict_recall(metrics[name]) for name in MODELS if isinstance(metrics.get(name), dict)}
    scores = {name: score for name, score in scores.items() if score is not None}
    if not scores:
        raise ValueError(f"no model in the evaluate metrics has {BEST_BY}; rerun `dvc repro evaluate`, "
                         "or set serve.model to baseline, finetuned or xattn")
    return max(scores, key=lambda name: (scores[name], -MODELS.index(name)))


def _strict_recall(model_metrics: dict[str, Any]) -> float | None:
    nested = model_metrics.get(STRICT)
    if isinstance(nested, dict) and BEST_BY in nested:
        return float(nested[BEST_BY])
    return float(model_metrics[BEST_BY]) if BEST_BY in model_metrics else None


def choose_model(requested: str, metrics_path: Path) -> str:
    """`serve.model` as a model name: `best` is looked up in the evaluate stage's metrics."""
    if requested != "best":
        return requested
    return best_model(json.loads(metrics_path.read_text(encoding="utf-8")))


def load_model(name: str, directory: Path) -> tuple[Checkpoint, CrossModalScorer | None]:
    """The dual encoder that embeds, and for xattn the pair scorer that re-ranks its candidates."""
    if name == "xattn":
        xattn = load_xattn(directory)
        return xattn.encoder, xattn.scorer
    return load_checkpoint(directory), None
