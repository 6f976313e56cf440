"""Which filter values a text query names in words, so the detail panel can highlight them.

"denim shorts" names fabric denim, length short and category Shorts. The words are the shopper
protocol's and the training texts' (evaluate/shopper.py, data/alt_text.py) besides the value itself,
so what the page highlights is what the model was asked about.
"""

from __future__ import annotations

import re

from fashion_search.data.alt_text import CATEGORY_WORDS, TRAIN_WORDS
from fashion_search.evaluate.shopper import WORDS
from fashion_search.search.facets import Facets, value_label

EXTRA_WORDS: dict[tuple[str, str], tuple[str, ...]] = {
    ("gender", "women"): ("woman", "women's", "female"), ("gender", "men"): ("man", "men's", "male"),
    ("accessories", "eyeglasses"): ("glasses",),
}


def _value_words(facet: str, value: str) -> set[str]:
    words = {value, value_label(value), *EXTRA_WORDS.get((facet, value), ())}
    if facet == "category":
        words.update(CATEGORY_WORDS.get(value, ()))
        words.update(part.rstrip("s") for part in value.lower().split("_"))
    kind = {"accessories": "hat" if value == "hat" else "glasses"}.get(facet, facet)
    words.update(w for w in [WORDS.get(kind, {}).get(value)] if w)
    words.update(TRAIN_WORDS.get(kind, {}).get(value, ()))
    return {word.lower() for word in words if len(word) >= 3}


def named_in(query: str, facets: Facets) -> dict[str, list[str]]:
    """The facet values a query names in words ("denim shorts" names fabric denim), for the page to highlight."""
    text = query.lower()
    named: dict[str, list[str]] = {}
    for facet, values in facets.masks.items():
        for value in values:
            if any(re.search(rf"(?<![\w-]){re.escape(word)}(?:e?s)?(?![\w-])", text) for word in _value_words(facet, value)):
                named.setdefault(facet, []).append(value)
    return named
