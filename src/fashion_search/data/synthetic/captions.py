"""Captions in the real set's style, written from the labels the picture shows."""

from __future__ import annotations

import numpy as np

from fashion_search.data.labels import FABRIC, LOWER_LENGTH, NECKLINE, PATTERN, SLEEVE_LENGTH
from fashion_search.data.synthetic.looks import Look

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
