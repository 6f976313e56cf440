"""A synthetic stand-in for DeepFashion-MultiModal, written in the real set's layout.

It lets the whole pipeline run offline on a CPU. A small CLIP is trained on it from
scratch, so every labelled attribute is drawn large enough to survive the model's
64x64 input, and the captions are written from the same labels the pictures show.
Everything follows from the seed: each item has its own generator, derived from
(seed, item index), so no output depends on the order anything else was drawn in.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

from fashion_search.data.labels import (
    COLOUR,
    FABRIC,
    LOWER_LENGTH,
    NECKLINE,
    PATTERN,
    SHAPE_COLUMNS,
    SLEEVE_LENGTH,
    ImageLabels,
    write_colours,
    write_labels,
)
from fashion_search.data.layout import CAPTIONS_FILE, IMAGES_DIR, VIEWS, image_name

RGB = tuple[int, int, int]

CATEGORIES = {
    "MEN": (
        "Denim", "Jackets_Vests", "Pants", "Shirts_Polos", "Shorts", "Sweaters",
        "Sweatshirts_Hoodies", "Tees_Tanks",
    ),
    "WOMEN": (
        "Blouses_Shirts", "Cardigans", "Denim", "Dresses", "Graphic_Tees", "Jackets_Coats",
        "Leggings", "Pants", "Rompers_Jumpsuits", "Shorts", "Skirts", "Sweaters",
        "Sweatshirts_Hoodies", "Tees_Tanks",
    ),
}  # fmt: skip

PALETTE: dict[str, RGB] = {
    "white": (244, 244, 240),
    "black": (28, 28, 30),
    "grey": (128, 128, 132),
    "red": (205, 32, 38),
    "blue": (40, 95, 215),
    "navy": (24, 36, 92),
    "green": (36, 140, 62),
    "yellow": (245, 210, 40),
    "pink": (242, 150, 192),
    "purple": (122, 50, 165),
    "brown": (112, 70, 34),
    "beige": (214, 192, 152),
    "orange": (242, 128, 28),
}
COLOUR_NAMES = tuple(PALETTE)
# Fabrics that only come in some colours, so that "a pink leather skirt" never shows up.
_FABRIC_COLOURS = {"denim": ("blue", "navy", "black", "grey"), "leather": ("black", "brown", "navy", "red")}

SKIN_TONES: tuple[RGB, ...] = ((241, 204, 176), (224, 172, 134), (190, 134, 96), (141, 92, 60), (96, 62, 40))
HAIR_COLOURS: tuple[RGB, ...] = ((30, 22, 18), (72, 44, 24), (140, 96, 50), (214, 180, 110), (120, 30, 20))
_SHOES: RGB = (40, 34, 32)
_METAL: RGB = (212, 172, 48)

# A unit of pattern size: pixels of a person drawn 192 pixels tall.
_PATTERN_UNIT = 192.0

# The real set numbers its views like this: ..._1_front.jpg, ..._7_additional.jpg.
_VIEW_NUMBER = {"front": 1, "side": 2, "back": 3, "full": 4, "additional": 7}
# How often an item has 0, 1, ... 5 views: 3.65 on average, so 700 items give ~2,500 images.
_VIEW_COUNT_WEIGHTS = (0, 0, 15, 30, 30, 25)


# ---------------------------------------------------------------- what is drawn


@dataclass(frozen=True)
class Look:
    """One outfit on one person: the labels plus what the labels leave open (colours, body)."""

    gender: str
    labels: ImageLabels
    upper_colours: tuple[str, str]  # primary, pattern colour
    lower_colours: tuple[str, str]
    outer_colours: tuple[str, str]
    accessory_colour: str
    skirt: bool
    one_piece: bool  # a dress or jumpsuit: upper and lower are one garment with one texture
    skin: RGB
    hair: RGB
    long_hair: bool
    texture_seed: int

    def code(self, column: str) -> int:
        """A shape label by column name (see labels.SHAPE_COLUMNS)."""
        return self.labels.shape_code(column)


@dataclass(frozen=True)
class ViewParams:
    """How one photo of a look is taken: pose, framing and background."""

    view: str
    scale: float  # person height / image height
    offset: float  # body centre shift, fraction of image width
    arm_angles: tuple[float, float]  # degrees out from vertical, left and right
    leg_spread: float  # degrees out from vertical, each leg
    background: tuple[RGB, RGB]  # top and bottom of a vertical gradient
    noise_seed: int


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


def garment_colour_codes(look: Look) -> tuple[int, int, int]:
    """The primary colour of the upper, lower and outer garment as labels.COLOUR codes (NA: no outer)."""
    outer = look.outer_colours[0] if look.labels.fabric[2] != FABRIC.index("NA") else "NA"
    return tuple(COLOUR.index(name) for name in (look.upper_colours[0], look.lower_colours[0], outer))


# ---------------------------------------------------------------- drawing labels


_SLEEVE_WEIGHTS = {
    "Tees_Tanks": (35, 55, 5, 5), "Graphic_Tees": (10, 75, 5, 10), "Shirts_Polos": (5, 45, 15, 35),
    "Blouses_Shirts": (20, 30, 20, 30), "Sweaters": (0, 5, 20, 75), "Sweatshirts_Hoodies": (0, 5, 15, 80),
    "Cardigans": (5, 10, 25, 60), "Jackets_Vests": (20, 10, 15, 55), "Jackets_Coats": (5, 10, 25, 60),
    "Dresses": (35, 30, 15, 20), "Rompers_Jumpsuits": (40, 30, 10, 20),
}  # fmt: skip
_DEFAULT_SLEEVE = (25, 30, 20, 25)

# Category -> (lower garment style, lower length weights by code); unlisted categories may draw either style.
_LOWER_BY_CATEGORY = {
    "Dresses": ("skirt", (20, 30, 25, 25)), "Skirts": ("skirt", (25, 30, 25, 20)),
    "Pants": ("trousers", (0, 0, 30, 70)), "Leggings": ("trousers", (0, 0, 25, 75)),
    "Denim": ("trousers", (10, 15, 20, 55)), "Shorts": ("trousers", (50, 50, 0, 0)),
    "Rompers_Jumpsuits": ("trousers", (35, 25, 10, 30)),
}  # fmt: skip
_DEFAULT_LENGTH = (15, 20, 25, 40)

_UPPER_FABRIC = (8, 35, 5, 5, 15, 17, 15)
_LOWER_FABRIC = (30, 30, 9, 4, 7, 8, 12)
_OUTER_FABRIC = {"Cardigans": (0, 20, 0, 12, 68, 0, 0), "default": (25, 20, 25, 15, 0, 0, 15)}
_UPPER_PATTERN = (12, 12, 14, 28, 12, 10, 12)
_LOWER_PATTERN = (10, 5, 10, 48, 11, 6, 10)
_NECKLINE = {"shirt": (15, 5, 15, 15, 50), "knit": (15, 5, 50, 30, 0), "default": (25, 15, 35, 10, 15)}
_ONE_PIECE = ("Dresses", "Rompers_Jumpsuits")
_OUTER_CATEGORIES = ("Cardigans", "Jackets_Vests", "Jackets_Coats")


def _weighted(rng: np.random.Generator, weights: tuple[float, ...]) -> int:
    p = np.asarray(weights, dtype=float)
    return int(rng.choice(len(p), p=p / p.sum()))


def _draw_textures(category: str, rng: np.random.Generator) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Fabric and pattern codes (upper, lower, outer), agreeing with the category."""
    fabric = [_weighted(rng, _UPPER_FABRIC), _weighted(rng, _LOWER_FABRIC), FABRIC.index("NA")]
    pattern = [_weighted(rng, _UPPER_PATTERN), _weighted(rng, _LOWER_PATTERN), PATTERN.index("NA")]
    if category == "Sweaters" or (category == "Cardigans" and rng.random() < 0.3):
        fabric[0] = FABRIC.index("knitted")
    if category == "Denim":
        fabric[1] = FABRIC.index("denim")
    if category == "Leggings":
        fabric[1] = FABRIC.index("knitted") if rng.random() < 0.5 else FABRIC.index("cotton")
    if category == "Graphic_Tees":
        pattern[0] = PATTERN.index("graphic")
    if category in _ONE_PIECE:
        fabric[1], pattern[1] = fabric[0], pattern[0]
    if category in _OUTER_CATEGORIES or rng.random() < 0.07:
        fabric[2] = _weighted(rng, _OUTER_FABRIC.get(category, _OUTER_FABRIC["default"]))
        pattern[2] = _weighted(rng, _UPPER_PATTERN)
    return tuple(fabric), tuple(pattern)


def _draw_shape(
    category: str, gender: str, has_outer: bool, rng: np.random.Generator
) -> tuple[tuple[int, ...], bool]:
    """Shape codes in SHAPE_COLUMNS order, and whether the lower garment is a skirt."""
    sleeve = _weighted(rng, _SLEEVE_WEIGHTS.get(category, _DEFAULT_SLEEVE))
    style, length_weights = _LOWER_BY_CATEGORY.get(category, (None, _DEFAULT_LENGTH))
    skirt = style == "skirt" or (style is None and gender == "WOMEN" and rng.random() < 0.35)
    neck_kind = "shirt" if category in ("Shirts_Polos", "Blouses_Shirts") else "default"
    neck_kind = "knit" if category in ("Sweaters", "Sweatshirts_Hoodies") else neck_kind
    neckline = _weighted(rng, _NECKLINE[neck_kind])
    if sleeve == 0 and gender == "WOMEN" and not has_outer and rng.random() < 0.4:
        neckline = NECKLINE.index("suspenders")  # straps only go with sleeveless tops
    crop_top = category in ("Tees_Tanks", "Graphic_Tees", "Blouses_Shirts") and gender == "WOMEN"
    crop = crop_top and rng.random() < 0.2
    codes = {
        "sleeve_length": sleeve,
        "lower_length": _weighted(rng, length_weights),
        "socks": 2 if category == "Leggings" else int(rng.random() < 0.14),
        "hat": int(rng.random() < 0.15),
        "glasses": _weighted(rng, (80, 10, 10)),
        "neckwear": int(rng.random() < 0.15),
        "wrist_wearing": int(rng.random() < 0.2),
        "ring": int(rng.random() < 0.15),
        "waist_accessories": int(rng.random() < 0.15),
        "neckline": neckline,
        "cardigan": 0 if has_outer else 1,
        "covers_navel": 0 if crop else 1,
    }
    return tuple(codes[column] for column in SHAPE_COLUMNS), skirt


def _garment_colours(fabric: int, rng: np.random.Generator) -> tuple[str, str]:
    """A primary colour the fabric comes in and a different pattern colour."""
    primaries = _FABRIC_COLOURS.get(FABRIC[fabric], COLOUR_NAMES)
    primary = primaries[int(rng.integers(len(primaries)))]
    others = [name for name in COLOUR_NAMES if name != primary]
    return primary, others[int(rng.integers(len(others)))]


def draw_look(gender: str, category: str, rng: np.random.Generator) -> Look:
    """A random outfit whose labels agree with the category."""
    fabric, pattern = _draw_textures(category, rng)
    shape, skirt = _draw_shape(category, gender, fabric[2] != FABRIC.index("NA"), rng)
    upper = _garment_colours(fabric[0], rng)
    lower = upper if category in _ONE_PIECE else _garment_colours(fabric[1], rng)
    outer = _garment_colours(fabric[2] if fabric[2] != FABRIC.index("NA") else FABRIC.index("cotton"), rng)
    return Look(
        gender=gender,
        labels=ImageLabels(shape=shape, fabric=fabric, pattern=pattern),
        upper_colours=upper,
        lower_colours=lower,
        outer_colours=outer,
        accessory_colour=COLOUR_NAMES[int(rng.integers(len(COLOUR_NAMES)))],
        skirt=skirt,
        one_piece=category in _ONE_PIECE,
        skin=SKIN_TONES[int(rng.integers(len(SKIN_TONES)))],
        hair=HAIR_COLOURS[int(rng.integers(len(HAIR_COLOURS)))],
        long_hair=bool(rng.random() < (0.8 if gender == "WOMEN" else 0.1)),
        texture_seed=int(rng.integers(2**31)),
    )


def _draw_views(rng: np.random.Generator) -> tuple[ViewParams, ...]:
    """The front view plus a random subset of the others, in the real set's order."""
    count = _weighted(rng, _VIEW_COUNT_WEIGHTS)
    others = sorted(rng.choice(np.arange(1, len(VIEWS)), size=count - 1, replace=False))
    return tuple(_draw_view_params(VIEWS[i], rng) for i in (0, *others))


def _draw_view_params(view: str, rng: np.random.Generator) -> ViewParams:
    low, high = (0.70, 0.80) if view == "full" else (0.84, 0.95)
    arm_high = 9.0 if view == "side" else 24.0
    tint = rng.integers(-22, 12, size=3)
    top = tuple(int(v) for v in np.clip(238 + tint, 0, 255))
    bottom = tuple(int(v) for v in np.clip(np.array(top) - rng.integers(5, 25), 0, 255))
    return ViewParams(
        view=view,
        scale=float(rng.uniform(low, high)),
        offset=float(rng.uniform(-0.05, 0.05)),
        arm_angles=(float(rng.uniform(4, arm_high)), float(rng.uniform(4, arm_high))),
        leg_spread=float(rng.uniform(0.5, 3.0 if view == "side" else 7.0)),
        background=(top, bottom),
        noise_seed=int(rng.integers(2**31)),
    )


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
        views=_draw_views(rng),
        caption=write_caption(category, look, rng),
    )


# ---------------------------------------------------------------- captions


_SUBJECTS = {"WOMEN": ("The lady", "The woman", "She"), "MEN": ("The gentleman", "The man", "He")}
_PRONOUNS = {"WOMEN": ("She", "Her", "her", "lady"), "MEN": ("He", "His", "his", "gentleman")}
_PLURAL_NOUNS = ("trousers", "pants", "shorts", "jeans", "leggings", "denim shorts")


def _article(word: str) -> str:
    return "an" if word[0] in "aeiou" else "a"


def _colour_phrase(colours: tuple[str, str], pattern: int) -> str:
    return colours[0] if PATTERN[pattern] == "pure color" else f"{colours[0]} and {colours[1]}"


def _upper_noun(category: str, look: Look, rng: np.random.Generator) -> str:
    sleeve, length = look.code("sleeve_length"), look.code("lower_length")
    fixed = {
        "Dresses": "dress", "Rompers_Jumpsuits": "jumpsuit" if length >= 2 else "romper",
        "Sweaters": "sweater", "Sweatshirts_Hoodies": ("sweatshirt", "hoodie")[int(rng.integers(2))],
    }  # fmt: skip
    if category in fixed:
        return fixed[category]
    if sleeve == 0:
        return "tank top"
    choices = {
        "Tees_Tanks": ("T-shirt",), "Graphic_Tees": ("T-shirt",), "Shirts_Polos": ("shirt", "polo shirt"),
        "Blouses_Shirts": ("blouse", "shirt"),
    }.get(category, ("T-shirt", "shirt", "top", "blouse") if look.gender == "WOMEN" else ("T-shirt", "shirt"))
    return choices[int(rng.integers(len(choices)))]


def _lower_noun(category: str, look: Look, rng: np.random.Generator) -> str:
    length, denim = look.code("lower_length"), look.labels.fabric[1] == FABRIC.index("denim")
    if look.skirt:
        return "skirt"
    if category == "Leggings":
        return "leggings"
    if length <= 1:
        return "denim shorts" if denim else "shorts"
    if denim and rng.random() < 0.6:
        return "jeans"
    return ("trousers", "pants")[int(rng.integers(2))]


def _outer_noun(category: str, look: Look, rng: np.random.Generator) -> str:
    if category == "Jackets_Coats":
        return ("jacket", "coat")[int(rng.integers(2))]
    if category == "Jackets_Vests":
        return "vest" if look.code("sleeve_length") == 0 else "jacket"
    return "cardigan"


def _upper_sentences(look: Look, noun: str, subject: str, rng: np.random.Generator) -> str:
    sleeve = SLEEVE_LENGTH[look.code("sleeve_length")]
    fabric, pattern = FABRIC[look.labels.fabric[0]], PATTERN[look.labels.pattern[0]]
    colours = _colour_phrase(look.upper_colours, look.labels.pattern[0])
    neckline = NECKLINE[look.code("neckline")]
    pron, poss, _, person = _PRONOUNS[look.gender]
    templates = (
        f"{subject} wears a {sleeve} {colours} {noun} with {pattern} patterns. "
        f"The {noun} is with {fabric} fabric. It has a {neckline} neckline.",
        f"{subject} is wearing a {sleeve} {noun} with {colours} {pattern} patterns. "
        f"The {noun} is made of {fabric} fabric. Its neckline is {neckline}.",
        f"{poss} {colours} {noun} is {sleeve}, with {fabric} fabric and {pattern} patterns. "
        f"The neckline of it is {neckline}.",
        f"This {person} wears a {sleeve} {noun} of {fabric} fabric. It is {colours} with {pattern} patterns "
        f"and a {neckline} neckline.",
    )
    text = templates[int(rng.integers(len(templates)))]
    if look.code("covers_navel") == 0:
        text += f" The {noun} is cropped and {pron.lower()} shows {poss.lower()} navel."
    return text


def _lower_sentences(look: Look, noun: str, subject: str, rng: np.random.Generator) -> str:
    length = LOWER_LENGTH[look.code("lower_length")]
    if look.one_piece:
        templates = (f"The {noun} is of {length} length.", f"The {noun} reaches a {length} length.")
        return templates[int(rng.integers(2))]
    fabric, pattern = FABRIC[look.labels.fabric[1]], PATTERN[look.labels.pattern[1]]
    colours = _colour_phrase(look.lower_colours, look.labels.pattern[1])
    plural = noun in _PLURAL_NOUNS
    be = "are" if plural else "is"
    article = "" if plural else "a "
    pron, poss = _PRONOUNS[look.gender][:2]
    templates = (
        f"{subject} wears {article}{length} {noun}. The {noun} {be} with {fabric} fabric and "
        f"{colours} {pattern} patterns.",
        f"{poss} {colours} {noun} {be} of {length} length, with {pattern} patterns. "
        f"{'They' if plural else 'It'} {be} made of {fabric} fabric.",
        f"{pron} pairs it with {article}{colours} {length} {noun} of {fabric} fabric and {pattern} patterns.",
    )
    return templates[int(rng.integers(len(templates)))]


def _outer_sentence(look: Look, noun: str, rng: np.random.Generator) -> str:
    fabric, pattern = FABRIC[look.labels.fabric[2]], PATTERN[look.labels.pattern[2]]
    colours = _colour_phrase(look.outer_colours, look.labels.pattern[2])
    pron, poss = _PRONOUNS[look.gender][:2]
    templates = (
        f"{pron} also wears {_article(colours)} {colours} {noun} of {fabric} fabric with {pattern} patterns.",
        f"{poss} outer clothing is {_article(colours)} {colours} {noun} of {fabric} fabric "
        f"with {pattern} patterns.",
    )
    return templates[int(rng.integers(len(templates)))]


def _accessory_sentences(look: Look, subject: str, rng: np.random.Generator) -> list[str]:
    _, _, obj, _ = _PRONOUNS[look.gender]
    colour = look.accessory_colour
    neck = "scarf" if look.gender == "WOMEN" else "tie"
    options = {
        "hat": (f"There is a hat on {obj} head.", f"{subject} wears {_article(colour)} {colour} hat."),
        "glasses": (f"{subject} wears glasses.", f"There are glasses on {obj} face."),
        "sunglasses": (f"{subject} wears sunglasses.", f"There are sunglasses on {obj} face."),
        "neckwear": (f"There is an accessory on {obj} neck.", f"{subject} wears {_article(colour)} {colour} {neck}."),
        "belt": (f"There is a belt around {obj} waist.", f"{subject} wears {_article(colour)} {colour} belt."),
        "socks": (f"{subject} wears socks.", f"{subject} is wearing a pair of socks."),
        "wrist": (f"There is an accessory on {obj} wrist.", f"{subject} wears a bracelet."),
        "ring": (f"The person is wearing a ring on {obj} finger.", f"There is a ring on {obj} finger."),
    }  # fmt: skip
    present = [name for name in options if _accessory_present(look, name)]
    order = rng.permutation(len(present))
    return [options[present[i]][int(rng.integers(2))] for i in order]


def _accessory_present(look: Look, name: str) -> bool:
    column, value = {
        "hat": ("hat", 1), "glasses": ("glasses", 1), "sunglasses": ("glasses", 2), "neckwear": ("neckwear", 1),
        "belt": ("waist_accessories", 1), "socks": ("socks", 1), "wrist": ("wrist_wearing", 1), "ring": ("ring", 1),
    }[name]  # fmt: skip
    return look.code(column) == value


def write_caption(category: str, look: Look, rng: np.random.Generator) -> str:
    """A caption in the real set's style, saying every labelled attribute and the colours."""
    subject, later_subject = (_SUBJECTS[look.gender][int(i)] for i in rng.integers(3, size=2))
    upper_noun = _upper_noun(category, look, rng)
    lower_noun = upper_noun if look.one_piece else _lower_noun(category, look, rng)
    parts = [_upper_sentences(look, upper_noun, subject, rng)]
    parts.append(_lower_sentences(look, lower_noun, later_subject, rng))
    if look.code("cardigan") == 0:
        parts.append(_outer_sentence(look, _outer_noun(category, look, rng), rng))
    parts.extend(_accessory_sentences(look, _PRONOUNS[look.gender][0], rng))
    return " ".join(parts)


# ---------------------------------------------------------------- pictures


@dataclass(frozen=True)
class _Frame:
    """Maps body coordinates (fractions of the person's height, x from the body centre) to pixels."""

    cx: float
    top: float
    height: float
    squeeze: float  # horizontal body scale: narrower in the side view

    def xy(self, x: float, y: float) -> tuple[float, float]:
        return self.cx + x * self.squeeze * self.height, self.top + y * self.height

    def box(self, x0: float, y0: float, x1: float, y1: float) -> tuple[float, float, float, float]:
        return (*self.xy(x0, y0), *self.xy(x1, y1))

    def poly(self, points: list[tuple[float, float]]) -> list[tuple[float, float]]:
        return [self.xy(x, y) for x, y in points]


@dataclass(frozen=True)
class _Limb:
    """An arm or a leg: a tapered segment from a joint, in body coordinates."""

    start: tuple[float, float]
    end: tuple[float, float]
    width_start: float
    width_end: float

    def part(self, frame: _Frame, t0: float, t1: float, grow: float = 1.0) -> list[tuple[float, float]]:
        """The polygon of the stretch between fractions t0 and t1 of the limb's length."""
        (x0, y0), (x1, y1) = frame.xy(*self.start), frame.xy(*self.end)
        length = math.hypot(x1 - x0, y1 - y0) or 1.0
        nx, ny = -(y1 - y0) / length, (x1 - x0) / length
        points = []
        for t, side in ((t0, 1), (t1, 1), (t1, -1), (t0, -1)):
            half = grow * frame.height * (self.width_start + t * (self.width_end - self.width_start)) / 2
            px, py = x0 + t * (x1 - x0), y0 + t * (y1 - y0)
            points.append((px + side * nx * half, py + side * ny * half))
        return points


_TORSO = [(-0.115, 0.17), (0.115, 0.17), (0.095, 0.44), (0.105, 0.52), (-0.105, 0.52), (-0.095, 0.44)]
_SLEEVE_REACH = (0.0, 0.3, 0.62, 0.97)  # fraction of the arm a sleeve covers, by sleeve code
_TROUSER_REACH = (0.2, 0.42, 0.72, 1.0)  # fraction of the leg trousers cover, by length code
_SKIRT_HEM = (0.60, 0.69, 0.81, 0.93)  # skirt hem height, by length code
_WAIST, _HIP, _ANKLE = 0.45, 0.5, 0.92


def _limbs(view: ViewParams) -> tuple[list[_Limb], list[_Limb]]:
    arms, legs = [], []
    for side, angle in zip((-1, 1), view.arm_angles):
        radians = math.radians(angle)
        start = (side * 0.1, 0.19)
        hand = (start[0] + side * 0.36 * math.sin(radians), start[1] + 0.36 * math.cos(radians))
        arms.append(_Limb(start, hand, 0.052, 0.04))
        reach = side * (_ANKLE - _HIP) * math.tan(math.radians(view.leg_spread))
        legs.append(_Limb((side * 0.052, _HIP), (side * 0.052 + reach, _ANKLE), 0.07, 0.045))
    return arms, legs


class _Canvas:
    """The picture being drawn, with the shared body geometry and texture coordinates."""

    def __init__(self, look: Look, view: ViewParams, size: tuple[int, int]) -> None:
        width, height = size
        person = view.scale * height
        self.look, self.view = look, view
        squeeze = 0.62 if view.view == "side" else 1.0
        self.frame = _Frame(width * (0.5 + view.offset), (height - person) * 0.55, person, squeeze)
        self.arms, self.legs = _limbs(view)
        xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
        unit = person / _PATTERN_UNIT
        self.u = (xs - self.frame.cx) / (unit * self.frame.squeeze)
        self.v = (ys - self.frame.top) / unit
        self.rng = np.random.default_rng(view.noise_seed)
        self.image = Image.fromarray(_background(view, size))
        self.draw = ImageDraw.Draw(self.image)

    @property
    def front(self) -> bool:
        return self.view.view != "back"

    def mask(self) -> tuple[Image.Image, ImageDraw.ImageDraw]:
        mask = Image.new("L", self.image.size, 0)
        return mask, ImageDraw.Draw(mask)

    def paint(self, mask: Image.Image, garment: int, anchor: tuple[float, float]) -> None:
        """Lay a garment's texture through its mask, with an outline so pale garments show.

        The texture is computed only inside the mask's bounding box: most of the cost of a picture.
        """
        fabric = FABRIC[self.look.labels.fabric[garment]]
        if fabric == "furry":
            mask = self._fuzz(mask)
        box = mask.getbbox()
        if box is None:
            return
        mask = mask.crop(box)
        region = (slice(box[1], box[3]), slice(box[0], box[2]))
        texture = _garment_texture(self.look, garment, self.u[region], self.v[region], anchor, self.rng)
        pixels = np.clip(texture, 0, 255).astype(np.uint8)
        opacity = mask.point(lambda value: value * 7 // 10) if fabric == "chiffon" else mask
        self.image.paste(Image.fromarray(pixels), box[:2], opacity)
        self.image.paste(Image.fromarray(pixels // 2), box[:2], Image.fromarray(_outline(np.asarray(mask))))

    def _fuzz(self, mask: Image.Image) -> Image.Image:
        """Ragged, hairy edges for furry fabric."""
        blurred = np.asarray(mask.filter(ImageFilter.GaussianBlur(2.0)))
        noise = self.rng.random(blurred.shape, np.float32) * 255
        return Image.fromarray(np.where(blurred > noise, 255, 0).astype(np.uint8))


def _outline(mask: np.ndarray) -> np.ndarray:
    """The mask's border pixels (inside, next to outside), as a 0/255 mask."""
    inside = mask > 127
    core = inside.copy()
    core[1:] &= inside[:-1]
    core[:-1] &= inside[1:]
    core[:, 1:] &= inside[:, :-1]
    core[:, :-1] &= inside[:, 1:]
    return np.where(inside & ~core, 255, 0).astype(np.uint8)


def _background(view: ViewParams, size: tuple[int, int]) -> np.ndarray:
    width, height = size
    top, bottom = (np.array(c, dtype=np.float32) for c in view.background)
    t = np.linspace(0.0, 1.0, height, dtype=np.float32)[:, None, None]
    return np.broadcast_to(top + t * (bottom - top), (height, width, 3)).astype(np.uint8)


def _pattern_texture(
    u: np.ndarray, v: np.ndarray, pattern: int, colours: tuple[str, str], anchor: tuple[float, float], seed: int
) -> np.ndarray:
    """A pattern in body coordinates (u, v), so it moves and scales with the body."""
    primary, accent = (np.array(PALETTE[c], dtype=np.float32) for c in colours)
    name = PATTERN[pattern]
    au, av = anchor[0] * _PATTERN_UNIT, anchor[1] * _PATTERN_UNIT
    if name == "striped":
        on = (v % 16) < 8
    elif name == "lattice":
        on = ((np.floor(u / 15) + np.floor(v / 15)) % 2) == 1
    elif name == "color block":
        on = (u - au) + 0.6 * (v - av) > 0
    elif name == "floral":
        on = _flowers(u, v, seed)
    elif name == "graphic":
        on = _graphic(u - au, v - av, seed)
    elif name == "other":
        on = _dots_or_zigzag(u, v, seed)
    else:
        on = np.zeros(u.shape, dtype=bool)
    return np.where(on[..., None], accent, primary)


def _flowers(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    """Five-petal flowers on a jittered 20-unit grid."""
    cell = 20.0
    i, j = np.floor(u / cell), np.floor(v / cell)
    jitter_u = ((i * 73 + j * 151 + seed) % 7 - 3).astype(np.float32)
    jitter_v = ((i * 37 + j * 101 + seed) % 7 - 3).astype(np.float32)
    du, dv = u - (i + 0.5) * cell - jitter_u, v - (j + 0.5) * cell - jitter_v
    radius, angle = np.hypot(du, dv), np.arctan2(dv, du)
    return radius < 7.0 * (0.55 + 0.45 * np.cos(5 * angle))


def _graphic(du: np.ndarray, dv: np.ndarray, seed: int) -> np.ndarray:
    """One large print centred on the anchor: a disc, ring, star or diamond."""
    radius, angle = np.hypot(du, dv), np.arctan2(dv, du)
    shapes = (
        radius < 17,
        (radius < 19) & (radius > 10),
        radius < 20 * (0.55 + 0.45 * np.cos(5 * angle + np.pi / 2)),
        np.abs(du) + np.abs(dv) < 19,
    )
    return shapes[seed % len(shapes)]


def _dots_or_zigzag(u: np.ndarray, v: np.ndarray, seed: int) -> np.ndarray:
    if seed % 2:
        return np.hypot(u % 12 - 6, v % 12 - 6) < 3.5
    wave = 4 * np.abs((u / 12) % 2 - 1)
    return ((v + wave) % 14) < 6


def _fabric_finish(
    texture: np.ndarray, fabric: int, u: np.ndarray, v: np.ndarray, rng: np.random.Generator
) -> np.ndarray:
    """How the fabric changes the look of the pattern."""
    u, v, name = u[..., None], v[..., None], FABRIC[fabric]
    if name == "denim":
        texture = 0.7 * texture + 0.3 * np.array((60, 90, 150), dtype=np.float32)
        return np.where(((u + v) % 6) < 2, texture * 0.8, texture)
    if name == "leather":
        shine = 120 * np.exp(-(((u % 34) - 10) ** 2) / 18)
        return texture * 0.7 + shine
    if name == "furry":
        coarse = 30 * rng.standard_normal((texture.shape[0] // 3 + 1, texture.shape[1] // 3 + 1, 1), np.float32)
        coarse = np.repeat(np.repeat(coarse, 3, axis=0), 3, axis=1)[: texture.shape[0], : texture.shape[1]]
        return texture + coarse + 12 * rng.standard_normal(texture.shape, np.float32)
    if name == "knitted":
        return np.where((u % 7) < 2.5, texture * 0.75, texture)
    if name == "chiffon":
        return texture * 0.6 + 255 * 0.4
    if name == "other":
        return texture + 10 * rng.standard_normal(texture.shape, np.float32)
    return texture


def _garment_texture(
    look: Look, garment: int, u: np.ndarray, v: np.ndarray, anchor: tuple[float, float], rng: np.random.Generator
) -> np.ndarray:
    colours = (look.upper_colours, look.lower_colours, look.outer_colours)[garment]
    texture = _pattern_texture(u, v, look.labels.pattern[garment], colours, anchor, look.texture_seed + garment)
    return _fabric_finish(texture, look.labels.fabric[garment], u, v, rng)


def _draw_body(canvas: _Canvas) -> None:
    frame, draw, look = canvas.frame, canvas.draw, canvas.look
    if look.long_hair and canvas.front:
        draw.rounded_rectangle(frame.box(-0.068, 0.04, 0.068, 0.25), radius=6, fill=look.hair)
    for leg in canvas.legs:
        draw.polygon(leg.part(frame, 0, 1), fill=look.skin)
    for arm in canvas.arms:
        draw.polygon(arm.part(frame, 0, 1), fill=look.skin)
        draw.ellipse(_circle(frame, arm.end, 0.027), fill=look.skin)
    draw.polygon(frame.poly(_TORSO), fill=look.skin)
    draw.rectangle(frame.box(-0.024, 0.11, 0.024, 0.18), fill=look.skin)
    for leg in canvas.legs:
        draw.ellipse(_circle(frame, (leg.end[0], leg.end[1] + 0.035), 0.036, squash=0.55), fill=_SHOES)


def _circle(frame: _Frame, centre: tuple[float, float], radius: float, squash: float = 1.0) -> tuple[float, ...]:
    cx, cy = frame.xy(*centre)
    r = radius * frame.height
    return (cx - r, cy - r * squash, cx + r, cy + r * squash)


def _draw_head(canvas: _Canvas) -> None:
    """Drawn after the garments: from the back, long hair falls over them and hides the face."""
    frame, draw, look = canvas.frame, canvas.draw, canvas.look
    draw.ellipse(frame.box(-0.052, 0.006, 0.052, 0.138), fill=look.hair)
    if not canvas.front:
        if look.long_hair:
            draw.rounded_rectangle(frame.box(-0.066, 0.05, 0.066, 0.26), radius=6, fill=look.hair)
        return
    draw.ellipse(frame.box(-0.046, 0.032, 0.046, 0.138), fill=look.skin)
    for x in (0.025,) if canvas.view.view == "side" else (-0.02, 0.02):
        draw.ellipse(_circle(canvas.frame, (x, 0.078), 0.008), fill=(40, 30, 30))
    mouth = [frame.xy(-0.012, 0.112), frame.xy(0.012, 0.112)]
    draw.line(mouth, fill=(150, 60, 60), width=max(1, round(frame.height / 110)))


def _draw_lower(canvas: _Canvas) -> None:
    mask, draw = canvas.mask()
    _lower_shape(canvas, draw)
    canvas.paint(mask, 1, anchor=(-0.05, 0.62))


def _lower_shape(canvas: _Canvas, draw: ImageDraw.ImageDraw) -> None:
    frame, look = canvas.frame, canvas.look
    length = look.code("lower_length")
    if look.skirt:
        hem = _SKIRT_HEM[length]
        flare = 0.105 + (hem - _WAIST) * 0.4
        draw.polygon(frame.poly([(-0.105, _WAIST), (0.105, _WAIST), (flare, hem), (-flare, hem)]), fill=255)
    else:
        draw.polygon(frame.poly([(-0.105, _WAIST), (0.105, _WAIST), (0.112, 0.56), (-0.112, 0.56)]), fill=255)
        for leg in canvas.legs:
            draw.polygon(leg.part(frame, 0, _TROUSER_REACH[length], grow=1.2), fill=255)


def _draw_upper(canvas: _Canvas) -> None:
    frame, look = canvas.frame, canvas.look
    neckline, has_outer = NECKLINE[look.code("neckline")], look.code("cardigan") == 0
    hem = 0.52 if look.code("covers_navel") else 0.38
    mask, draw = canvas.mask()
    top = 0.25 if neckline == "suspenders" else 0.168
    body = [(-0.118, top), (0.118, top), (0.098, 0.44), (0.112, hem), (-0.112, hem), (-0.098, 0.44)]
    draw.polygon(frame.poly(body), fill=255)
    if neckline == "suspenders":
        for x in (-0.07, 0.05):
            draw.rectangle(frame.box(x, 0.165, x + 0.022, 0.26), fill=255)
    if not has_outer:
        _draw_sleeves(canvas, draw)
    if look.one_piece:
        _lower_shape(canvas, draw)
    if canvas.front:
        _cut_neckline(canvas, draw, neckline)
    canvas.paint(mask, 0, anchor=(0.0, 0.31))
    if canvas.front and neckline == "lapel":
        dark = tuple(int(c * 0.6) for c in PALETTE[look.upper_colours[0]])
        for side in (-1, 1):
            flap = [(side * 0.046, 0.168), (side * 0.012, 0.27), (side * 0.085, 0.2)]
            canvas.draw.polygon(frame.poly(flap), fill=dark)


def _draw_sleeves(canvas: _Canvas, draw: ImageDraw.ImageDraw) -> None:
    reach = _SLEEVE_REACH[canvas.look.code("sleeve_length")]
    if reach:
        for arm in canvas.arms:
            draw.polygon(arm.part(canvas.frame, -0.05, reach, grow=1.25), fill=255)


def _cut_neckline(canvas: _Canvas, draw: ImageDraw.ImageDraw, neckline: str) -> None:
    """Cut the neckline out of the upper garment's mask (a standing collar adds to it instead)."""
    frame = canvas.frame
    if neckline in ("V-shape", "lapel"):
        draw.polygon(frame.poly([(-0.046, 0.166), (0.046, 0.166), (0.0, 0.275)]), fill=0)
    elif neckline == "square":
        draw.rectangle(frame.box(-0.05, 0.166, 0.05, 0.228), fill=0)
    elif neckline == "round":
        draw.ellipse(frame.box(-0.05, 0.12, 0.05, 0.215), fill=0)
    elif neckline == "standing":
        draw.rectangle(frame.box(-0.032, 0.128, 0.032, 0.18), fill=255)


def _draw_outer(canvas: _Canvas) -> None:
    frame = canvas.frame
    mask, draw = canvas.mask()
    if canvas.front:  # open at the front: two panels at the torso's sides
        left = [(-0.125, 0.165), (-0.055, 0.165), (-0.06, 0.6), (-0.135, 0.6)]
        panels = [left, [(-x, y) for x, y in left]]
    else:
        panels = [[(-0.125, 0.165), (0.125, 0.165), (0.135, 0.6), (-0.135, 0.6)]]
    for panel in panels:
        draw.polygon(frame.poly(panel), fill=255)
    _draw_sleeves(canvas, draw)
    canvas.paint(mask, 2, anchor=(-0.09, 0.33))


def _draw_accessories(canvas: _Canvas) -> None:
    frame, draw, look = canvas.frame, canvas.draw, canvas.look
    colour = PALETTE[look.accessory_colour]
    if look.code("socks") == 1:
        for leg in canvas.legs:
            draw.polygon(leg.part(frame, 0.84, 1.0, grow=1.15), fill=colour)
            draw.ellipse(_circle(frame, (leg.end[0], leg.end[1] + 0.035), 0.036, squash=0.55), fill=_SHOES)
    if look.code("waist_accessories") == 1:
        draw.rectangle(frame.box(-0.108, 0.448, 0.108, 0.49), fill=colour, outline=(30, 30, 30))
        draw.rectangle(frame.box(-0.018, 0.452, 0.018, 0.486), fill=_METAL)
    if look.code("wrist_wearing") == 1:
        draw.polygon(canvas.arms[1].part(frame, 0.8, 0.92, grow=1.4), fill=_METAL)
    if look.code("ring") == 1:
        draw.ellipse(_circle(frame, canvas.arms[0].end, 0.012), fill=_METAL)
    if look.code("neckwear") == 1:
        _draw_neckwear(canvas, colour)
    if look.code("hat") == 1:
        draw.rectangle(frame.box(-0.05, -0.012, 0.05, 0.04), fill=colour, outline=(30, 30, 30))
        draw.rectangle(frame.box(-0.09, 0.03, 0.09, 0.052), fill=colour, outline=(30, 30, 30))
    if look.code("glasses") in (1, 2) and canvas.front:
        _draw_glasses(canvas, look.code("glasses") == 2)


def _draw_neckwear(canvas: _Canvas, colour: RGB) -> None:
    frame, draw = canvas.frame, canvas.draw
    draw.rectangle(frame.box(-0.045, 0.135, 0.045, 0.185), fill=colour, outline=(30, 30, 30))
    if not canvas.front:
        return
    if canvas.look.gender == "MEN":
        tie = [(-0.016, 0.18), (0.016, 0.18), (0.024, 0.37), (0.0, 0.4), (-0.024, 0.37)]
        draw.polygon(frame.poly(tie), fill=colour)
    else:
        draw.rectangle(frame.box(0.012, 0.18, 0.045, 0.33), fill=colour)


def _draw_glasses(canvas: _Canvas, sunglasses: bool) -> None:
    frame, draw = canvas.frame, canvas.draw
    lens_fill = (20, 20, 24) if sunglasses else (200, 225, 235)
    width = max(1, round(frame.height / 60))
    eyes = (0.025,) if canvas.view.view == "side" else (-0.022, 0.022)
    for x in eyes:
        lens = frame.box(x - 0.02, 0.066, x + 0.02, 0.092)
        draw.rectangle(lens, fill=lens_fill, outline=(15, 15, 15), width=width)
    draw.line([frame.xy(-0.046, 0.072), frame.xy(0.046, 0.072)], fill=(15, 15, 15), width=width)


def render_person(look: Look, view: ViewParams, image_size: tuple[int, int] = (128, 192)) -> Image.Image:
    """Draw one view of a look: body, lower garment, upper garment, outer layer, accessories."""
    canvas = _Canvas(look, view, image_size)
    _draw_body(canvas)
    if not look.one_piece:
        _draw_lower(canvas)
    _draw_upper(canvas)
    if look.code("cardigan") == 0:
        _draw_outer(canvas)
    _draw_head(canvas)
    _draw_accessories(canvas)
    noise = 3 * canvas.rng.standard_normal((image_size[1], image_size[0], 3), np.float32)
    pixels = np.asarray(canvas.image, dtype=np.float32) + noise
    return Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8))


# ---------------------------------------------------------------- the dataset


def generate_synthetic(
    root: Path, n_items: int, seed: int, image_size: tuple[int, int] = (128, 192), jpeg_quality: int = 90
) -> SyntheticSummary:
    """Write images, captions.json and the label files under `root`; same seed, same bytes."""
    images_dir = root / IMAGES_DIR
    images_dir.mkdir(parents=True, exist_ok=True)
    captions: dict[str, str] = {}
    labels: dict[str, ImageLabels] = {}
    colours: dict[str, tuple[int, ...]] = {}
    items = draw_items(n_items, seed)
    for item in items:
        for view, name in zip(item.views, item.image_names()):
            render_person(item.look, view, image_size).save(images_dir / name, format="JPEG", quality=jpeg_quality)
            captions[name] = item.caption
            labels[name] = item.look.labels
            colours[name] = garment_colour_codes(item.look)
    text = json.dumps(captions, sort_keys=True, ensure_ascii=False)
    (root / CAPTIONS_FILE).write_text(text, encoding="utf-8")
    write_labels(root, labels)
    write_colours(root, colours)
    return SyntheticSummary(n_items=len(items), n_images=len(captions), n_captions=len(captions))
