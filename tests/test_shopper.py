"""The shopper protocol: relevance bound to the garment, binding errors, families, and the measures
against a brute-force reference."""

from __future__ import annotations

import itertools
import math
import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from fashion_search.data.alt_text import alt_texts
from fashion_search.data.attributes import (COLUMNS, LOWER_TYPE_OF_CATEGORY, available_columns, image_attributes,
                                            nouns_of)
from fashion_search.data.labels import ImageLabels, write_labels
from fashion_search.data.synthetic import draw_items, generate_synthetic
from fashion_search.evaluate import shopper
from fashion_search.evaluate.shopper import Combination


def _image(category: str = "Skirts", gender: str = "women", **values: str | None) -> dict[str, str | None]:
    row: dict[str, str | None] = dict.fromkeys(COLUMNS)
    row.update({"gender": gender, "category": category, "lower_length": "medium short",
                "lower_type": LOWER_TYPE_OF_CATEGORY.get(category), **values})
    return row


def _frame(*rows: dict) -> pd.DataFrame:
    return pd.DataFrame(list(rows), columns=list(COLUMNS))


def test_floral_skirt_is_bound_to_the_skirt() -> None:
    attributes = _frame(
        _image(lower_pattern="floral", upper_pattern="pure color"),  # a floral skirt
        _image(lower_pattern="pure color", upper_pattern="floral"),  # a floral top over a plain skirt
        _image("Dresses", upper_pattern="floral", lower_pattern="floral"),  # a floral dress: not a skirt
        _image(lower_pattern="striped", upper_pattern="striped"),
        _image("Blouses_Shirts", lower_type="skirt", lower_pattern="floral"),  # a blouse over a floral skirt
    )
    floral_skirt = Combination("skirt", (("pattern", "floral"),))
    assert shopper.relevant(attributes, floral_skirt).tolist() == [True, False, False, False, True]
    assert shopper.binding_errors(attributes, floral_skirt).tolist() == [False, True, False, False, False]


def test_nouns_name_what_the_picture_shows() -> None:
    attributes = _frame(_image("Dresses", upper_colour="red", lower_colour="red"),
                        _image("Dresses", upper_colour="blue"),
                        _image("Denim", lower_length="long", lower_fabric="denim"),
                        _image("Denim", lower_length="three-point", lower_fabric="denim"))
    assert shopper.relevant(attributes, Combination("dress", (("colour", "red"),))).tolist() == [
        True, False, False, False]
    assert nouns_of(attributes) == [["dress"], ["dress"], ["top", "jeans"], ["top", "shorts"]]
    # what the picture shows: a sweater over a skirt is a top, a sweater and a skirt
    assert nouns_of(_frame(_image("Sweaters", lower_type="skirt"))) == [["top", "sweater", "skirt"]]


def test_negated_colour_needs_a_known_other_colour() -> None:
    attributes = _frame(_image(lower_colour="red"), _image(lower_colour="blue"), _image())
    not_red = Combination("skirt", (), ("colour", "red"))
    assert shopper.relevant(attributes, not_red).tolist() == [False, True, False]
    assert shopper.negation_phrasing(not_red) == "skirt that is not red"


def test_phrasings_say_every_attribute_three_ways() -> None:
    combination = Combination("dress", (("gender", "women"), ("colour", "red"), ("pattern", "floral")))
    assert shopper.phrasings(combination) == [
        "women's red floral dress", "dress for women in red with a floral print", "a woman wearing a red floral dress"]
    assert shopper.phrasings(Combination("shorts", (("fabric", "denim"),))) == [
        "denim shorts", "shorts made of denim", "someone wearing denim shorts"]


def _reference(scores: np.ndarray, relevance: np.ndarray, binding: np.ndarray, k: int, depth: int) -> dict:
    """Brute force: sort (score desc, irrelevant before relevant) with Python tuples."""
    order = sorted(range(len(scores)), key=lambda i: (-scores[i], bool(relevance[i])))
    gains = [int(relevance[i]) for i in order]
    dcg = sum(g / math.log2(rank + 2) for rank, g in enumerate(gains[:k]))
    ideal = sum(1 / math.log2(rank + 2) for rank in range(min(k, int(relevance.sum()))))
    return {f"precision_at_{k}": sum(gains[:k]) / k, f"ndcg_at_{k}": dcg / ideal if ideal else 0.0,
            f"recall_at_{depth}": sum(gains[:depth]) / max(1, int(relevance.sum())),
            f"binding_errors_at_{k}": sum(int(binding[i]) for i in order[:k]) / k}


@pytest.mark.parametrize("seed", range(8))
def test_measures_match_a_brute_force_reference_with_many_ties(seed: int) -> None:
    rng = np.random.default_rng(seed)
    scores = rng.integers(0, 5, size=120).astype(np.float32)  # few distinct values: many ties
    relevance = rng.random(120) < 0.2
    binding = ~relevance & (rng.random(120) < 0.3)
    got = shopper.query_measures(scores, relevance, binding, k=10, recall_depth=50)
    want = _reference(scores, relevance, binding, 10, 50)
    assert got == pytest.approx(want)


def test_ties_count_against_the_model() -> None:
    scores = np.zeros(30, dtype=np.float32)
    relevance = np.zeros(30, dtype=bool)
    relevance[:12] = True  # first in the gallery, but every score ties
    measures = shopper.query_measures(scores, relevance, np.zeros(30, dtype=bool))
    assert measures["precision_at_10"] == 0.0 and measures["ndcg_at_10"] == 0.0


def test_a_perfect_ranking_scores_one_and_chance_is_the_base_rate_in_expectation() -> None:
    relevance = np.zeros(60, dtype=bool)
    relevance[[3, 7, 11, 20, 31, 40, 41, 42, 50, 51, 59]] = True
    perfect = shopper.query_measures(relevance.astype(np.float32), relevance, np.zeros(60, dtype=bool))
    assert perfect["precision_at_10"] == perfect["ndcg_at_10"] == perfect["recall_at_50"] == 1.0
    rng = np.random.default_rng(0)
    draws = [shopper.query_measures(rng.permutation(60).astype(np.float32), relevance, np.zeros(60, dtype=bool))
             for _ in range(4000)]
    chance = shopper.chance_measures(int(relevance.sum()), 60)
    for name, value in chance.items():
        assert np.mean([d[name] for d in draws]) == pytest.approx(value, abs=0.01)


def test_families_keep_combinations_with_enough_relevant_images_and_sample_with_the_seed() -> None:
    rows = [_image(lower_pattern=p, lower_colour=c, lower_fabric="cotton")
            for p, c in itertools.product(("floral", "striped"), ("red", "blue", "green")) for _ in range(4)]
    attributes = _frame(*rows)
    counts = shopper.count_combinations(attributes, 2)
    assert counts[Combination("skirt", (("colour", "red"),))] == 8
    assert counts[Combination("skirt", (("pattern", "floral"),))] == 12
    families = {f.name: f for f in shopper.build_families(attributes, min_relevant=10, max_queries=50, seed=1)}
    kept = families["2_attributes"].combinations
    assert Combination("skirt", (("pattern", "floral"),)) in kept
    assert all(int(shopper.relevant(attributes, c).sum()) >= 10 for c in kept)
    assert Combination("skirt", (("colour", "red"),)) not in kept  # 8 relevant images < 10
    again = shopper.build_families(attributes, 10, 50, seed=1)
    assert [f.combinations for f in again] == [f.combinations for f in families.values()]


def _real_layout(root: Path, with_labels: bool) -> list[str]:
    """A small folder in DeepFashion-MultiModal's layout: real file names, the three real label files
    (shape, fabric, pattern), and no colour file, as the official set has none."""
    names, labels = [], {}
    for index in range(40):
        category = ("Skirts", "Dresses", "Tees_Tanks", "Shorts")[index % 4]
        name = f"WOMEN-{category}-id_{index:08d}-01_1_front.jpg"
        names.append(name)
        shape = (index % 4, index % 2, 0, index % 2, 0, 0, 0, 0, 0, 2, 1, 1)
        labels[name] = ImageLabels(shape=shape, fabric=(1, index % 2, 7), pattern=(3, index % 3, 7))
    if with_labels:
        write_labels(root, labels)
    return names


def test_real_layout_gives_no_colour_families(tmp_path: Path) -> None:
    names = _real_layout(tmp_path, with_labels=True)
    attributes = image_attributes(tmp_path, names)
    columns = available_columns(attributes)
    assert "lower_pattern" in columns and "sleeve" in columns
    assert not any(column.endswith("_colour") for column in columns)
    families = shopper.build_families(attributes, 5, 100, 0)
    texts = shopper.all_phrasings(families)
    assert texts and not any(re.search(r"\b(red|blue|black|white)\b", text) for text in texts)


def test_hub_mirror_schema_has_only_gender_and_category(tmp_path: Path) -> None:
    names = _real_layout(tmp_path, with_labels=False)  # the Hub mirror: images and captions, no label files
    attributes = image_attributes(tmp_path, names)
    assert set(available_columns(attributes)) == {"gender", "category", "lower_type"}  # all from the file name
    families = {f.name: f for f in shopper.build_families(attributes, 5, 100, 0)}
    assert "3_attributes" not in families
    assert {m[0] for c in families["2_attributes"].combinations for m in c.modifiers} == {"gender"}


@pytest.fixture(scope="module")
def small_synthetic(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("raw")
    generate_synthetic(root, n_items=60, seed=42, image_size=(32, 48))
    return root


def test_evaluation_phrasings_are_never_training_texts(small_synthetic: Path) -> None:
    names = sorted(p.name for p in (small_synthetic / "images").iterdir())
    attributes = image_attributes(small_synthetic, names)
    assert "upper_colour" in available_columns(attributes)  # the synthetic source knows colours
    _, written = alt_texts(attributes, per_image=20, seed=42)
    training = {text.text for text in written}
    families = shopper.build_families(attributes, min_relevant=2, max_queries=10_000, seed=0)
    evaluation = set(shopper.all_phrasings(families))
    assert len(training) > 500 and len(evaluation) > 200
    assert not training & evaluation
    words = {word for text in training for word in re.findall(r"[a-z-]+", text)}
    assert not words & {*shopper.SYNONYMS.values(), *shopper.UNSEEN.values()}


def test_unseen_words_are_absent_from_the_default_captions() -> None:
    captions = " ".join(item.caption for item in draw_items(700, 42)).lower()
    present = [word for word in shopper.UNSEEN.values() if re.search(rf"\b{word}\b", captions)]
    assert present == []


def test_measure_family_averages_phrasings_per_combination() -> None:
    attributes = _frame(*[_image(lower_pattern="floral") for _ in range(3)], *[_image() for _ in range(9)])
    combination = Combination("skirt", (("pattern", "floral"),))
    family = shopper.Family("2_attributes", [combination], [shopper.phrasings(combination)])
    texts, _ = family.flat()
    scores = torch.zeros(len(texts), len(attributes))
    scores[0, :3] = 1.0  # the first phrasing finds all three; the others tie everywhere: 9 misses first
    result = shopper.measure_family(family, attributes, scores)
    assert result.per_combination["precision_at_10"] == [pytest.approx((0.3 + 0.1 + 0.1) / 3)]
    assert result.base_rate == pytest.approx(3 / 12)


def test_a_combination_is_unstated_when_no_short_text_says_all_of_it_on_its_garment() -> None:
    from fashion_search.data.alt_text import AltText, stated_attributes

    columns = pd.Index(COLUMNS)
    texts = [AltText("photo of a red skirt", {"category": "Skirts", "lower_type": "skirt", "lower_colour": "red"}),
             AltText("photo of a floral top", {"upper_pattern": "floral"}),  # "top": no category stated
             AltText("pictured: a floral blouse", {"category": "Blouses_Shirts", "upper_pattern": "floral"})]
    stated = stated_attributes(texts, columns)
    family = shopper.Family("2_attributes", [Combination("skirt", (("colour", "red"),)),
                                             Combination("skirt", (("pattern", "floral"),)),  # floral said of tops
                                             Combination("top", (("pattern", "floral"),))], [["a"], ["b"], ["c"]])
    assert shopper.unstated_in_short_texts(family, stated) == [False, True, False]
    assert shopper.unstated_in_short_texts(family, None) == [False, False, False]


def test_the_unstated_and_stated_figures_split_the_family() -> None:
    from fashion_search.data.alt_text import AltText, stated_attributes

    gallery = _frame(_image(lower_colour="red"), _image(lower_pattern="floral"), _image(lower_colour="blue"))
    combinations = [Combination("skirt", (("colour", "red"),)), Combination("skirt", (("pattern", "floral"),))]
    family = shopper.Family("2_attributes", combinations, [["red skirt"], ["floral skirt"]])
    stated = stated_attributes([AltText("photo of a red skirt", {"lower_type": "skirt", "lower_colour": "red"})],
                               pd.Index(COLUMNS))
    scores = torch.tensor([[3.0, 2.0, 1.0], [3.0, 2.0, 1.0]])  # both queries put the red skirt first
    result = shopper.evaluate_families([family], gallery, lambda texts: scores[:len(texts)], 42, gallery, stated)
    entry = result.metrics["families"]["2_attributes"]
    assert entry["unstated_in_short_texts"]["combinations"] == 1
    assert entry["stated_in_short_texts"]["combinations"] == 1
    assert entry["stated_in_short_texts"]["ndcg_at_10"] == pytest.approx(1.0)  # red skirt: its one image first
    assert entry["unstated_in_short_texts"]["ndcg_at_10"] < 1.0  # floral skirt: its image second
    assert "unseen_in_training" not in entry  # the training images show both
