"""The report's protocol: one query per test caption, the hit is its own image (and back).

Text to image ranks every test image; the hit is the caption's own image. Image to
text ranks the unique caption texts: the views of a product share one caption, and
identical captions embed identically, so ranking one caption per pair would tie the
right caption with its copies and put it below them (ties count against the query):
Recall@1 would be 0 by construction. Each distinct caption string is one gallery
entry, and the hit is the query image's own caption string.
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd
import torch

from fashion_search.evaluate.item import group_codes
from fashion_search.evaluate.retrieval import Retriever


def unique_caption_rows(captions: Sequence[str]) -> torch.Tensor:
    """Row of the first pair of each distinct caption, in caption order: the image-to-text gallery."""
    return torch.tensor(pd.Series(list(captions)).drop_duplicates().sort_values().index.to_numpy(),
                        dtype=torch.long)


def strict_t2i_groups(n_pairs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(image groups, text groups): each pair is its own group, so only its own image is relevant."""
    own = torch.arange(n_pairs)
    return own, own


def strict_i2t_ranks(images: torch.Tensor, texts: torch.Tensor, captions: Sequence[str],
                     retriever: Retriever) -> torch.Tensor:
    """Rank of each image's own caption string among the distinct captions; row i of both is pair i."""
    codes = group_codes(captions)
    rows = unique_caption_rows(captions)
    return retriever.rank("i2t", images, texts[rows], codes, codes[rows]).first


def strict_ranks(images: torch.Tensor, texts: torch.Tensor, captions: Sequence[str],
                 retriever: Retriever) -> dict[str, torch.Tensor]:
    """Rank of each pair's own image (t2i) and own caption string (i2t); row i of both is pair i."""
    return {"t2i": retriever.rank("t2i", images, texts, *strict_t2i_groups(len(images))).first,
            "i2t": strict_i2t_ranks(images, texts, captions, retriever)}
