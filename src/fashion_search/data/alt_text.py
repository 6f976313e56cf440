"""Short alt-text-style training texts written from an image's labels.

Web-pretrained CLIPs learn from short alt text ("model in a red floral dress"), which is
why they understand what shoppers type. The tiny model trained here has no web to learn
from, so `train_baseline` can add such texts, generated from each training image's
attributes (data/attributes.py). The sentence frames are the training set's own: every
text carries a frame word the shopper protocol's phrasings never use ("photo", "model",
"outfit", "look", "shop", "pictured"), so no evaluation phrasing can be a training text
(a test checks it on the default data). Synonyms and unseen words that the protocol's
robustness families query are never written here.

Each text comes with the attributes it states, so the loss can treat every image of the
batch that shows them as a positive, not as a negative.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from fashion_search.data.attributes import (IMAGE_KINDS, JACKETS, LOWER_TYPE_OF_CATEGORY, ONE_PIECE, SHORT, SLOT_KINDS,
                                            column_of)

# Training words per attribute value (several surface forms; none of the robustness families' words).
# (A colour is written as its name.)
TRAIN_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "pattern": {"floral": ("floral", "flower-patterned"), "graphic": ("graphic", "graphic-print"),
                "striped": ("striped",), "pure color": ("plain", "pure color", "single-colour"),
                "lattice": ("lattice", "checked"), "color block": ("color-block", "color block")},
    "fabric": {"denim": ("denim",), "cotton": ("cotton",), "leather": ("leather",), "furry": ("furry", "fur"),
               "knitted": ("knitted", "knit"), "chiffon": ("chiffon",)},
    "sleeve": {"sleeveless": ("sleeveless",), "short-sleeve": ("short-sleeved", "short-sleeve"),
               "medium-sleeve": ("medium-sleeve", "elbow-length-sleeve"),
               "long-sleeve": ("long-sleeved", "long-sleeve")},
    "length": {"three-point": ("short", "three-point"), "medium short": ("knee-length", "medium short"),
               "three-quarter": ("three-quarter", "calf-length"), "long": ("long", "full-length")},
}
# The product's own words by category; the generic word of its garment states nothing about the category.
CATEGORY_WORDS: dict[str, tuple[str, ...]] = {
    "Dresses": ("dress",), "Rompers_Jumpsuits": ("jumpsuit", "romper"), "Skirts": ("skirt",),
    "Shorts": ("shorts",), "Pants": ("trousers", "pants"), "Leggings": ("leggings",),
    "Tees_Tanks": ("t-shirt", "tank top"), "Graphic_Tees": ("graphic t-shirt",), "Blouses_Shirts": ("blouse",),
    "Shirts_Polos": ("shirt", "polo shirt"), "Sweaters": ("sweater",), "Sweatshirts_Hoodies": ("sweatshirt",),
    "Cardigans": ("cardigan",), "Jackets_Coats": ("jacket", "coat"), "Jackets_Vests": ("vest", "jacket"),
}
GENERIC = {"upper": "top", "lower": "bottoms", "outer": "outer layer"}
COLOUR_SHARE = 0.7  # texts that say a garment's colour when the source knows it
SECOND_GARMENT_SHARE = 0.6  # texts that also describe a second garment ("... and blue trousers")
PLURAL_WORDS = {"shorts", "trousers", "pants", "leggings", "jeans", "bottoms"}
PERSON = {"women": ("female model", "woman model"), "men": ("male model", "man model")}
EXTRAS = {("hat", "hat"): "a hat", ("glasses", "eyeglasses"): "glasses", ("glasses", "sunglasses"): "sunglasses"}
# The frames: each has a word no evaluation phrasing uses.
FRAMES = (
    "photo of {garments}{extras}",
    "{person} in {garments}{extras}",
    "{garments}{extras} on a {person}",
    "outfit: {garments}{extras}",
    "shop the look: {garments}{extras}",
    "{gender_word} fashion photo, {garments}{extras}",
    "pictured: {garments}{extras}",
)


@dataclass(frozen=True)
class AltText:
    text: str
    stated: dict[str, str]  # attribute column -> the value the text says (category included)


def _article(words: list[str]) -> str:
    if words[-1].split()[-1] in PLURAL_WORDS:
        return ""
    return "an " if words[0][0] in "aeiou" else "a "


def _modifiers(row: pd.Series, slot: str, rng: np.random.Generator, most: int) -> list[tuple[str, str, str]]:
    """Up to `most` of the garment's known modifiers, as (column, value, word), in a natural order."""
    options = []
    for kind in SLOT_KINDS[slot]:
        column = column_of(slot, kind)
        value = row.get(column)
        if not isinstance(value, str) or (kind != "colour" and value not in TRAIN_WORDS[kind]):
            continue
        words = (value,) if kind == "colour" else TRAIN_WORDS[kind][value]
        options.append((kind, column, value, words[int(rng.integers(len(words)))]))
    if not options:
        return []
    # colour is what a picture shows most plainly, and what is easiest to put on the wrong garment: it is
    # said more often, so that texts about two garments teach which colour belongs to which
    colour = [i for i, option in enumerate(options) if option[0] == "colour"]
    chosen = colour if colour and rng.random() < COLOUR_SHARE else []
    rest = [i for i in range(len(options)) if i not in chosen]
    count = int(rng.integers(0, min(most - len(chosen), len(rest)) + 1)) if rest and most > len(chosen) else 0
    chosen = sorted(chosen + (rng.choice(rest, size=count, replace=False).tolist() if count else []))
    order = ("colour", "length", "sleeve", "pattern", "fabric")
    picked = sorted((options[i] for i in chosen), key=lambda option: order.index(option[0]))
    return [(column, value, word) for _, column, value, word in picked]


SLOT_OF_CATEGORY = {**dict.fromkeys(ONE_PIECE, "one_piece"), **dict.fromkeys(JACKETS, "outer"),
                    "Cardigans": "outer", **dict.fromkeys(LOWER_TYPE_OF_CATEGORY, "lower")}


def _product(row: pd.Series, rng: np.random.Generator) -> tuple[str, str, dict[str, str]] | None:
    """The product's garment slot, a word for it, and what the word states."""
    category = row.get("category")
    if not isinstance(category, str) or category not in CATEGORY_WORDS and category != "Denim":
        return None
    slot = SLOT_OF_CATEGORY.get(category, "upper")
    if category == "Denim":
        return slot, "denim shorts" if row.get("lower_length") in SHORT else "jeans", {"category": category}
    if slot in GENERIC and rng.random() < 0.3:
        return slot, GENERIC[slot], {}
    words = CATEGORY_WORDS[category]
    return slot, words[int(rng.integers(len(words)))], {"category": category}


def _other_noun(row: pd.Series, garment: str) -> tuple[str, dict[str, str]]:
    """A word for a garment that is not the product: a skirt, shorts or trousers when the labels say."""
    lower_type = row.get("lower_type")
    if garment == "lower" and lower_type == "skirt":
        return "skirt", {"lower_type": "skirt"}
    if garment == "lower" and lower_type == "trousers" and isinstance(row.get("lower_length"), str):
        return ("shorts" if row.get("lower_length") in SHORT else "trousers"), {
            "lower_type": "trousers", "lower_length": row.get("lower_length")}
    return GENERIC[garment], {}


def alt_text(row: pd.Series, rng: np.random.Generator) -> AltText | None:
    """One short text about an image, from its attributes (None when its product has no word)."""
    product = _product(row, rng)
    if product is None:
        return None
    slot, noun, stated = product
    mods = _modifiers(row, slot, rng, most=3)
    words = [word for _, _, word in mods] + [noun]
    stated.update({column: value for column, value, _ in mods})
    garments = [_article(words) + " ".join(words)]
    bound = "upper" if slot == "one_piece" else slot
    others = [g for g in ("upper", "lower", "outer") if g != bound and not (slot == "one_piece" and g == "lower")]
    if others and rng.random() < SECOND_GARMENT_SHARE:
        garment = others[int(rng.integers(len(others)))]
        extra = [m for m in _modifiers(row, garment, rng, most=2) if not m[0].endswith(("sleeve", "length"))]
        noun_word, noun_states = _other_noun(row, garment)
        if extra or noun_states:
            phrase = [word for _, _, word in extra] + [noun_word]
            garments.append(_article(phrase) + " ".join(phrase))
            stated.update({column: value for column, value, _ in extra})
            stated.update(noun_states)
    extras = []
    for kind in IMAGE_KINDS[1:]:
        value = row.get(kind)
        if (kind, value) in EXTRAS and rng.random() < 0.5:
            extras.append(EXTRAS[(kind, value)])
            stated[kind] = value
    gender = row.get("gender") if isinstance(row.get("gender"), str) else None
    frame = FRAMES[int(rng.integers(len(FRAMES)))]
    if gender is None and ("{person}" in frame or "{gender_word}" in frame):
        frame = FRAMES[0]
    if gender is not None and ("{person}" in frame or "{gender_word}" in frame):
        stated["gender"] = gender
    person = PERSON[gender][int(rng.integers(2))] if gender in PERSON else ""
    text = frame.format(garments=" and ".join(garments), extras="".join(f" with {e}" for e in extras),
                        person=person, gender_word={"women": "women's", "men": "men's"}.get(gender, ""))
    return AltText(text, stated)


def alt_texts(attributes: pd.DataFrame, per_image: int, seed: int) -> tuple[list[int], list[AltText]]:
    """`per_image` texts for every image that has a noun: (the image row of each text, the texts).
    Image i's texts depend only on (seed, i)."""
    owners, texts = [], []
    for index, (_, row) in enumerate(attributes.iterrows()):
        rng = np.random.default_rng([seed, index])
        for _ in range(per_image):
            text = alt_text(row, rng)
            if text is not None:
                owners.append(index)
                texts.append(text)
    return owners, texts


def stated_attributes(texts: list[AltText], columns: pd.Index) -> pd.DataFrame:
    """What each text states, one row per text in the attribute table's columns (NaN: not stated)."""
    return pd.DataFrame([text.stated for text in texts], columns=columns, dtype=object)
