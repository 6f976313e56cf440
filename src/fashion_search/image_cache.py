"""Images decoded, fitted and resized once, kept as one uint8 array that DVC tracks.

Decoding a 750×1101 JPEG costs far more than a training step needs; every
epoch, every model in evaluation and the search index read this cache instead.
The array is memory-mapped, so a stage touches only the rows it uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from tqdm.auto import tqdm

from fashion_search.errors import DataError
from fashion_search.images import UNREADABLE, ImageFiles, PixelSpec, fit_image, open_image

PIXELS_FILE = "pixels.npy"
NAMES_FILE = "images.parquet"
INFO_FILE = "cache.json"


def build_cache(names: Sequence[str], images_dir: Path, size: int, fit: str, out: Path) -> None:
    """Write (N, 3, size, size) uint8 pixels, the image names in row order, and how they were made."""
    out.mkdir(parents=True, exist_ok=True)
    pixels = np.lib.format.open_memmap(out / PIXELS_FILE, mode="w+", dtype=np.uint8,
                                       shape=(len(names), 3, size, size))
    for row, name in enumerate(tqdm(names, desc="cache images", unit="img", mininterval=1.0, disable=None)):
        pixels[row] = np.asarray(fit_image(read_paired_image(images_dir / name), size, fit)).transpose(2, 0, 1)
    pixels.flush()
    del pixels
    pd.DataFrame({"image": list(names)}).to_parquet(out / NAMES_FILE, index=False)
    (out / INFO_FILE).write_text(json.dumps({"size": size, "fit": fit, "images": len(names)}), encoding="utf-8")


def read_paired_image(path: Path):
    """An image the tokenize stage paired; one that no longer decodes (or is now too large) means
    data/raw changed underneath: one line naming the file and the stage to rerun."""
    try:
        return open_image(path)
    except UNREADABLE as error:
        raise DataError(f"cannot read image {path}: {error}; rerun the pipeline from the tokenize stage "
                         "(dvc repro -f -s tokenize, then dvc repro)") from error


class PixelView:
    """The cached pixels of some images, in the caller's order; indexing returns uint8 tensors."""

    def __init__(self, pixels: np.ndarray, rows: np.ndarray) -> None:
        self._pixels, self._rows = pixels, rows

    def __len__(self) -> int:
        return len(self._rows)

    def __getitem__(self, index: torch.Tensor | slice) -> torch.Tensor:
        rows = self._rows[index] if isinstance(index, slice) else self._rows[np.asarray(index)]
        # Sorted reads are sequential on disk; the inverse permutation restores the caller's order.
        order = np.argsort(rows, kind="stable")
        batch = np.empty((len(rows), *self._pixels.shape[1:]), dtype=np.uint8)
        batch[order] = self._pixels[rows[order]]
        return torch.from_numpy(batch)


Pixels = torch.Tensor | PixelView | ImageFiles  # uint8 (N, 3, S, S): decoded in memory, rows of the cache, or files
                                                # decoded a slice at a time (embedding only)


def open_cache(directory: Path, names: Sequence[str], spec: PixelSpec, fit: str) -> PixelView:
    """The cached pixels of `names`; refuses a cache made for another size or fit."""
    info = json.loads((directory / INFO_FILE).read_text(encoding="utf-8"))
    if info["size"] != spec.size or info["fit"] != fit:
        raise DataError(f"{directory} holds {info['size']}px '{info['fit']}' images but the model needs "
                        f"{spec.size}px '{fit}'; rerun the cache_images stage (dvc repro)")
    row_of = {name: row for row, name in enumerate(pd.read_parquet(directory / NAMES_FILE)["image"])}
    missing = [name for name in names if name not in row_of]
    if missing:
        raise DataError(f"{len(missing)} images (e.g. {missing[0]}) are not in {directory}; "
                        "rerun the cache_images stage (dvc repro)")
    pixels = np.load(directory / PIXELS_FILE, mmap_mode="r")
    return PixelView(pixels, np.fromiter((row_of[n] for n in names), dtype=np.int64, count=len(names)))
