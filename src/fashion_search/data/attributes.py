"""What each image shows, as named attributes bound to the garment that carries them.

Read from what the data actually has: gender and category from the file name (every
source, the Hub mirror included), sleeve and lower length, fabric and pattern per
garment and the accessories from the label files (the official set and the synthetic
one), and garment colours only where the source knows them (the synthetic source's
colour file; DeepFashion-MultiModal has no colour labels). An attribute the data does
not carry is None, never guessed: a protocol built on this table offers only the
attributes its source has.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from fashion_search.data.labels import (
    COLOUR,
    FABRIC,
    GARMENTS,
    GLASSES,
    HAT,
    LOWER_LENGTH,
    PATTERN,
    SLEEVE_LENGTH,
    read_colours,
    read_labels,
)

# The garment attributes, each bound to one garment (upper, lower, outer).
GARMENT_KINDS = ("colour", "pattern", "fabric")
COLUMNS = (
    "gender", "category", "sleeve", "lower_length", "hat", "glasses",
    *(f"{garment}_{kind}" for garment in GARMENTS for kind in GARMENT_KINDS),
)  # fmt: skip
# Codes that say nothing about what is shown: the column stays None for them.
_UNINFORMATIVE = {"NA", "other", "not long-sleeve", "have a glasses in hand or clothes"}

# The garment a shopper names and the products it stands for: noun -> (categories, the garment its
# modifiers are bound to, lower lengths required of some categories). Denim products are jeans or
# shorts by their length; a one-piece garment is labelled on its upper part. "top" is any upper-body
# product: the synthetic pictures draw a top's sleeves, neckline, fabric, pattern and colour, not
# whether the shop listed it as a blouse or a shirt, so the nouns stay at what a picture can show.
UPPER_CATEGORIES = ("Tees_Tanks", "Graphic_Tees", "Blouses_Shirts", "Shirts_Polos", "Sweaters",
                    "Sweatshirts_Hoodies")
NOUNS: dict[str, tuple[tuple[str, ...], str, dict[str, tuple[str, ...]]]] = {
    "dress": (("Dresses",), "one_piece", {}),
    "jumpsuit": (("Rompers_Jumpsuits",), "one_piece", {}),
    "skirt": (("Skirts",), "lower", {}),
    "shorts": (("Shorts", "Denim"), "lower", {"Denim": ("three-point", "medium short")}),
    "jeans": (("Denim",), "lower", {"Denim": ("three-quarter", "long")}),
    "trousers": (("Pants",), "lower", {}),
    "leggings": (("Leggings",), "lower", {}),
    "top": (UPPER_CATEGORIES, "upper", {}),
    "sweater": (("Sweaters",), "upper", {}),
    "cardigan": (("Cardigans",), "outer", {}),
    "jacket": (("Jackets_Coats", "Jackets_Vests"), "outer", {}),
}
PLURAL_NOUNS = {"shorts", "jeans", "trousers", "leggings"}
# Modifier kinds a garment takes, and the kinds that describe the whole image.
SLOT_KINDS = {
    "upper": ("colour", "pattern", "fabric", "sleeve"),
    "lower": ("colour", "pattern", "fabric", "length"),
    "outer": ("colour", "pattern", "fabric"),
    "one_piece": ("colour", "pattern", "fabric", "sleeve", "length"),
}
IMAGE_KINDS = ("gender", "hat", "glasses")


def column_of(slot: str, kind: str) -> str:
    """The attribute column a modifier of `kind` reads for a garment in `slot`."""
    if kind in GARMENT_KINDS:
        return f"{'upper' if slot == 'one_piece' else slot}_{kind}"
    return {"length": "lower_length"}.get(kind, kind)


def noun_mask(attributes: pd.DataFrame, noun: str) -> np.ndarray:
    """Images of a product the noun stands for."""
    categories, _, lengths = NOUNS[noun]
    mask = attributes["category"].isin(categories).to_numpy().copy()
    for category, allowed in lengths.items():
        mask &= ~((attributes["category"] == category) & ~attributes["lower_length"].isin(allowed)).to_numpy()
    return mask


def nouns_of(category: str | None, lower_length: str | None) -> list[str]:
    """Every noun a shopper could use for a product ("top" and "sweater" for a sweater)."""
    return [noun for noun, (categories, _, lengths) in NOUNS.items()
            if category in categories and (category not in lengths or lower_length in lengths[category])]


_NAME = re.compile(r"^(?P<gender>MEN|WOMEN)-(?P<category>[A-Za-z_]+)-id_\d{8}")


def _known(value: str) -> str | None:
    return None if value in _UNINFORMATIVE else value


def image_attributes(raw: Path, images: Sequence[str]) -> pd.DataFrame:
    """One row per image (in the order given), one column per attribute in COLUMNS; None where
    the source does not say."""
    labels = read_labels(raw).labels
    colours, _ = read_colours(raw)
    rows = []
    for name in images:
        row: dict[str, str | None] = dict.fromkeys(COLUMNS)
        match = _NAME.match(name)
        if match:
            row["gender"] = match.group("gender").lower()
            row["category"] = match.group("category")
        label = labels.get(name)
        if label is not None:
            row["sleeve"] = _known(SLEEVE_LENGTH[label.shape_code("sleeve_length")])
            row["lower_length"] = _known(LOWER_LENGTH[label.shape_code("lower_length")])
            row["hat"] = {"yes": "hat", "no": "no hat"}.get(HAT[label.shape_code("hat")])
            row["glasses"] = _known(GLASSES[label.shape_code("glasses")])
            if row["glasses"] == "no":
                row["glasses"] = "no glasses"
            for index, garment in enumerate(GARMENTS):
                row[f"{garment}_fabric"] = _known(FABRIC[label.fabric[index]])
                row[f"{garment}_pattern"] = _known(PATTERN[label.pattern[index]])
        colour = colours.get(name)
        if colour is not None:
            for index, garment in enumerate(GARMENTS):
                row[f"{garment}_colour"] = _known(COLOUR[colour[index]])
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS), index=range(len(rows)))


def available_columns(attributes: pd.DataFrame) -> list[str]:
    """The attributes the source carries: a column that is None for every image is absent."""
    return [column for column in attributes.columns if attributes[column].notna().any()]
