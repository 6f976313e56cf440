"""Decode, fit and resize images once into a uint8 tensor that training and evaluation reuse.

DeepFashion-MultiModal pictures are full-body portraits; CLIP's centre crop of a
portrait cuts off the head and the feet (hats, shoes, trouser length), so
`image.fit: pad` pads to a square first. The resize and crop follow the model's
own image processor settings, so a pretrained CLIP sees what it was trained on.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import numpy as np
import torch
from PIL import Image, ImageOps, UnidentifiedImageError
from tqdm.auto import tqdm

from fashion_search.errors import DataError

PAD_COLOUR = (255, 255, 255)  # studio backgrounds in DeepFashion are light
# The decode guard: a few bytes of PNG can declare 50000×50000 pixels (7.5 GB decoded). Fifty
# megapixels is over 60 times a DeepFashion picture (750×1101) and a large phone photo.
MAX_IMAGE_PIXELS = 50_000_000
UNREADABLE = (OSError, UnidentifiedImageError, ValueError, Image.DecompressionBombError)


class ImageTooLargeError(ValueError):
    """An image declaring more pixels than MAX_IMAGE_PIXELS (a decompression bomb, or simply too big)."""


def open_image(path: Path | BinaryIO, name: str | None = None) -> Image.Image:
    """Decode an image fully, refusing one that declares more than MAX_IMAGE_PIXELS before decoding it.

    The only way this project decodes an image (tokenize's check, the cache, evaluation, grids, a
    shopper's uploaded photo, given as a file object that never touches the disk): one guard for all
    of them. `name` says what the image is in messages (default: the path). Raises one of UNREADABLE."""
    too_large = ImageTooLargeError(f"{name or path} declares more than {MAX_IMAGE_PIXELS:,} pixels "
                                   "(a decompression bomb, or a picture far too large)")
    try:
        with warnings.catch_warnings():
            # Past 89 M pixels PIL warns on stderr before the guard below refuses the image: the guard decides.
            # (The filters are the process's: decoding in threads at worst leaves this one warning ignored.)
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            opened = Image.open(path)  # reads the header only
        with opened as image:
            width, height = image.size
            if width * height > MAX_IMAGE_PIXELS:  # under PIL's own limits (89 M warns, 179 M refuses)
                raise too_large
            image.load()
            return image
    except Image.DecompressionBombError:  # PIL refuses in Image.open past 179 M pixels
        raise too_large from None


@dataclass(frozen=True)
class PixelSpec:
    """What a model's image processor asks for: square size, and normalisation."""

    size: int
    mean: tuple[float, float, float]
    std: tuple[float, float, float]

    @classmethod
    def from_processor(cls, processor) -> "PixelSpec":
        crop = getattr(processor, "crop_size", None)
        size = crop.height if crop is not None and crop.height else processor.size.shortest_edge
        return cls(int(size), tuple(processor.image_mean), tuple(processor.image_std))

    def normalise(self, pixels: torch.Tensor) -> torch.Tensor:
        """uint8 (N, 3, S, S) -> the float input CLIP expects.

        In place on one float copy: one large allocation per batch instead of four, which cost a
        few percent of a small model's step (bench/RESULTS.md, embedding throughput)."""
        mean = torch.tensor(self.mean, device=pixels.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=pixels.device).view(1, 3, 1, 1)
        return pixels.to(torch.float32, copy=True).div_(255.0).sub_(mean).div_(std)


def fit_image(image: Image.Image, size: int, fit: str) -> Image.Image:
    """Square `size`×`size` RGB: padded (whole figure kept) or centre-cropped (CLIP's default)."""
    image = image.convert("RGB")
    if fit == "pad":
        return ImageOps.pad(image, (size, size), method=Image.Resampling.BICUBIC, color=PAD_COLOUR)
    return ImageOps.fit(image, (size, size), method=Image.Resampling.BICUBIC)


def load_pixels(paths: Sequence[Path], spec: PixelSpec, fit: str, progress: bool = True) -> torch.Tensor:
    """All images as uint8 (N, 3, S, S), with a progress bar on a terminal unless `progress` is False.
    The tokenize stage already dropped unreadable images (and counted them), so one failing here means
    the data changed underneath."""
    pixels = np.zeros((len(paths), spec.size, spec.size, 3), dtype=np.uint8)
    bar = tqdm(paths, desc="images", unit="img", mininterval=1.0, disable=None if progress else True)
    for i, path in enumerate(bar):
        try:
            pixels[i] = np.asarray(fit_image(open_image(path), spec.size, fit))
        except UNREADABLE as error:
            raise DataError(f"cannot read image {path}: {error}; rerun the pipeline from the tokenize stage "
                            "(dvc repro -f -s tokenize, then dvc repro)") from error
    return torch.from_numpy(pixels).permute(0, 3, 1, 2).contiguous()


class ImageFiles:
    """Image files read as pixels (uint8 (N, 3, S, S), as `load_pixels`) a slice at a time, decoded when read:
    a set too large to hold as pixels (the full 42,537 images) is embedded batch by batch. One progress bar
    on a terminal counts them all."""

    def __init__(self, paths: Sequence[Path], spec: PixelSpec, fit: str) -> None:
        self._paths, self._spec, self._fit = list(paths), spec, fit
        self._bar = tqdm(total=len(self._paths), desc="images", unit="img", mininterval=1.0, disable=None)

    def __len__(self) -> int:
        return len(self._paths)

    def __getitem__(self, rows: slice) -> torch.Tensor:
        paths = self._paths[rows]
        pixels = load_pixels(paths, self._spec, self._fit, progress=False)
        self._bar.update(len(paths))
        if self._bar.n >= len(self._paths):
            self._bar.close()
        return pixels


def is_readable(path: Path) -> bool:
    """Whether the image decodes fully (a truncated JPEG passes Image.open but not load)."""
    try:
        open_image(path)
        return True
    except UNREADABLE:
        return False
