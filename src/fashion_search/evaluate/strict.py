"""The report's protocol: one query per test caption, the hit is its own image (and back)."""

from __future__ import annotations

import torch

from fashion_search.evaluate.retrieval import DIRECTIONS, Retriever


def strict_groups(n_pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image groups, text groups): each pair is its own group, so only its own image or caption is relevant."""
    own = torch.arange(n_pairs)
    return own, own


def strict_ranks(images: torch.Tensor, texts: torch.Tensor, retriever: Retriever) -> dict[str, torch.Tensor]:
    """Rank of each pair's own image (t2i) and own caption (i2t); row i of both is pair i."""
    groups = strict_groups(len(images))
    return {direction: retriever.rank(direction, images, texts, *groups).first for direction in DIRECTIONS}
