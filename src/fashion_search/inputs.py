"""Model inputs from a pairs file, for training, evaluation and the index: pixels and token id pieces."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from fashion_search.data.layout import IMAGES_DIR
from fashion_search.image_cache import Pixels, open_cache
from fashion_search.images import PixelSpec, load_pixels
from fashion_search.text import Segments


def pair_pixels(pairs: pd.DataFrame, raw: Path, spec: PixelSpec, fit: str, cache: Path | None = None) -> Pixels:
    """uint8 (N, 3, S, S) for the pairs' images, fitted as `image.fit` says: read from the
    cache_images stage's output when given, else decoded from data/raw."""
    if cache is not None:
        return open_cache(cache, pairs["image"].tolist(), spec, fit)
    return load_pixels([raw / IMAGES_DIR / name for name in pairs["image"]], spec, fit)


def pair_segments(pairs: pd.DataFrame) -> list[Segments]:
    """Each caption's token id pieces (one piece unless `text.long_text: segment` split it)."""
    return [[list(map(int, piece)) for piece in segments] for segments in pairs["segments"]]
