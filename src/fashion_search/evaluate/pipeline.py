"""The evaluate stage's logic: every model on the same test gallery, the same way."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from fashion_search.config import EvaluateSettings, TextSettings
from fashion_search.data.layout import IMAGES_DIR
from fashion_search.device import CPU, Runtime
from fashion_search.embedding import embed_images, embed_texts, tokenize_queries
from fashion_search.evaluate.attributes import recall_by_attribute
from fashion_search.evaluate.grid import GridRow
from fashion_search.evaluate.measures import Measured, measure
from fashion_search.evaluate.retrieval import Retriever, query_first, search
from fashion_search.image_cache import Pixels
from fashion_search.inputs import pair_pixels, pair_segments
from fashion_search.models.clip import Checkpoint
from fashion_search.models.loader import load_model

GRID_COLUMNS = 5
BY_ATTRIBUTE_MEASURES = ("strict", "item")  # text-to-image: the query's attributes are its image's


@dataclass
class ModelResult:
    measured: Measured
    by_attribute: dict[str, Any]
    grid: list[GridRow] = field(default_factory=list)


@dataclass
class TestGallery:
    pairs: pd.DataFrame
    raw: Path
    fit: str
    cache: Path | None = None  # the cache_images stage's output; None decodes data/raw

    def pixels(self, checkpoint: Checkpoint) -> Pixels:
        return pair_pixels(self.pairs, self.raw, checkpoint.pixel_spec, self.fit, self.cache)

    def image_path(self, index: int) -> Path:
        return self.raw / IMAGES_DIR / self.pairs["image"].iloc[index]


def evaluate_model(name: str, directory: Path, gallery: TestGallery, attributes: pd.DataFrame,
                   settings: EvaluateSettings, seed: int, queries: list[str], text: TextSettings,
                   rerank_k: int, runtime: Runtime = CPU) -> ModelResult:
    """Every measure, the by-attribute breakdown and the grid rows for one model."""
    checkpoint, scorer = load_model(directory, name)
    images = embed_images(checkpoint, gallery.pixels(checkpoint), settings.batch_size, runtime)
    texts = embed_texts(checkpoint, pair_segments(gallery.pairs), settings.batch_size, runtime)
    measured = measure(images, texts, gallery.pairs, Retriever(settings.chunk_size, scorer, rerank_k), settings, seed)
    t2i_ranks = {protocol: measured.ranks[protocol]["t2i"] for protocol in BY_ATTRIBUTE_MEASURES}
    by_attribute = recall_by_attribute(attributes, t2i_ranks, settings.ks)
    query_tokens = tokenize_queries(checkpoint, queries, text.max_tokens, text.long_text)
    query_embeds = embed_texts(checkpoint, query_tokens, settings.batch_size, runtime)
    grid = []
    score_pairs = query_first(scorer) if scorer is not None else None
    for query, embed in zip(queries, query_embeds):
        hits, scores = search(embed, images, GRID_COLUMNS, score_pairs, rerank_k)
        grid.append((name, query, [(gallery.image_path(int(i)), float(s)) for i, s in zip(hits, scores)]))
    return ModelResult(measured, by_attribute, grid)


_NOT_ALLOWED_IN_MLFLOW_NAMES = re.compile(r"[^A-Za-z0-9_\-. /]")


def flat_metric_names(nested: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"finetuned": {"strict": {"t2i_recall_at_1": x}}} -> {"finetuned/strict/t2i_recall_at_1": x}.

    MLflow's metrics are flat and their names allow letters, digits, `_ - . /` and spaces.
    """
    flat: dict[str, float] = {}
    for key, value in nested.items():
        name = prefix + _NOT_ALLOWED_IN_MLFLOW_NAMES.sub("_", str(key))
        if isinstance(value, dict):
            flat.update(flat_metric_names(value, f"{name}/"))
        else:
            flat[name] = float(value)
    return flat
