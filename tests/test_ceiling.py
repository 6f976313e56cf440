"""The ceilings against an exhaustive search over every top k a ranker could return for each distinct text."""

from __future__ import annotations

import itertools
import random

import pandas as pd
import pytest

from fashion_search.data.pairs import caption_sharing
from fashion_search.evaluate.ceiling import item_i2t_ceiling, item_t2i_ceiling, marqo_ceiling, strict_t2i_ceiling


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
