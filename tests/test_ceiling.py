"""The ceilings against an exhaustive search over every top k a ranker could return for each distinct text."""

from __future__ import annotations

import itertools
import random

import pandas as pd
import pytest

from fashion_search.data.pairs import caption_sharing
from fashion_search.evaluate.ceiling import (item_i2t_ceiling, item_t2i_ceiling, item_t2i_chance, marqo_ceiling,
                                            marqo_chance_mrr, random_hit_rate, random_reciprocal_rank,
                                            strict_t2i_ceiling)
from fashion_search.evaluate.galleries import small_galleries, small_gallery_t2i_ceiling


def _best_hits(pairs: pd.DataFrame, k: int, hit) -> float:
    """Every query text gets one ranking; try every set of k images as its top k and keep the best."""
    total = 0
    for _, group in pairs.groupby("caption"):
        best = 0
        for top in itertools.combinations(range(len(pairs)), min(k, len(pairs))):
            best = max(best, sum(hit(query, pairs.iloc[list(top)]) for _, query in group.iterrows()))
        total += best
    return total / len(pairs)


def _best_i2t_hits(pairs: pd.DataFrame, k: int) -> float:
    """Item image to text: every order of the distinct caption texts (identical texts tie), ties against the model."""
    texts = sorted(set(pairs["caption"]))
    hits = 0
    for _, query in pairs.iterrows():
        relevant = set(pairs.loc[pairs["item_id"] == query["item_id"], "caption"])
        best = False
        for order in itertools.permutations(texts):
            rank = 0
            for text in order:  # a tied group: its irrelevant entries are counted before any relevant one
                entries = pairs[pairs["caption"] == text]
                if text in relevant:
                    rank += int((entries["item_id"] != query["item_id"]).sum()) + 1
                    break
                rank += len(entries)
            best = best or rank <= k
        hits += best
    return hits / len(pairs)


def _gallery(seed: int) -> pd.DataFrame:
    rng = random.Random(seed)
    rows = []
    for item in range(rng.randint(2, 4)):
        caption = rng.choice(["a", "b", "c"])  # products may share a caption text, as on the real data
        # views usually share their product's caption; now and then one has its own (as on the real data)
        rows += [{"item_id": f"i{item}", "caption": caption if rng.random() < 0.7 else rng.choice("abcd")}
                 for _ in range(rng.randint(1, 3))]
    return pd.DataFrame(rows).reset_index(names="image")


@pytest.mark.parametrize("seed", range(16))
@pytest.mark.parametrize("k", [1, 2, 3])
def test_ceilings_equal_the_best_any_ranking_per_text_can_do(seed: int, k: int) -> None:
    pairs = _gallery(seed)
    strict = _best_hits(pairs, k, lambda query, top: query["image"] in set(top["image"]))
    item = _best_hits(pairs, k, lambda query, top: query["item_id"] in set(top["item_id"]))
    assert strict_t2i_ceiling(pairs["caption"], k) == pytest.approx(strict)
    assert item_t2i_ceiling(pairs["caption"], pairs["item_id"], k) == pytest.approx(item)
    assert item_i2t_ceiling(pairs["caption"], pairs["item_id"], k) == pytest.approx(_best_i2t_hits(pairs, k))


def test_the_default_split_bound_is_unique_captions_over_images() -> None:
    """The issue's example: strict Recall@1 is at most unique captions / images when views share a caption."""
    captions = pd.Series(["red dress"] * 3 + ["blue jeans"] * 2 + ["hat"])
    assert strict_t2i_ceiling(captions, 1) == pytest.approx(3 / 6)
    assert strict_t2i_ceiling(captions, 2) == pytest.approx(5 / 6)
    assert strict_t2i_ceiling(captions, 3) == 1.0
    # Marqo: "red dress" has 3 relevant images, so its recall@1 is at most 1/3
    assert marqo_ceiling(captions, ["red dress", "hat"], 1) == pytest.approx((1 / 3 + 1) / 2)
    assert caption_sharing(captions) == {"unique_captions": 3, "images_per_caption": {"1": 1, "2": 1, "3": 1}}


def _every_order_mean(n: int, relevant: set[int], k: int, measure) -> float:
    """The mean of `measure(ranks of the relevant)` over every order of n images (exhaustive, small n)."""
    values = [measure(sorted(order.index(r) + 1 for r in relevant)) for order in itertools.permutations(range(n))]
    return sum(values) / len(values)


@pytest.mark.parametrize("n, relevant, k", [(6, 1, 1), (6, 2, 3), (7, 3, 2), (5, 5, 2), (6, 2, 10)])
def test_random_hit_rate_and_reciprocal_rank_equal_every_order_averaged(n: int, relevant: int, k: int) -> None:
    chosen = set(range(relevant))
    hit = _every_order_mean(n, chosen, k, lambda ranks: float(ranks[0] <= k))
    reciprocal = _every_order_mean(n, chosen, k, lambda ranks: 1.0 / ranks[0] if ranks[0] <= k else 0.0)
    assert random_hit_rate(relevant, n, k) == pytest.approx(hit)
    assert random_reciprocal_rank(relevant, n, k) == pytest.approx(reciprocal)


def test_item_chance_weighs_each_caption_query_by_its_products_views() -> None:
    items = pd.Series(["a", "a", "a", "b", "c", "d"])  # a: 3 views, three queries; b, c, d: one each
    expected = (3 * random_hit_rate(3, 6, 2) + 3 * random_hit_rate(1, 6, 2)) / 6
    assert item_t2i_chance(items, 2) == pytest.approx(expected)
    assert item_t2i_chance(items, 2) > 2 / 6  # above K / N: more views, more chances
    assert item_t2i_chance(pd.Series(list("abcdef")), 2) == pytest.approx(2 / 6)  # one view each: K / N


def test_marqo_chance_mrr_averages_the_queries() -> None:
    captions = pd.Series(["x", "x", "y", "z", "z", "z"])
    expected = (random_reciprocal_rank(2, 6, 10) + random_reciprocal_rank(3, 6, 10)) / 2
    assert marqo_chance_mrr(captions, ["x", "z"], 10) == pytest.approx(expected)


def test_small_gallery_ceiling_is_each_draws_strict_ceiling() -> None:
    captions = ["p", "p", "p", "q", "r", "r", "s", "t"]
    ceiling = small_gallery_t2i_ceiling(captions, 4, 3, 42, [1, 2])
    expected = {1: [], 2: []}
    for members in small_galleries(len(captions), 4, 3, 42):
        gallery = pd.Series([captions[i] for i in members.tolist()])
        for k in expected:
            expected[k].append(strict_t2i_ceiling(gallery, k))
    assert ceiling == {k: pytest.approx(sum(v) / len(v)) for k, v in expected.items()}
    assert ceiling[1] < 1.0  # a draw that holds two views of "p" or "r" cannot reach 1
