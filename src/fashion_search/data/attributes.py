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
    LOWER_TYPE,
    read_garments,
    read_labels,
)

# The garment attributes, each bound to one garment (upper, lower, outer).
GARMENT_KINDS = ("colour", "pattern", "fabric")
COLUMNS = (
    "gender", "category", "sleeve", "lower_type", "lower_length", "hat", "glasses",
    *(f"{garment}_{kind}" for garment in GARMENTS for kind in GARMENT_KINDS),
)  # fmt: skip
# Codes that say nothing about what is shown: the column stays None for them.
_UNINFORMATIVE = {"NA", "other", "not long-sleeve", "have a glasses in hand or clothes"}

ONE_PIECE = ("Dresses", "Rompers_Jumpsuits")
JACKETS = ("Jackets_Coats", "Jackets_Vests")
# What the lower garment is, by the product's category where the category says (else the synthetic
# source's garment file says, else nobody knows).
LOWER_TYPE_OF_CATEGORY = {"Skirts": "skirt", "Pants": "trousers", "Denim": "trousers", "Shorts": "trousers",
                          "Leggings": "trousers"}
SHORT, LONG = ("three-point", "medium short"), ("three-quarter", "long")


def _rows(attributes: pd.DataFrame, column: str, values: tuple[str, ...]) -> np.ndarray:
    return attributes[column].isin(values).to_numpy()


# The garments a shopper names, as what the picture shows: noun -> (the garment its modifiers are
# bound to, which images show one). "floral skirt" is any image whose lower garment is a skirt, not only
# a product listed as a skirt; a dress or jumpsuit is labelled on its upper part. Where the labels do
# not say (the lower garment of a top on the real data), the image does not count as showing it.
NOUNS: dict[str, tuple[str, object]] = {
    "dress": ("one_piece", lambda a: _rows(a, "category", ("Dresses",))),
    "jumpsuit": ("one_piece", lambda a: _rows(a, "category", ("Rompers_Jumpsuits",))),
    "top": ("upper", lambda a: a["category"].notna().to_numpy() & ~_rows(a, "category", ONE_PIECE)),
    "sweater": ("upper", lambda a: _rows(a, "category", ("Sweaters",))),
    "skirt": ("lower", lambda a: _rows(a, "lower_type", ("skirt",))),
    "shorts": ("lower", lambda a: _rows(a, "lower_type", ("trousers",)) & _rows(a, "lower_length", SHORT)
               & ~_rows(a, "category", ("Leggings",))),
    "jeans": ("lower", lambda a: _rows(a, "lower_type", ("trousers",)) & _rows(a, "lower_length", LONG)
              & _rows(a, "lower_fabric", ("denim",))),
    "trousers": ("lower", lambda a: _rows(a, "lower_type", ("trousers",)) & _rows(a, "lower_length", LONG)
                 & ~_rows(a, "lower_fabric", ("denim",)) & ~_rows(a, "category", ("Leggings",))),
    "leggings": ("lower", lambda a: _rows(a, "category", ("Leggings",))),
    "jacket": ("outer", lambda a: _rows(a, "category", JACKETS)),
    "cardigan": ("outer", lambda a: a["outer_fabric"].notna().to_numpy() & ~_rows(a, "category", JACKETS)),
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


def noun_mask(attributes: pd.DataFrame, noun: str) -> np.ndarray:
    """Images that show the garment the noun names."""
    return np.asarray(NOUNS[noun][1](attributes), dtype=bool).copy()


def nouns_of(attributes: pd.DataFrame) -> list[list[str]]:
    """Every noun each image shows a garment for ("top" and "skirt" for a blouse over a skirt)."""
    masks = {noun: noun_mask(attributes, noun) for noun in NOUNS}
    return [[noun for noun, mask in masks.items() if mask[row]] for row in range(len(attributes))]


def column_of(slot: str, kind: str) -> str:
    """The attribute column a modifier of `kind` reads for a garment in `slot`."""
    if kind in GARMENT_KINDS:
        return f"{'upper' if slot == 'one_piece' else slot}_{kind}"
    return {"length": "lower_length"}.get(kind, kind)


_NAME = re.compile(r"^(?P<gender>MEN|WOMEN)-(?P<category>[A-Za-z_]+)-id_\d{8}")


def _known(value: str) -> str | None:
    return None if value in _UNINFORMATIVE else value


def image_attributes(raw: Path, images: Sequence[str]) -> pd.DataFrame:
    """One row per image (in the order given), one column per attribute in COLUMNS; None where
    the source does not say."""
    labels = read_labels(raw).labels
    garments, _ = read_garments(raw)
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
        row["lower_type"] = LOWER_TYPE_OF_CATEGORY.get(row["category"])
        codes = garments.get(name)
        if codes is not None:
            for index, garment in enumerate(GARMENTS):
                row[f"{garment}_colour"] = _known(COLOUR[codes[index]])
            row["lower_type"] = row["lower_type"] or _known(LOWER_TYPE[codes[3]])
        if row["category"] in ONE_PIECE:
            row["lower_type"] = None
        rows.append(row)
    return pd.DataFrame(rows, columns=list(COLUMNS), index=range(len(rows)))


def available_columns(attributes: pd.DataFrame) -> list[str]:
    """The attributes the source carries: a column that is None for every image is absent."""
    return [column for column in attributes.columns if attributes[column].notna().any()]
