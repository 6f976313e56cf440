"""bench/caption_queries.py: captions read into garments, and hand-written queries judged by them."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fashion_search.data.attributes import COLUMNS

BENCH = Path(__file__).resolve().parents[1] / "bench" / "caption_queries.py"
_spec = importlib.util.spec_from_file_location("caption_queries", BENCH)
cq = importlib.util.module_from_spec(_spec)
sys.modules["caption_queries"] = cq  # dataclasses look their module up by name
_spec.loader.exec_module(cq)

NAVY_SHIRT_WHITE_TROUSERS = (
    "The man wears a long-sleeve navy shirt with pure color patterns. The shirt is with cotton fabric. "
    "It has a lapel neckline. His white trousers are of long length, with pure color patterns. "
    "They are made of denim fabric. He wears a navy hat.")
WHITE_SHIRT_NAVY_TROUSERS = (
    "This gentleman wears a short-sleeve shirt of cotton fabric. It is white with pure color patterns and a "
    "round neckline. He pairs it with navy long pants of denim fabric and pure color patterns. "
    "There are glasses on his face.")
TEE_SKIRT_JACKET = (
    "She is wearing a long-sleeve T-shirt with black and white striped patterns. The T-shirt is made of "
    "knitted fabric. Its neckline is round. The T-shirt is cropped and she shows her navel. "
    "The lady wears a medium short skirt. The skirt is with cotton fabric and red lattice patterns. "
    "She also wears a yellow jacket of cotton fabric with pure color patterns. She wears a yellow belt. "
    "There are sunglasses on her face.")
TANK_TOP_DRESS = (
    "The lady wears a sleeveless blue tank top with floral patterns. The tank top is with denim fabric. "
    "It has a round neckline. She pairs it with a brown long skirt of chiffon fabric and pure color patterns.")
DRESS = ("The woman wears a sleeveless red and black dress with floral patterns. The dress is with chiffon "
         "fabric. It has a square neckline. The dress is of long length.")


def query(text: str) -> cq.Query:
    return next(q for q in cq.QUERIES if q.text == text)


def test_sentences_are_grouped_by_the_garment_they_name_and_pronoun_sentences_follow_theirs() -> None:
    caption = cq.parse_caption(NAVY_SHIRT_WHITE_TROUSERS)
    shirt, trousers = caption.garments
    assert (shirt.noun, trousers.noun) == ("shirt", "trousers")
    assert "lapel neckline" in shirt.text and "navy" in shirt.text and "white" not in shirt.text
    assert "denim fabric" in trousers.text and "navy" not in trousers.text
    assert caption.accessories == "he wears a navy hat."
    assert caption.gender == "men"


def test_the_longest_noun_wins_and_an_accessory_sentence_is_not_the_garments() -> None:
    caption = cq.parse_caption(TEE_SKIRT_JACKET)
    assert [g.noun for g in caption.garments] == ["t-shirt", "skirt", "jacket"]
    assert "cropped" in caption.garments[0].text
    assert "belt" not in caption.garments[2].text and "yellow belt" in caption.accessories
    assert caption.gender == "women"
    assert [g.noun for g in cq.parse_caption(TANK_TOP_DRESS).garments] == ["tank top", "skirt"]


def test_a_colour_binds_to_the_garment_its_noun_names() -> None:
    navy_trousers = query("navy trousers")
    wrong, right = cq.parse_caption(NAVY_SHIRT_WHITE_TROUSERS), cq.parse_caption(WHITE_SHIRT_NAVY_TROUSERS)
    assert not navy_trousers.relevant(wrong) and navy_trousers.binding_error(wrong)
    assert navy_trousers.relevant(right) and not navy_trousers.binding_error(right)


def test_a_colour_on_an_accessory_is_no_garment_colour() -> None:
    yellow_skirt = cq.Query("yellow skirt", cq.wearing(("skirt",), cq.colour("yellow")))
    caption = cq.parse_caption(TEE_SKIRT_JACKET)
    assert not yellow_skirt.relevant(caption)
    assert yellow_skirt.binding_error(caption)  # the jacket is yellow: a garment, not the belt, says so


def test_fabric_pattern_and_length_are_read_from_the_garments_own_sentences() -> None:
    tee_skirt_jacket, tank_top = cq.parse_caption(TEE_SKIRT_JACKET), cq.parse_caption(TANK_TOP_DRESS)
    assert query("plaid skirt").relevant(tee_skirt_jacket)
    assert query("knee-length skirt").relevant(tee_skirt_jacket)
    assert not query("long skirt").relevant(tee_skirt_jacket)  # the T-shirt is long-sleeve, the skirt is not long
    assert query("long skirt").relevant(tank_top)
    assert query("crop top").relevant(tee_skirt_jacket) and not query("crop top").relevant(tank_top)
    long_sleeve_dress = cq.parse_caption("The lady is wearing a long-sleeve dress with red pure color patterns. "
                                         "The dress is of medium short length.")
    assert not cq.Query("long dress", cq.wearing(("dress",), cq.word("long"))).relevant(long_sleeve_dress)
    assert not query("denim jacket").relevant(tee_skirt_jacket)
    assert not query("chiffon blouse").relevant(tank_top)  # chiffon skirt, and a tank top is no blouse


def test_nouns_are_the_shoppers() -> None:
    tee = cq.parse_caption(TEE_SKIRT_JACKET)
    assert not query("striped shirt").relevant(tee)  # a T-shirt is not a shirt
    assert query("tank top").relevant(cq.parse_caption(TANK_TOP_DRESS))
    assert not query("tank top").relevant(tee)
    # jeans: what the caption calls jeans, or trousers of denim, never of another fabric
    denim_pants = cq.parse_caption("He pairs it with blue long pants of denim fabric and pure color patterns.")
    cotton_pants = cq.parse_caption("He pairs it with blue long pants of cotton fabric and pure color patterns.")
    jeans = cq.parse_caption("The man wears long jeans. The jeans are with denim fabric and blue striped patterns.")
    assert query("blue jeans").relevant(denim_pants) and query("blue jeans").relevant(jeans)
    assert not query("blue jeans").relevant(cotton_pants)


def test_gender_and_accessories() -> None:
    man, woman = cq.parse_caption(NAVY_SHIRT_WHITE_TROUSERS), cq.parse_caption(TEE_SKIRT_JACKET)
    assert query("man wearing a hat").relevant(man) and not query("man wearing a hat").relevant(woman)
    assert query("woman with sunglasses").relevant(woman)
    assert not query("man with glasses").relevant(cq.parse_caption(NAVY_SHIRT_WHITE_TROUSERS))
    assert query("man with glasses").relevant(cq.parse_caption(WHITE_SHIRT_NAVY_TROUSERS))
    sunglasses_man = cq.parse_caption("He wears a short-sleeve white T-shirt with pure color patterns. "
                                      "He wears sunglasses.")
    assert not query("man with glasses").relevant(sunglasses_man)  # sunglasses are not glasses
    assert query("woman in a sleeveless dress").relevant(cq.parse_caption(DRESS))
    assert cq.gender_of("The person is wearing a ring.") is None
    assert cq.gender_of("She wears a hat. His shirt is red.") is None  # two wearers: neither gender


def test_judgements_are_one_row_per_query() -> None:
    queries = [query("navy trousers"), query("long skirt")]
    relevance, binding = cq.judgements(queries, [NAVY_SHIRT_WHITE_TROUSERS, WHITE_SHIRT_NAVY_TROUSERS, TANK_TOP_DRESS])
    assert relevance.tolist() == [[False, True, False], [False, False, True]]
    assert binding.tolist() == [[True, False, False], [False, False, False]]


def test_every_query_has_a_distinct_text() -> None:
    texts = [q.text for q in cq.QUERIES]
    assert len(texts) == len(set(texts)) >= 30


def test_ties_count_against_the_model() -> None:
    relevance = np.array([[True, False, False] + [False] * 9])
    binding = np.zeros_like(relevance)
    tied = cq.per_query(torch.zeros(1, 12), relevance, binding)
    assert tied[0]["precision_at_10"] == 0.0  # the relevant image is last among twelve equal scores


def test_protocol_phrasings_name_the_compact_template() -> None:
    attributes = pd.DataFrame([{**dict.fromkeys(COLUMNS), "category": "Denim", "gender": "women",
                                "lower_type": "trousers", "lower_length": "three-point", "lower_fabric": "denim"}])
    texts = cq.protocol_phrasings(attributes)
    assert "denim shorts" in texts and "knit sweater" not in texts


@pytest.mark.parametrize("text", [q.text for q in cq.QUERIES])
def test_each_rule_names_only_garment_nouns_the_parser_knows(text: str) -> None:
    for rule in query(text).rules:
        assert set(rule.nouns) <= {*cq.UPPER, *cq.ONE_PIECE, *cq.LOWER, *cq.OUTER}
