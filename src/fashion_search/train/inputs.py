"""Training and evaluation inputs from a pairs file: pixels decoded once, token ids as lists."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from fashion_search.data.layout import IMAGES_DIR
from fashion_search.image_cache import PixelView, open_cache
from fashion_search.images import PixelSpec, load_pixels


def pair_pixels(pairs: pd.DataFrame, raw: Path, spec: PixelSpec, fit: str,
                cache: Path | None = None) -> torch.Tensor | PixelView:
    """uint8 (N, 3, S, S) for the pairs' images, fitted as `image.fit` says: read from the
    cache_images stage's output when given, else decoded from data/raw."""
    if cache is not None:
        return open_cache(cache, pairs["image"].tolist(), spec, fit)
    return load_pixels([raw / IMAGES_DIR / name for name in pairs["image"]], spec, fit)


def pair_token_ids(pairs: pd.DataFrame) -> list[list[int]]:
    """The truncated token ids written by the tokenize stage."""
    return [list(map(int, ids)) for ids in pairs["input_ids"]]


def pair_segments(pairs: pd.DataFrame) -> list[list[list[int]]]:
    """Each caption's token id pieces (one piece unless `text.long_text: segment` split it)."""
    return [[list(map(int, piece)) for piece in segments] for segments in pairs["segments"]]
