"""The report's protocol: one query per test caption, the hit is its own image (and back)."""

from __future__ import annotations

from collections.abc import Iterable

import torch

from fashion_search.evaluate.retrieval import rerank, summarise, target_ranks
from fashion_search.models.xattn import CrossModalScorer


def strict_ranks(image_embeds: torch.Tensor, text_embeds: torch.Tensor, chunk_size: int,
                 scorer: CrossModalScorer | None = None, rerank_k: int = 0) -> dict[str, torch.Tensor]:
    """Rank of each pair's own image (t2i) and own caption (i2t); row i of both is pair i.

    With a scorer, the dual encoder retrieves the top rerank_k over the full gallery
    and the scorer re-orders them, as the search service does.
    """
    targets = torch.arange(len(image_embeds))
    if scorer is None:
        return {"t2i": target_ranks(text_embeds, image_embeds, targets, chunk_size),
                "i2t": target_ranks(image_embeds, text_embeds, targets, chunk_size)}
    return {"t2i": rerank(text_embeds, image_embeds, targets, rerank_k, chunk_size,
                          lambda text, image: scorer(image, text)),
            "i2t": rerank(image_embeds, text_embeds, targets, rerank_k, chunk_size,
                          lambda image, text: scorer(image, text))}


def strict_metrics(ranks: dict[str, torch.Tensor], ks: Iterable[int]) -> dict[str, float]:
    """t2i_recall_at_1 ... i2t_median_rank for one model."""
    ks = list(ks)
    return {name: value for direction, r in ranks.items() for name, value in summarise(r, ks, direction).items()}


def recall_curve(ranks: torch.Tensor, max_k: int) -> list[float]:
    """Recall@K for K = 1..max_k, for the DVC plot."""
    return [float((ranks <= k).float().mean()) for k in range(1, max_k + 1)]
