"""Recall within small random galleries, as in the report's batches of 32.

The report saw Recall@5 of 0.59 within batches of 32 and far less over the whole
test set; the same model on the same data, the gallery size is the difference.
Each draw shuffles the test pairs (seeded) and cuts them into galleries of
`size` pairs; each caption is ranked against its gallery's images and each image
against its gallery's distinct captions (the strict protocol, evaluate/strict.py).
Pairs left over after the last full gallery sit out that draw.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator, Sequence

import torch

from fashion_search.evaluate.retrieval import DIRECTIONS, Retriever
from fashion_search.evaluate.strict import strict_ranks


def small_galleries(n_pairs: int, size: int, draws: int, seed: int) -> Iterator[torch.Tensor]:
    """The members of each random gallery, draw after draw; a set smaller than `size` is one gallery."""
    size = min(size, n_pairs)
    generator = torch.Generator().manual_seed(seed)
    for _ in range(draws):
        order = torch.randperm(n_pairs, generator=generator)
        for start in range(0, len(order) - size + 1, size):
            yield order[start:start + size]


def small_gallery_ranks(images: torch.Tensor, texts: torch.Tensor, captions: Sequence[str], size: int, draws: int,
                        seed: int, retriever: Retriever) -> dict[str, torch.Tensor]:
    """Strict ranks within each random gallery, all draws concatenated."""
    parts: dict[str, list[torch.Tensor]] = {direction: [] for direction in DIRECTIONS}
    for members in small_galleries(len(images), size, draws, seed):
        gallery_captions = [captions[i] for i in members.tolist()]
        for direction, ranks in strict_ranks(images[members], texts[members], gallery_captions, retriever).items():
            parts[direction].append(ranks)
    return {direction: torch.cat(ranks) for direction, ranks in parts.items()}


def small_gallery_i2t_chance(captions: Sequence[str], size: int, draws: int, seed: int,
                             ks: Iterable[int]) -> dict[int, float]:
    """What a random order scores image to text within the same galleries: each image query has k chances
    among its gallery's distinct captions, fewer than `size` when views of one product meet."""
    shares: dict[int, list[float]] = {k: [] for k in ks}
    for members in small_galleries(len(captions), size, draws, seed):
        distinct = len({captions[i] for i in members.tolist()})
        for k, values in shares.items():
            values += [min(1.0, k / distinct)] * len(members)
    return {k: sum(values) / len(values) for k, values in shares.items()}


def small_gallery_t2i_ceiling(captions: Sequence[str], size: int, draws: int, seed: int,
                              ks: Iterable[int]) -> dict[int, float]:
    """What a perfect ranker reaches text to image within the same galleries: the captions a gallery's
    views share get one ranking (evaluate/ceiling.py), so only min(k, n) of their n images can be hits."""
    shares: dict[int, list[float]] = {k: [] for k in ks}
    for members in small_galleries(len(captions), size, draws, seed):
        counts = Counter(captions[i] for i in members.tolist())
        for k, values in shares.items():
            values.append(sum(min(k, n) for n in counts.values()) / len(members))
    return {k: sum(values) / len(values) for k, values in shares.items()}  # every gallery has `size` members


def gallery_key(size: int) -> str:
    """The metrics key of the small-gallery measure: gallery_32 for the report's batch size."""
    return f"gallery_{size}"
