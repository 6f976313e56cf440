"""The DeepFashion-MultiModal on-disk layout, shared by every data source.

Whatever the source (synthetic, the official download, a local folder), it ends in::

    data/raw/images/<name>.jpg
    data/raw/captions.json                       file name -> caption
    data/raw/labels/shape/shape_anno_all.txt     optional
    data/raw/labels/texture/fabric_ann.txt       optional
    data/raw/labels/texture/pattern_ann.txt      optional
    data/raw/labels/garments/garment_ann.txt     optional, synthetic source only: garment colours, skirt or not

so that later stages never know which source ran.
"""

from __future__ import annotations

import re
from pathlib import Path

IMAGES_DIR = "images"
CAPTIONS_FILE = "captions.json"
SHAPE_FILE = "labels/shape/shape_anno_all.txt"
FABRIC_FILE = "labels/texture/fabric_ann.txt"
PATTERN_FILE = "labels/texture/pattern_ann.txt"
# Not in the real set: the synthetic source knows each garment's colour and whether the lower garment is
# a skirt, and writes them in the label files' format.
GARMENT_FILE = "labels/garments/garment_ann.txt"

VIEWS = ("front", "side", "back", "full", "additional")

# WOMEN-Dresses-id_00000002-02_1_front.jpg -> item WOMEN-Dresses-id_00000002
_IMAGE_NAME = re.compile(
    r"^(?P<item>(?:MEN|WOMEN)-[A-Za-z_]+-id_\d{8})-(?P<outfit>\d{2})_(?P<k>\d+)_(?P<view>[a-z]+)\.jpg$"
)


def item_id_from_image_name(name: str) -> str:
    """The product an image shows; all its views share it, so the split groups on it.

    Names that do not follow the DeepFashion pattern are their own item (the file stem),
    which is the safe choice for grouping: such an image never shares a group by accident.
    """
    match = _IMAGE_NAME.match(name)
    return match.group("item") if match else Path(name).stem


def image_name(gender: str, category: str, item_number: int, outfit: int, k: int, view: str) -> str:
    """Compose a file name in the real set's pattern."""
    if view not in VIEWS:
        raise ValueError(f"unknown view {view!r}; expected one of {VIEWS}")
    return f"{gender}-{category}-id_{item_number:08d}-{outfit:02d}_{k}_{view}.jpg"
