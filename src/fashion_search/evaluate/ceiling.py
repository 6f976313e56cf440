"""What a perfect ranker could reach under each protocol, computed from the gallery (the ceiling), and what a
random order scores in expectation where that is not simply K / gallery size (chance).

A ranker sees a query's text, never which pair it came from, so queries with identical text get one
and the same ranking. When the views of a product share a caption, only min(K, n) of the n images
with that caption can be in one top K: strict text-to-image Recall@1 is bounded by unique captions /
images (140 / 516 = 0.27 on the default test split), however good the model. The bound assumes the
ranker orders the gallery as favourably as one ranking per distinct text allows (no ties within a
top K), the best any model can do; ties count against it here too.
"""

from __future__ import annotations

from collections import Counter
from math import comb

import pandas as pd


def strict_t2i_ceiling(captions: pd.Series, k: int) -> float:
    """Strict text to image: each caption's hit is its own image. The n queries sharing a text share a
    ranking, and its top k holds at most min(k, n) of their n images."""
    sizes = captions.value_counts()
    return float(sizes.clip(upper=k).sum() / len(captions))


def item_t2i_ceiling(captions: pd.Series, items: pd.Series, k: int) -> float:
    """Item level text to image: a query hits if any view of its product is in the top k. One ranking per
    text, so its top k can serve at most k of the products whose captions share that text: the k with the
    most queries."""
    hits = 0
    for _, group in pd.DataFrame({"caption": captions.values, "item": items.values}).groupby("caption"):
        per_item = sorted(Counter(group["item"]).values(), reverse=True)
        hits += sum(per_item[:k])
    return hits / len(captions)


def marqo_ceiling(captions: pd.Series, queries: list[str], k: int) -> float:
    """Marqo protocol: a unique caption is the query, every image with exactly that caption relevant, recall =
    relevant retrieved / all relevant: a top k holds at most min(k, n) of the n relevant images."""
    sizes = captions.value_counts()
    return sum(min(k, int(sizes[query])) / int(sizes[query]) for query in queries) / len(queries)



def item_i2t_ceiling(captions: pd.Series, items: pd.Series, k: int) -> float:
    """Item level image to text: the gallery is every pair's caption, a hit any caption of the query image's
    product. Identical caption texts get one score, so another product's identical caption ties with the
    right one and, ties counting against the model, comes first: the best a ranker can do is put first the
    product's caption text that the fewest other products share, and hit when fewer than k do."""
    frame = pd.DataFrame({"caption": captions.values, "item": items.values})
    per_text = frame.groupby("caption")["item"].agg(list)
    hits = 0
    for item, texts in frame.groupby("item")["caption"]:
        others = min(sum(1 for owner in per_text[text] if owner != item) for text in set(texts))
        hits += len(texts) * (others < k)  # every view of the product is a query with the same best text
    return hits / len(frame)


def random_hit_rate(relevant: int, gallery: int, k: int) -> float:
    """Chance that a random order of `gallery` images puts at least one of `relevant` in the top k:
    1 - C(N - n, k) / C(N, k)."""
    k = min(k, gallery)
    return 1.0 - comb(gallery - relevant, k) / comb(gallery, k)


def random_reciprocal_rank(relevant: int, gallery: int, k: int) -> float:
    """Expected 1 / rank of the first of `relevant` images in a random order, 0 beyond k (chance MRR@k):
    the first relevant is at rank r with probability C(N - r, n - 1) / C(N, n)."""
    total = comb(gallery, relevant)
    return sum(comb(gallery - rank, relevant - 1) / total / rank for rank in range(1, min(k, gallery) + 1))


def item_t2i_chance(items: pd.Series, k: int) -> float:
    """Item level text to image in a random order: each caption query hits when any of its product's views
    is in the top k, so a product with more views is likelier to be hit by chance than K / gallery size."""
    views = items.value_counts()
    return float(sum(count * random_hit_rate(int(count), len(items), k) for count in views) / len(items))


def marqo_chance_mrr(captions: pd.Series, queries: list[str], k: int) -> float:
    """Marqo protocol's MRR@k in a random order, from the rank of each query's first relevant image (its
    recall@k is k / N in expectation, whatever the number of relevant images)."""
    sizes, size = captions.value_counts(), len(captions)
    return sum(random_reciprocal_rank(int(sizes[query]), size, k) for query in queries) / len(queries)
