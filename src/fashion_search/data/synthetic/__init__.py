"""A synthetic stand-in for DeepFashion-MultiModal, written in the real set's layout.

It lets the whole pipeline run offline on a CPU. A small CLIP is trained on it from
scratch, so every labelled attribute is drawn large enough to survive the model's
64x64 input, and the captions are written from the same labels the pictures show.
Everything follows from the seed: each item has its own generator, derived from
(seed, item index), so no output depends on the order anything else was drawn in.

Three parts: looks.py samples what each item is (labels, colours, views), captions.py writes its
caption, drawing.py draws its pictures; this module puts them together and writes the files.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fashion_search.data.labels import COLOUR, FABRIC, LOWER_TYPE, ImageLabels, write_garments, write_labels
from fashion_search.data.layout import CAPTIONS_FILE, IMAGES_DIR, image_name
from fashion_search.data.synthetic.captions import write_caption
from fashion_search.data.synthetic.drawing import render_person
from fashion_search.data.synthetic.looks import CATEGORIES, Look, ViewParams, draw_look, draw_views

__all__ = ["Item", "Look", "SyntheticSummary", "ViewParams", "draw_items", "generate_synthetic", "render_person"]

# The real set numbers its views like this: ..._1_front.jpg, ..._7_additional.jpg.
_VIEW_NUMBER = {"front": 1, "side": 2, "back": 3, "full": 4, "additional": 7}


@dataclass(frozen=True)
class Item:
    """One product: one look shown in several views, all sharing the caption and labels."""

    gender: str
    category: str
    number: int
    outfit: int
    look: Look
    views: tuple[ViewParams, ...]
    caption: str

    def image_names(self) -> list[str]:
        return [
            image_name(self.gender, self.category, self.number, self.outfit, _VIEW_NUMBER[v.view], v.view)
            for v in self.views
        ]


@dataclass(frozen=True)
class SyntheticSummary:
    """What was written, for the stage's log and metrics."""

    n_items: int
    n_images: int
    n_captions: int


def draw_items(n_items: int, seed: int) -> list[Item]:
    """The dataset's items; item i depends only on (seed, i) and its unique item number."""
    if n_items > 80_000:
        raise ValueError("at most 80,000 items: item numbers are drawn from the real set's range")
    numbers = np.random.default_rng(seed).choice(80_000, size=n_items, replace=False) + 1
    return [_draw_item(np.random.default_rng([seed, index]), int(number)) for index, number in enumerate(numbers)]


def _draw_item(rng: np.random.Generator, number: int) -> Item:
    gender = "WOMEN" if rng.random() < 0.62 else "MEN"
    category = CATEGORIES[gender][int(rng.integers(len(CATEGORIES[gender])))]
    look = draw_look(gender, category, rng)
    return Item(
        gender=gender,
        category=category,
        number=number,
        outfit=int(rng.integers(1, 4)),
        look=look,
        views=draw_views(rng),
        caption=write_caption(category, look, rng),
    )


def garment_codes(look: Look) -> tuple[int, int, int, int]:
    """The primary colour of the upper, lower and outer garment (labels.COLOUR; NA: no outer), and
    whether the lower garment is a skirt (labels.LOWER_TYPE; NA for a dress or jumpsuit)."""
    outer = look.outer_colours[0] if look.labels.fabric[2] != FABRIC.index("NA") else "NA"
    colours = tuple(COLOUR.index(name) for name in (look.upper_colours[0], look.lower_colours[0], outer))
    lower = "NA" if look.one_piece else ("skirt" if look.skirt else "trousers")
    return (*colours, LOWER_TYPE.index(lower))


def generate_synthetic(
    root: Path, n_items: int, seed: int, image_size: tuple[int, int] = (128, 192), jpeg_quality: int = 90
) -> SyntheticSummary:
    """Write images, captions.json, the label files and the garment file (colours, skirt or not) under
    `root`; same seed, same bytes."""
    images_dir = root / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    captions: dict[str, str] = {}
    labels: dict[str, ImageLabels] = {}
    garments: dict[str, tuple[int, ...]] = {}
    items = draw_items(n_items, seed)
    for item in items:
        for view, name in zip(item.views, item.image_names()):
            render_person(item.look, view, image_size).save(images_dir / name, format="JPEG", quality=jpeg_quality)
            captions[name] = item.caption
            labels[name] = item.look.labels
            garments[name] = garment_codes(item.look)
    text = json.dumps(captions, sort_keys=True, ensure_ascii=False)
    (root / CAPTIONS_FILE).write_text(text, encoding="utf-8")
    write_labels(root, labels)
    write_garments(root, garments)
    return SyntheticSummary(n_items=len(items), n_images=len(captions), n_captions=len(captions))
