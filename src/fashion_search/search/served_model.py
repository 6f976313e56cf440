"""Which of the trained models the search service answers with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fashion_search.errors import DataError
from fashion_search.models import MODELS

BEST_BY = "t2i_recall_at_10"
STRICT = "strict"


def best_model(metrics: dict[str, Any]) -> str:
    """The model with the highest strict text-to-image Recall@10 in the evaluate stage's metrics
    ({model: {strict: {t2i_recall_at_10}}}); the earliest wins a tie."""
    scores = {name: float(metrics[name][STRICT][BEST_BY]) for name in MODELS
              if isinstance(metrics.get(name), dict) and isinstance(metrics[name].get(STRICT), dict)
              and BEST_BY in metrics[name][STRICT]}
    if not scores:
        raise DataError(f"no model in the evaluate metrics has {STRICT} {BEST_BY}; rerun `dvc repro evaluate`, "
                        "or set serve.model to baseline, finetuned or xattn")
    return max(scores, key=lambda name: (scores[name], -MODELS.index(name)))


def choose_model(requested: str, metrics_path: Path) -> str:
    """`serve.model` as a model name: `best` is looked up in the evaluate stage's metrics."""
    if requested != "best":
        return requested
    return best_model(json.loads(metrics_path.read_text(encoding="utf-8")))
