"""What each synthetic item is: its labels (in the real set's codes), colours, body and camera views.

Labels are drawn with frequencies that depend on the category, and colours only where the
fabric allows them, so the captions and the pictures describe things that occur."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from fashion_search.data.labels import FABRIC, NECKLINE, PATTERN, SHAPE_COLUMNS, ImageLabels
from fashion_search.data.layout import VIEWS

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


def draw_views(rng: np.random.Generator) -> tuple[ViewParams, ...]:
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
