"""Item level: did the shopper find the product? Any view of the query's item is a hit.

Strict Recall@K counts the front view as a miss when the caption was written for
the back view; a shopper would be happy with either. t2i: the relevant images are
all views of the query caption's item; i2t: the relevant captions are those of
the query image's item.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from fashion_search.evaluate.retrieval import DIRECTIONS, Retriever


def group_codes(values: Sequence[str]) -> torch.Tensor:
    """Equal strings -> equal integer ids, the form the chunked ranking compares."""
    codes, _ = pd.factorize(pd.Series(list(values)), sort=True)
    return torch.as_tensor(codes, dtype=torch.long)


def item_groups(item_ids: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
    """(image groups, text groups): a pair's image and caption both belong to its item."""
    items = group_codes(item_ids)
    return items, items


def item_ranks(images: torch.Tensor, texts: torch.Tensor, item_ids: Sequence[str],
               retriever: Retriever) -> dict[str, torch.Tensor]:
    """Rank of the best-ranked relevant entry, per pair, both directions; row i of both is pair i."""
    groups = item_groups(item_ids)
    return {direction: retriever.rank(direction, images, texts, *groups).first for direction in DIRECTIONS}
