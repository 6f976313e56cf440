"""Recall within small random galleries, as in the report's batches of 32.

The report saw Recall@5 of 0.59 within batches of 32 and far less over the whole
test set; the same model on the same data, the gallery size is the difference.
Each draw shuffles the test pairs (seeded) and cuts them into galleries of
`size` pairs; each caption is ranked against its gallery's images and back.
Pairs left over after the last full gallery sit out that draw.
"""

from __future__ import annotations

import torch

from fashion_search.evaluate.retrieval import DIRECTIONS, Retriever
from fashion_search.evaluate.strict import strict_ranks


def small_gallery_ranks(images: torch.Tensor, texts: torch.Tensor, size: int, draws: int, seed: int,
                        retriever: Retriever) -> dict[str, torch.Tensor]:
    """Strict ranks within each random gallery, all draws concatenated; a set smaller than `size` is one gallery."""
    size = min(size, len(images))
    generator = torch.Generator().manual_seed(seed)
    parts: dict[str, list[torch.Tensor]] = {direction: [] for direction in DIRECTIONS}
    for _ in range(draws):
        order = torch.randperm(len(images), generator=generator)
        for start in range(0, len(order) - size + 1, size):
            members = order[start:start + size]
            for direction, ranks in strict_ranks(images[members], texts[members], retriever).items():
                parts[direction].append(ranks)
    return {direction: torch.cat(ranks) for direction, ranks in parts.items()}


def gallery_key(size: int) -> str:
    """The metrics key of the small-gallery measure: gallery_32 for the report's batch size."""
    return f"gallery_{size}"
