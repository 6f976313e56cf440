"""Which of the trained models the search service answers with."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from fashion_search.errors import DataError
from fashion_search.models import MODELS

VALIDATION = "validation"


def best_model(metrics: dict[str, Any], select_by: str) -> str:
    """The model with the highest `select_by` on the validation split (metrics/evaluate.json:
    {validation: {model: {select_by: x}}}); the earliest in MODELS wins a tie. The test split is
    never looked at."""
    validation = metrics.get(VALIDATION)
    scores = {name: float(validation[name][select_by]) for name in MODELS
              if isinstance(validation, dict) and isinstance(validation.get(name), dict)
              and select_by in validation[name]}
    if not scores:
        raise DataError(f"no model in the evaluate metrics has {VALIDATION} {select_by} (a shopper figure needs "
                        "shopper queries with enough relevant validation images); rerun `dvc repro evaluate`, "
                        "choose another serve.select_by, or set serve.model to baseline, finetuned or xattn")
    return max(scores, key=lambda name: (scores[name], -MODELS.index(name)))


def choose_model(requested: str, metrics_path: Path, select_by: str) -> str:
    """`serve.model` as a model name: `best` is decided by `select_by` on the validation split."""
    if requested != "best":
        return requested
    return best_model(json.loads(metrics_path.read_text(encoding="utf-8")), select_by)
