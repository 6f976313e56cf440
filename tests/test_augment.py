"""Training augmentation: mirrored and cropped pictures, never recoloured, the same for the same batch."""

from __future__ import annotations

import torch

from fashion_search.train import augment as augment_module
from fashion_search.train.augment import CROP_AREA, augment, batch_generator, crop_boxes


def pictures(n: int = 6, size: int = 16) -> torch.Tensor:
    return torch.rand(n, 3, size, size, generator=torch.Generator().manual_seed(1))


def test_the_same_batch_draws_the_same_augmentation_and_another_batch_another() -> None:
    x = pictures()
    one = augment(x, batch_generator(42, torch.tensor([3, 1, 4, 1, 5, 9])))
    again = augment(x, batch_generator(42, torch.tensor([3, 1, 4, 1, 5, 9])))
    other = augment(x, batch_generator(42, torch.tensor([2, 7, 1, 8, 2, 8])))
    other_seed = augment(x, batch_generator(7, torch.tensor([3, 1, 4, 1, 5, 9])))
    assert torch.equal(one, again)
    assert not torch.equal(one, other) and not torch.equal(one, other_seed)
    assert one.shape == x.shape and one.dtype == x.dtype


def test_boxes_stay_inside_the_picture_and_keep_most_of_it() -> None:
    boxes = crop_boxes(10_000, torch.Generator().manual_seed(0))
    cx, cy, half_w, half_h = boxes.T
    assert ((cx - half_w) >= -1 - 1e-9).all() and ((cx + half_w) <= 1 + 1e-9).all()
    assert ((cy - half_h) >= -1 - 1e-9).all() and ((cy + half_h) <= 1 + 1e-9).all()
    # the area is CROP_AREA..1 except where the aspect ratio clamps one side at the picture's edge
    assert (half_w * half_h >= CROP_AREA * 0.75).all() and (half_w * half_h <= 1 + 1e-9).all()
    assert (half_w * half_h).mean() > CROP_AREA


def test_with_the_whole_picture_kept_each_picture_is_itself_or_its_mirror(monkeypatch) -> None:
    """With crops of the full area at aspect 1 only the flip is left: `augment` returns each picture
    unchanged or mirrored left to right, and both happen."""
    monkeypatch.setattr(augment_module, "CROP_AREA", 1.0)
    monkeypatch.setattr(augment_module, "CROP_ASPECT", (1.0, 1.0))
    x = pictures(64)
    out = augment(x, batch_generator(42, torch.arange(64)))
    same = [torch.allclose(o, p, atol=1e-5) for o, p in zip(out, x)]
    mirrored = [torch.allclose(o, p.flip(-1), atol=1e-5) for o, p in zip(out, x)]
    assert all(a != b for a, b in zip(same, mirrored))
    assert any(same) and any(mirrored)


def test_colours_are_never_changed() -> None:
    """A picture of one colour stays exactly that colour: only geometry is augmented."""
    x = torch.ones(8, 3, 16, 16) * torch.tensor([0.2, -1.0, 1.5]).view(1, 3, 1, 1)
    out = augment(x, batch_generator(42, torch.arange(8)))
    assert torch.allclose(out, x, atol=1e-6)


def test_about_half_the_pictures_are_mirrored() -> None:
    """A left-dark, right-light picture: mirrored ones are light on the left."""
    x = torch.zeros(2000, 1, 8, 8)
    x[..., 4:] = 1.0
    out = augment(x, batch_generator(42, torch.arange(2000)))
    mirrored = (out[..., :2].mean(dim=(1, 2, 3)) > out[..., -2:].mean(dim=(1, 2, 3)))
    assert 0.45 < mirrored.float().mean() < 0.55
