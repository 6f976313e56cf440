"""The evaluate stage's logic: every model on the same test gallery, the same way."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from fashion_search.config import EvaluateSettings
from fashion_search.data.layout import IMAGES_DIR
from fashion_search.evaluate.embed import embed_images, embed_texts, tokenize_queries
from fashion_search.evaluate.grid import GridRow
from fashion_search.evaluate.retrieval import search
from fashion_search.evaluate.strict import recall_curve, strict_metrics, strict_ranks
from fashion_search.models.clip import Checkpoint, load_checkpoint
from fashion_search.models.xattn import CrossModalScorer, load_xattn
from fashion_search.train.inputs import pair_pixels, pair_token_ids

GRID_COLUMNS = 5


@dataclass
class ModelResult:
    metrics: dict[str, float]
    curves: dict[str, list[float]]
    grid: list[GridRow] = field(default_factory=list)


@dataclass
class TestGallery:
    pairs: pd.DataFrame
    raw: Path
    fit: str
    _pixels: dict = field(default_factory=dict)

    def pixels(self, checkpoint: Checkpoint) -> torch.Tensor:
        """Decoded once per image size, shared by the models that use the same size."""
        spec = checkpoint.pixel_spec
        if spec.size not in self._pixels:
            self._pixels[spec.size] = pair_pixels(self.pairs, self.raw, spec, self.fit)
        return self._pixels[spec.size]

    def image_path(self, index: int) -> Path:
        return self.raw / IMAGES_DIR / self.pairs["image"].iloc[index]


def evaluate_model(name: str, directory: Path, gallery: TestGallery, settings: EvaluateSettings,
                   queries: list[str], max_tokens: int, rerank_k: int) -> ModelResult:
    """Strict Recall@K both ways, the Recall@K curve, and the grid rows for one model."""
    scorer: CrossModalScorer | None = None
    if name == "xattn":
        xattn = load_xattn(directory)
        checkpoint, scorer = xattn.encoder, xattn.scorer
    else:
        checkpoint = load_checkpoint(directory)
    images = embed_images(checkpoint, gallery.pixels(checkpoint), settings.batch_size)
    texts = embed_texts(checkpoint, pair_token_ids(gallery.pairs), settings.batch_size)
    ranks = strict_ranks(images, texts, settings.chunk_size, scorer, rerank_k)
    curves = {direction: recall_curve(r, settings.plot_max_k) for direction, r in ranks.items()}
    query_embeds = embed_texts(checkpoint, tokenize_queries(checkpoint, queries, max_tokens), settings.batch_size)
    grid = []
    for query, embed in zip(queries, query_embeds):
        score_pairs = (lambda text, image: scorer(image, text)) if scorer is not None else None
        hits, scores = search(embed, images, GRID_COLUMNS, score_pairs, rerank_k)
        grid.append((name, query, [(gallery.image_path(int(i)), float(s)) for i, s in zip(hits, scores)]))
    return ModelResult(strict_metrics(ranks, settings.ks), curves, grid)


def chance_metrics(gallery_size: int, ks: list[int]) -> dict[str, float]:
    """What a random ranking scores, so a reader can tell learning from luck."""
    return {f"chance_recall_at_{k}": min(1.0, k / gallery_size) for k in ks}
