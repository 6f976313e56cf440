"""The image cache returns exactly what decoding the images would, in the caller's order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fashion_search.data.synthetic import generate_synthetic
from fashion_search.image_cache import build_cache, open_cache
from fashion_search.images import PixelSpec, load_pixels

SPEC = PixelSpec(24, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))


@pytest.fixture(scope="module")
def images(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    root = tmp_path_factory.mktemp("raw")
    generate_synthetic(root, n_items=3, seed=5, image_size=(48, 72))
    return root / "images", sorted(p.name for p in (root / "images").iterdir())


def test_cached_pixels_equal_decoded_pixels_in_any_order(images: tuple[Path, list[str]], tmp_path: Path) -> None:
    directory, names = images
    build_cache(names, directory, SPEC.size, "pad", tmp_path / "cache")
    wanted = list(reversed(names))[::2] + names[:1]
    view = open_cache(tmp_path / "cache", wanted, SPEC, "pad")
    decoded = load_pixels([directory / n for n in wanted], SPEC, "pad")
    assert len(view) == len(wanted)
    assert torch.equal(view[0:len(wanted)], decoded)
    index = torch.tensor([2, 0, 1])
    assert torch.equal(view[index], decoded[index])


def test_a_cache_for_another_size_or_fit_is_refused(images: tuple[Path, list[str]], tmp_path: Path) -> None:
    directory, names = images
    build_cache(names, directory, SPEC.size, "crop", tmp_path / "cache")
    with pytest.raises(ValueError, match="rerun the cache_images stage"):
        open_cache(tmp_path / "cache", names, SPEC, "pad")
    with pytest.raises(ValueError, match="not in"):
        open_cache(tmp_path / "cache", ["WOMEN-Dresses-id_99999999-01_1_front.jpg"], SPEC, "crop")
