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

from fashion_search.data.attributes import GARMENT_KINDS, IMAGE_KINDS, NOUNS, PLURAL_NOUNS, SLOT_KINDS, column_of

# Training words per attribute value (several surface forms; none of the robustness families' words).
TRAIN_WORDS: dict[str, dict[str, tuple[str, ...]]] = {
    "colour": {},  # the colour name itself
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
NOUN_WORDS: dict[str, tuple[str, ...]] = {
    "dress": ("dress",), "jumpsuit": ("jumpsuit", "romper"), "skirt": ("skirt",), "shorts": ("shorts",),
    "jeans": ("jeans",), "trousers": ("trousers", "pants"), "leggings": ("leggings",),
    "t-shirt": ("t-shirt", "top"), "blouse": ("blouse",), "shirt": ("shirt", "polo shirt"),
    "sweater": ("sweater",), "sweatshirt": ("sweatshirt",), "cardigan": ("cardigan",),
    "jacket": ("jacket", "coat"),
}
OTHER_GARMENT = {"upper": "top", "lower": "bottoms", "outer": "outer layer"}
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
    stated: dict[str, str]  # attribute column -> value the text says (noun included)


def _article(words: list[str], noun: str) -> str:
    if noun in PLURAL_NOUNS or noun == OTHER_GARMENT["lower"]:
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
    count = int(rng.integers(0, min(most, len(options)) + 1))
    chosen = sorted(rng.choice(len(options), size=count, replace=False).tolist()) if count else []
    order = ("colour", "length", "sleeve", "pattern", "fabric")
    picked = sorted((options[i] for i in chosen), key=lambda option: order.index(option[0]))
    return [(column, value, word) for _, column, value, word in picked]


def alt_text(row: pd.Series, rng: np.random.Generator) -> AltText | None:
    """One short text about an image, from its attributes (None when the image has no noun)."""
    noun = row.get("noun")
    if not isinstance(noun, str):
        return None
    slot = NOUNS[noun][1]
    stated: dict[str, str] = {"noun": noun}
    mods = _modifiers(row, slot, rng, most=3)
    words = [word for _, _, word in mods] + [NOUN_WORDS[noun][int(rng.integers(len(NOUN_WORDS[noun])))]]
    stated.update({column: value for column, value, _ in mods})
    garments = [_article(words, noun) + " ".join(words)]
    others = [garment for garment in ("upper", "lower", "outer")
              if garment != {"one_piece": "upper"}.get(slot, slot)
              and not (slot == "one_piece" and garment == "lower")]
    if others and rng.random() < 0.35:
        garment = others[int(rng.integers(len(others)))]
        extra = [m for m in _modifiers(row, garment, rng, most=2) if not m[0].endswith(("sleeve", "length"))]
        if extra:
            phrase = [word for _, _, word in extra] + [OTHER_GARMENT[garment]]
            garments.append(_article(phrase, OTHER_GARMENT[garment]) + " ".join(phrase))
            stated.update({column: value for column, value, _ in extra})
    extras = []
    for kind in IMAGE_KINDS[1:]:
        value = row.get(kind)
        if (kind, value) in EXTRAS and rng.random() < 0.5:
            extras.append(EXTRAS[(kind, value)])
            stated[kind] = value
    gender = row.get("gender") if isinstance(row.get("gender"), str) else None
    frame = FRAMES[int(rng.integers(len(FRAMES)))]
    if ("{person}" in frame or "{gender_word}" in frame) and gender is None:
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

