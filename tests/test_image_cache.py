"""The image cache returns exactly what decoding the images would, in the caller's order."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
from PIL import Image
from bad_images import decompression_bomb_png

from fashion_search.data.synthetic import generate_synthetic
from fashion_search.image_cache import build_cache, open_cache
from fashion_search.images import MAX_IMAGE_PIXELS, ImageTooLargeError, PixelSpec, is_readable, load_pixels, open_image

SPEC = PixelSpec(24, (0.5, 0.5, 0.5), (0.5, 0.5, 0.5))
BOMB = "WOMEN-Dresses-id_99999997-01_1_front.png"


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


@pytest.fixture()
def bomb(images: tuple[Path, list[str]], tmp_path: Path) -> tuple[Path, list[str]]:
    """The synthetic images and a 66-byte PNG declaring 50000×50000 pixels among them."""
    directory, names = images
    shutil.copytree(directory, tmp_path / "images")
    (tmp_path / "images" / BOMB).write_bytes(decompression_bomb_png())
    return tmp_path / "images", sorted([*names, BOMB])


def test_a_decompression_bomb_is_unreadable_for_every_reader(bomb: tuple[Path, list[str]], tmp_path: Path) -> None:
    """One decode guard: tokenize's check counts it, the cache and direct decoding refuse it in one line."""
    directory, names = bomb
    assert not is_readable(directory / BOMB)
    assert all(is_readable(directory / name) for name in names if name != BOMB)
    with pytest.raises(ImageTooLargeError, match="declares more than"):
        open_image(directory / BOMB)
    with pytest.raises(ValueError, match=f"cannot read image .*{BOMB}.*rerun the pipeline from the tokenize stage"):
        build_cache(names, directory, SPEC.size, "pad", tmp_path / "cache")
    with pytest.raises(ValueError, match=f"cannot read image .*{BOMB}"):
        load_pixels([directory / BOMB], SPEC, "pad")


def test_an_image_just_over_the_pixel_limit_is_refused_before_decoding(tmp_path: Path) -> None:
    """Above MAX_IMAGE_PIXELS but under PIL's own bomb threshold: the guard, not PIL, refuses it."""
    path = tmp_path / "wide.png"
    path.write_bytes(decompression_bomb_png(MAX_IMAGE_PIXELS // 1000 + 1, 1000))
    assert not is_readable(path)


def test_an_image_pil_warns_about_is_refused_by_the_guard_alone(tmp_path: Path,
                                                                  recwarn: pytest.WarningsRecorder) -> None:
    """Between PIL's warning (89 M pixels) and its refusal (179 M): no DecompressionBombWarning on stderr
    before the guard's own message."""
    width, height = 100_000, 1_000
    assert Image.MAX_IMAGE_PIXELS < width * height < 2 * Image.MAX_IMAGE_PIXELS
    path = tmp_path / "huge.png"
    path.write_bytes(decompression_bomb_png(width, height))
    with pytest.raises(ImageTooLargeError, match="declares more than"):
        open_image(path)
    assert not is_readable(path)
    assert [str(warning.message) for warning in recwarn] == []
