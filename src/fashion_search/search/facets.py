"""Filters a shopper narrows results by, read from the labels (data/attributes.py), with facet counts.

A facet is one question a store's filter column asks (category, gender, sleeves, length, fabric,
pattern, colour, accessories); its values are what the labels say, never guessed. Fabric, pattern
and colour belong to garments, so an image has every value any of its garments shows ("denim" is a
denim jacket over a cotton dress as well). Only facets the gallery's source has are offered: the Hub
mirror's file names give gender and category alone, and only the synthetic source knows colours.

Within a facet the chosen values are alternatives (denim or leather); across facets all must hold.
The count beside a value is how many gallery images have it under the *other* facets' choices, as
stores show it, so choosing a second value of the same facet never looks like an empty shelf.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from fashion_search.data.labels import GARMENTS
from fashion_search.errors import UserError

# facet -> the attribute columns it reads (an image has a value if any of them holds it), in page order.
FACET_COLUMNS: dict[str, tuple[str, ...]] = {
    "category": ("category",),
    "gender": ("gender",),
    "sleeve": ("sleeve",),
    "length": ("lower_length",),
    **{kind: tuple(f"{garment}_{kind}" for garment in GARMENTS) for kind in ("fabric", "pattern", "colour")},
    "accessories": ("hat", "glasses"),
}
FACET_LABELS = {"category": "Category", "gender": "Gender", "sleeve": "Sleeves", "length": "Length",
                "fabric": "Fabric", "pattern": "Pattern", "colour": "Colour", "accessories": "Accessories"}
# Label values that state an absence: nothing a shopper filters for.
NOT_A_VALUE = {"no hat", "no glasses"}
VALUE_LABELS = {"pure color": "plain", "three-point": "short", "medium short": "knee-length",
                "women": "women", "men": "men"}
MAX_FILTER_VALUES = 64  # values in one request, all facets together: more than every value of every facet


class FilterError(UserError, ValueError):
    """A filter the gallery does not have; the message names it and what is allowed."""


def value_label(value: str) -> str:
    return VALUE_LABELS.get(value, value.replace("_", " "))


def facet_values(attributes: pd.DataFrame) -> dict[str, list[list[str]]]:
    """Per facet the source has, each image's values (sorted, possibly none), in the frame's row order."""
    facets: dict[str, list[list[str]]] = {}
    for facet, columns in FACET_COLUMNS.items():
        present = [column for column in columns if column in attributes and attributes[column].notna().any()]
        if not present:
            continue
        per_image = [sorted({value for value in values if isinstance(value, str) and value not in NOT_A_VALUE})
                     for values in zip(*(attributes[column].tolist() for column in present))]
        if any(per_image):
            facets[facet] = per_image
    return facets


@dataclass
class Facets:
    """Each facet's values as boolean masks over the gallery rows; the filter and the counts are mask algebra."""

    masks: dict[str, dict[str, np.ndarray]]  # facet -> value -> (N,) bool
    per_image: dict[str, list[list[str]]]  # facet -> each row's values
    size: int

    @classmethod
    def from_values(cls, per_image: Mapping[str, Sequence[Sequence[str]]], size: int) -> "Facets":
        masks: dict[str, dict[str, np.ndarray]] = {}
        for facet in FACET_COLUMNS:  # page order, whatever order the file had
            if facet not in per_image:
                continue
            values = per_image[facet]
            masks[facet] = {}
            for row, row_values in enumerate(values):
                for value in row_values:
                    masks[facet].setdefault(value, np.zeros(size, dtype=bool))[row] = True
            masks[facet] = dict(sorted(masks[facet].items(), key=lambda item: value_label(item[0]).lower()))
        return cls(masks, {facet: [list(v) for v in per_image[facet]] for facet in masks}, size)

    @property
    def names(self) -> list[str]:
        return list(self.masks)

    def parse(self, requested: Iterable[tuple[str, str]]) -> dict[str, list[str]]:
        """(facet, value) pairs from a request as {facet: values}; an unknown facet or value is a FilterError
        naming it and what this gallery offers."""
        chosen: dict[str, list[str]] = {}
        for count, (facet, value) in enumerate(requested, start=1):
            if count > MAX_FILTER_VALUES:
                raise FilterError(f"too many filter values (at most {MAX_FILTER_VALUES} in one request)")
            if facet not in self.masks:
                offered = ", ".join(self.names) or "none: this gallery has no labels"
                raise FilterError(f"unknown filter {facet!r}: this gallery's filters are {offered}")
            if value not in self.masks[facet]:
                raise FilterError(f"unknown value {value!r} for filter {facet!r}: its values are "
                                  f"{', '.join(self.masks[facet])}")
            if value not in chosen.setdefault(facet, []):
                chosen[facet].append(value)
        return chosen

    def facet_mask(self, facet: str, values: Sequence[str]) -> np.ndarray:
        """Images with any of the values (the alternatives of one facet)."""
        return np.logical_or.reduce([self.masks[facet][value] for value in values])

    def allowed(self, chosen: Mapping[str, Sequence[str]], skip: str | None = None) -> np.ndarray | None:
        """Images that pass every chosen facet but `skip`; None when nothing restricts them."""
        mask = None
        for facet, values in chosen.items():
            if facet != skip and values:
                mask = self.facet_mask(facet, values) if mask is None else mask & self.facet_mask(facet, values)
        return mask

    def counts(self, chosen: Mapping[str, Sequence[str]]) -> list[dict]:
        """Every facet with its values, each counted under the other facets' choices, and whether chosen."""
        answer = []
        for facet, values in self.masks.items():
            others = self.allowed(chosen, skip=facet)
            answer.append({"name": facet, "label": FACET_LABELS[facet], "values": [
                {"value": value, "label": value_label(value),
                 "count": int(np.count_nonzero(mask if others is None else mask & others)),
                 "chosen": value in chosen.get(facet, ())} for value, mask in values.items()]})
        return answer

    def of_row(self, row: int) -> dict[str, list[str]]:
        """The facet values of one gallery image (facets where it has none are left out)."""
        return {facet: values[row] for facet, values in self.per_image.items() if values[row]}
