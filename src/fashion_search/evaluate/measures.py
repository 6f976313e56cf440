"""Every measure on one model's embeddings: the one place the evaluate stage and the benchmark share.

Row i of `images` and `texts` is pair i of `pairs` (columns image, item_id, caption).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import pandas as pd
import torch

from fashion_search.config import EvaluateSettings
from fashion_search.evaluate.galleries import (gallery_key, small_gallery_i2t_chance, small_gallery_ranks,
                                              small_gallery_t2i_ceiling)
from fashion_search.evaluate.item import item_groups
from fashion_search.evaluate.ceiling import (item_i2t_ceiling, item_t2i_ceiling, item_t2i_chance, marqo_ceiling,
                                            marqo_chance_mrr, strict_t2i_ceiling)
from fashion_search.evaluate.marqo import MARQO_KS, marqo_metrics, marqo_queries, marqo_ranking
from fashion_search.evaluate.marqo import MRR_CUTOFF as MARQO_MRR_CUTOFF
from fashion_search.evaluate.retrieval import Retriever, direction_metrics, recall_curve
from fashion_search.evaluate.strict import strict_i2t_ranks, strict_t2i_groups

PROTOCOLS = ("strict", "item", "marqo", "gallery")


@dataclass
class Measured:
    metrics: dict[str, dict[str, float | int]] = field(default_factory=dict)  # protocol -> name -> value
    curves: dict[str, list[float]] = field(default_factory=dict)              # "item_t2i" -> Recall@1..max_k
    ranks: dict[str, dict[str, torch.Tensor]] = field(default_factory=dict)   # "strict" / "item" -> direction -> ranks


def measure(images: torch.Tensor, texts: torch.Tensor, pairs: pd.DataFrame, retriever: Retriever,
            settings: EvaluateSettings, seed: int, protocols: Sequence[str] = PROTOCOLS) -> Measured:
    """The chosen protocols' metrics (strict and item: Recall@K both ways, mean and median rank)."""
    unknown = sorted(set(protocols) - set(PROTOCOLS))
    if unknown:
        raise ValueError(f"unknown protocol(s) {unknown}; choose from {PROTOCOLS}")
    result = Measured()
    groupings = {}
    if "strict" in protocols:
        groupings["strict"] = strict_t2i_groups(len(images))
    if "item" in protocols:
        groupings["item"] = item_groups(pairs["item_id"].tolist())
    if groupings:
        for protocol, ranking in retriever.rank_groupings("t2i", images, texts, groupings).items():
            result.ranks[protocol] = {"t2i": ranking.first}
    if "strict" in protocols:  # image to text ranks the distinct captions (evaluate/strict.py)
        result.ranks["strict"]["i2t"] = strict_i2t_ranks(images, texts, pairs["caption"].tolist(), retriever)
    if "item" in protocols:
        result.ranks["item"]["i2t"] = retriever.rank("i2t", images, texts, *groupings["item"]).first
    for protocol, ranks in result.ranks.items():
        result.metrics[protocol] = direction_metrics(ranks, settings.ks)
        result.curves.update({f"{protocol}_{direction}": recall_curve(r, settings.plot_max_k)
                              for direction, r in ranks.items()})
    if "marqo" in protocols:
        ranking = marqo_ranking(images, texts, pairs["caption"].tolist(), settings.marqo_queries, seed, retriever)
        result.metrics["marqo"] = marqo_metrics(ranking, seed)
    if "gallery" in protocols:
        ranks = small_gallery_ranks(images, texts, pairs["caption"].tolist(), settings.gallery_size,
                                    settings.gallery_draws, seed, retriever)
        result.metrics[gallery_key(settings.gallery_size)] = direction_metrics(ranks, settings.ks)
    return result


def gallery_description(pairs: pd.DataFrame, settings: EvaluateSettings, seed: int) -> dict[str, float | int]:
    """What the numbers were measured on, what a random ranking scores on it (strict image to text ranks the
    distinct captions, so its chance is higher than text to image's), and what a perfect one could (the
    ceiling: queries with identical text share one ranking, evaluate/ceiling.py)."""
    size, captions = len(pairs), pairs["caption"].reset_index(drop=True)
    unique = int(pairs["caption"].nunique())
    small = min(settings.gallery_size, size)
    small_i2t = small_gallery_i2t_chance(captions.tolist(), settings.gallery_size, settings.gallery_draws, seed,
                                         settings.ks)
    marqo = captions.iloc[marqo_queries(captions.tolist(), settings.marqo_queries, seed)].tolist()
    return {"size": size, "items": int(pairs["item_id"].nunique()),
            "unique_captions": unique,
            "marqo_queries": min(settings.marqo_queries, unique),
            "small_gallery_size": small, "small_gallery_draws": settings.gallery_draws,
            **{f"chance_recall_at_{k}": min(1.0, k / size) for k in settings.ks},
            **{f"i2t_chance_recall_at_{k}": min(1.0, k / unique) for k in settings.ks},
            **{f"small_gallery_chance_recall_at_{k}": min(1.0, k / small) for k in settings.ks},
            **{f"small_gallery_i2t_chance_recall_at_{k}": small_i2t[k] for k in settings.ks},
            **{f"ceiling_t2i_recall_at_{k}": strict_t2i_ceiling(captions, k) for k in settings.ks},
            # image to text ranks the distinct captions: each image's own caption is one entry, first for a
            # perfect ranker, and no two query images share a ranking
            **{f"ceiling_i2t_recall_at_{k}": 1.0 for k in settings.ks},
            **{f"item_ceiling_t2i_recall_at_{k}": item_t2i_ceiling(captions, pairs["item_id"], k)
               for k in settings.ks},
            **{f"item_ceiling_i2t_recall_at_{k}": item_i2t_ceiling(captions, pairs["item_id"], k)
               for k in settings.ks},
            **{f"marqo_ceiling_recall_at_{k}": marqo_ceiling(captions, marqo, k) for k in MARQO_KS},
            **{f"item_chance_t2i_recall_at_{k}": item_t2i_chance(pairs["item_id"], k) for k in settings.ks},
            **{f"small_gallery_ceiling_t2i_recall_at_{k}": value for k, value in small_gallery_t2i_ceiling(
                captions.tolist(), settings.gallery_size, settings.gallery_draws, seed, settings.ks).items()},
            # image to text ranks the gallery's distinct captions: each image's own is first for a perfect ranker
            **{f"small_gallery_ceiling_i2t_recall_at_{k}": 1.0 for k in settings.ks},
            **{f"marqo_chance_recall_at_{k}": min(1.0, k / size) for k in MARQO_KS},
            f"marqo_chance_mrr_at_{MARQO_MRR_CUTOFF}": marqo_chance_mrr(captions, marqo, MARQO_MRR_CUTOFF)}
