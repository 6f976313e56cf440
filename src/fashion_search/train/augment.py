"""Image augmentation for contrastive training: what a picture can vary by without changing what it shows.

A CLIP trained from scratch on the 1,761 training images of the default run learns those
pictures rather than garments: told every label, its vision tower is right about 96% of the time
on them and about half as often on unseen products (bench/attribute_probe.py). With
`augment: flip_crop` each training batch is shown

- mirrored left to right with probability one half: no attribute here has a side;
- through a random crop of `CROP_AREA`..1 of the picture's area, aspect ratio within
  `CROP_ASPECT`, resized back to the model's size: the figure moves and changes scale a little.

Colour is never jittered: it is an attribute shoppers ask for. The crop keeps at least 85%
of the area, so a hat or the hem of a long skirt rarely leaves the picture. On the default data it
narrows the gap by lowering the accuracy on the training pictures, not by raising it on unseen ones,
and it lowered validation shopper precision (bench/RESULTS.md), so the default is `none`; it is here
for larger data and longer runs, to be chosen on validation.

Decisions are drawn from a generator seeded by the global seed and the batch's own indices,
so a rerun (and a resumed run, and a batch made by a prefetching thread) sees the same pictures.
"""

from __future__ import annotations

import zlib

import torch
import torch.nn.functional as F

CROP_AREA = 0.85
CROP_ASPECT = (3 / 4, 4 / 3)


def batch_generator(seed: int, index: torch.Tensor) -> torch.Generator:
    """A generator for one batch: the same batch of the same run always draws the same augmentation."""
    # (the CPU generator keeps 32 bits of its seed: the seed and the indices are hashed together)
    digest = zlib.crc32(index.to(torch.int64).numpy().tobytes(), zlib.crc32(seed.to_bytes(8, "little", signed=True)))
    return torch.Generator().manual_seed(digest)


def crop_boxes(n: int, generator: torch.Generator) -> torch.Tensor:
    """(n, 4) boxes as (centre x, centre y, half width, half height) in [-1, 1] image coordinates."""
    area = CROP_AREA + (1 - CROP_AREA) * torch.rand(n, generator=generator, dtype=torch.float64)
    low, high = torch.log(torch.tensor(CROP_ASPECT, dtype=torch.float64))
    aspect = torch.exp(low + (high - low) * torch.rand(n, generator=generator, dtype=torch.float64))
    width = torch.sqrt(area * aspect).clamp(max=1.0)
    height = torch.sqrt(area / aspect).clamp(max=1.0)
    # the centre moves so that the box stays inside the picture
    cx = (1 - width) * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    cy = (1 - height) * (2 * torch.rand(n, generator=generator, dtype=torch.float64) - 1)
    return torch.stack([cx, cy, width, height], dim=1)


def augment(pixels: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Normalised float (N, 3, S, S) pictures, mirrored and cropped per image (same shape and device)."""
    n = pixels.shape[0]
    flip = torch.rand(n, generator=generator) < 0.5
    boxes = crop_boxes(n, generator)
    theta = torch.zeros(n, 2, 3, dtype=torch.float64)
    theta[:, 0, 0] = boxes[:, 2] * torch.where(flip, -1.0, 1.0).double()
    theta[:, 0, 2] = boxes[:, 0]
    theta[:, 1, 1] = boxes[:, 3]
    theta[:, 1, 2] = boxes[:, 1]
    theta = theta.to(device=pixels.device, dtype=pixels.dtype)
    grid = F.affine_grid(theta, list(pixels.shape), align_corners=False)
    return F.grid_sample(pixels, grid, mode="bilinear", padding_mode="border", align_corners=False)
