"""The Marqo protocol for DeepFashion-MultiModal text-to-image, so our numbers sit beside published ones.

Queries are the unique caption strings (at most 2,000, sampled with a seed); every
image whose caption is exactly the query is relevant. Recall@K is BEIR-style:
relevant retrieved in the first K over all relevant, per query, then averaged.
DeepFashion-MultiModal captions are written from attribute labels, so many images
share one; strict Recall@K would count all but one of them as misses. The
published figures to compare with are in `evaluate.published`.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from fashion_search.evaluate.intervals import bootstrap_mean
from fashion_search.evaluate.item import group_codes
from fashion_search.evaluate.retrieval import Ranking, Retriever
from fashion_search.evaluate.strict import unique_caption_rows

MARQO_KS = (1, 10)
MRR_CUTOFF = 10


def marqo_queries(captions: Sequence[str], limit: int, seed: int) -> np.ndarray:
    """Row of the first pair of each sampled unique caption, in caption order: the queries' embeddings."""
    first_rows = unique_caption_rows(captions).numpy()
    if len(first_rows) > limit:
        first_rows = first_rows[np.sort(np.random.default_rng(seed).choice(len(first_rows), limit, replace=False))]
    return first_rows


def marqo_ranking(images: torch.Tensor, texts: torch.Tensor, captions: Sequence[str], limit: int, seed: int,
                  retriever: Retriever) -> Ranking:
    """Sampled unique captions against every image; relevant: the images with exactly that caption."""
    caption_ids = group_codes(captions)
    rows = torch.tensor(marqo_queries(captions, limit, seed))
    return retriever.rank("t2i", images, texts[rows], caption_ids, caption_ids[rows], MARQO_KS)


def marqo_metrics(ranking: Ranking, seed: int | None = None) -> dict[str, float | int]:
    """Recall@1, Recall@10 (relevant retrieved over all relevant), MRR@10, AvgRecall, number of queries; with
    `seed`, Recall@10's 95% bootstrap interval over the queries (each a distinct caption: on the synthetic
    data one product's, the independent unit)."""
    recall = ranking.hits.double() / ranking.relevant.unsqueeze(1).double()
    metrics: dict[str, float | int] = {f"recall_at_{k}": float(recall[:, column].mean()) for column, k in enumerate(MARQO_KS)}
    if seed is not None:
        interval = bootstrap_mean(recall[:, MARQO_KS.index(10)].tolist(), seed)
        metrics["recall_at_10_low"], metrics["recall_at_10_high"] = interval["low"], interval["high"]
    reciprocal = torch.where(ranking.first <= MRR_CUTOFF, 1.0 / ranking.first.double(), torch.zeros(()).double())
    metrics[f"mrr_at_{MRR_CUTOFF}"] = float(reciprocal.mean())
    metrics["avg_recall"] = (metrics["recall_at_1"] + metrics["recall_at_10"]) / 2
    metrics["queries"] = len(ranking.first)
    return metrics
