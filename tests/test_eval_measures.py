"""Every measure on hand-built cases with known answers, and chunked = a full-matrix reference.

The reference ranks in plain Python by sorting each query's whole gallery, ties put
irrelevant entries first, and reads the answers off the sorted list: a different
route from the chunked code's counting, so agreement means something.
"""

from __future__ import annotations

import pandas as pd
import pytest
import torch

from fashion_search.config import EvaluateSettings
from fashion_search.evaluate.galleries import small_gallery_i2t_chance, small_gallery_ranks
from fashion_search.evaluate.item import group_codes, item_ranks
from fashion_search.evaluate.marqo import MARQO_KS, marqo_metrics, marqo_queries, marqo_ranking
from fashion_search.evaluate.measures import measure
from fashion_search.evaluate.retrieval import Ranking, Retriever, direction_metrics, group_ranks
from fashion_search.evaluate.strict import strict_ranks

CHUNK_SIZES = [1, 3, 1000]


# --- the reference --------------------------------------------------------------------------------

def worst_case_order(scores: list[float], relevant: list[bool]) -> list[bool]:
    """Relevance of the gallery sorted best first, irrelevant entries first among equal scores."""
    order = sorted(range(len(scores)), key=lambda j: (-scores[j], relevant[j]))
    return [relevant[j] for j in order]


def reference_ranking(queries: torch.Tensor, gallery: torch.Tensor, query_groups: list[int],
                      gallery_groups: list[int], ks: list[int]) -> tuple[list[int], list[list[int]], list[int]]:
    """(first relevant position, relevant within each k, relevant count) per query, from the full matrix."""
    firsts, hits, counts = [], [], []
    for q, group in zip(queries.tolist(), query_groups):
        scores = [sum(a * b for a, b in zip(q, g)) for g in gallery.tolist()]
        ordered = worst_case_order(scores, [other == group for other in gallery_groups])
        firsts.append(ordered.index(True) + 1)
        hits.append([sum(ordered[:k]) for k in ks])
        counts.append(sum(ordered))
    return firsts, hits, counts


def reference_recall(firsts: list[int], k: int) -> float:
    return sum(1 for rank in firsts if rank <= k) / len(firsts)


def random_unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    x = torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


def tied_vectors(rows: int, seed: int) -> torch.Tensor:
    """Small integer vectors: many exact ties, every dot product exact."""
    return torch.randint(0, 2, (rows, 3), generator=torch.Generator().manual_seed(seed)).double()


def assert_ranking(ranking: Ranking, expected: tuple[list[int], list[list[int]], list[int]]) -> None:
    firsts, hits, counts = expected
    assert ranking.first.tolist() == firsts
    assert ranking.hits.tolist() == hits
    assert ranking.relevant.tolist() == counts


# --- the chunked ranking against the reference ----------------------------------------------------

@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
@pytest.mark.parametrize("vectors", ["random", "tied"])
def test_group_ranks_match_the_full_matrix_reference(chunk_size: int, vectors: str) -> None:
    make = (lambda rows, seed: random_unit(rows, 8, seed)) if vectors == "random" else tied_vectors
    queries, gallery = make(21, 0), make(16, 1)
    gallery_groups = torch.randint(0, 6, (16,), generator=torch.Generator().manual_seed(2))
    query_groups = gallery_groups[torch.randint(0, 16, (21,), generator=torch.Generator().manual_seed(3))]
    ks = [1, 2, 5, 16, 40]
    ranking = group_ranks(queries, gallery, query_groups, gallery_groups, chunk_size, ks)
    assert_ranking(ranking, reference_ranking(queries, gallery, query_groups.tolist(), gallery_groups.tolist(), ks))
    assert len(set(ranking.first.tolist())) > 2 and (ranking.relevant > 1).any()


def test_ties_count_against_the_query_for_first_rank_and_hits() -> None:
    # Gallery scores for the one query: 2 (irrelevant), 1 (relevant), 1 (irrelevant), 1 (relevant), 0 (relevant).
    gallery = torch.tensor([[2.0], [1.0], [1.0], [1.0], [0.0]])
    groups = torch.tensor([9, 7, 9, 7, 7])
    ranking = group_ranks(torch.tensor([[1.0]]), gallery, torch.tensor([7]), groups, 4, ks=[1, 2, 3, 4, 5])
    # Worst order: 2(irr), 1(irr), 1(rel), 1(rel), 0(rel): first relevant at 3.
    assert ranking.first.tolist() == [3]
    assert ranking.hits.tolist() == [[0, 0, 1, 2, 3]]
    assert ranking.relevant.tolist() == [3]


# --- strict ---------------------------------------------------------------------------------------

def shared_captions(n: int, distinct: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Captions shared as a product's views share one, embedded identically when identical."""
    captions = [f"caption {i % distinct}" for i in range(n)]
    texts = tied_vectors(distinct, seed)
    return texts[[i % distinct for i in range(n)]], captions


def reference_strict_i2t(images: torch.Tensor, texts: torch.Tensor, captions: list[str]) -> list[int]:
    """Each image against the distinct caption strings (first occurrence of each); the hit is its own caption."""
    distinct = list(dict.fromkeys(captions))
    gallery = texts[[captions.index(caption) for caption in distinct]]
    return reference_ranking(images, gallery, [distinct.index(c) for c in captions], list(range(len(distinct))), [])[0]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_strict_ranks_match_the_reference_with_ties(chunk_size: int) -> None:
    images = tied_vectors(14, 4)
    texts, captions = shared_captions(14, 5, seed=5)
    own = list(range(14))
    ranks = strict_ranks(images, texts, captions, Retriever(chunk_size))
    assert ranks["t2i"].tolist() == reference_ranking(texts, images, own, own, [])[0]
    assert ranks["i2t"].tolist() == reference_strict_i2t(images, texts, captions)


def test_strict_image_to_text_finds_a_caption_its_other_views_share() -> None:
    # Two views of one product share caption "x"; a third image has "y". Ranking one caption per pair put
    # the view's own copy of "x" behind the other copy (an identical score, counted against the query):
    # R@1 was 0 by construction. Among the distinct captions, "x" is one entry and comes first.
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    texts = torch.tensor([[1.0, 0.0], [1.0, 0.0], [0.0, 1.0]])
    pairs = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "item_id": ["p", "p", "q"],
                          "caption": ["x", "x", "y"]})
    ranks = strict_ranks(images, texts, pairs["caption"].tolist(), Retriever(chunk_size=2))
    assert ranks["i2t"].tolist() == [1, 1, 1]
    assert ranks["t2i"].tolist() == [2, 2, 1]  # text to image: the other view still ties with the own image
    metrics = measure(images, texts, pairs, Retriever(2), settings(2), seed=42, protocols=["strict"]).metrics
    assert metrics["strict"]["i2t_recall_at_1"] == 1.0


# --- item level -----------------------------------------------------------------------------------

def several_views_case() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Item A has three views, item B one. Caption 0 is nearest another view of A, not its own image."""
    images = torch.tensor([[0.0, 1], [1, 0], [0, 1], [1, 1]])
    texts = torch.tensor([[1.0, 0], [1, 0], [0, 1], [1, 1]])
    return images, texts, ["A", "A", "A", "B"]


@pytest.mark.parametrize("chunk_size", [1, 2, 100])
def test_item_level_counts_any_view_of_the_product(chunk_size: int) -> None:
    images, texts, items = several_views_case()
    strict = strict_ranks(images, texts, ["a", "b", "c", "d"], Retriever(chunk_size))
    item = item_ranks(images, texts, items, Retriever(chunk_size))
    # t2i, caption 0 = (1,0): images score 0,1,0,1; its own image ties with two others and B -> strict 4;
    # the best view of A (image 1) ties with B's image only -> item 2.
    assert strict["t2i"].tolist() == [4, 2, 3, 1]
    assert item["t2i"].tolist() == [2, 2, 2, 1]
    assert strict["i2t"].tolist() == [4, 3, 2, 1]
    assert item["i2t"].tolist() == [2, 2, 2, 1]
    assert direction_metrics(item, [1])["t2i_recall_at_1"] == pytest.approx(0.25)


def test_item_level_equals_strict_when_every_item_has_one_view() -> None:
    images, texts = random_unit(9, 5, seed=6), random_unit(9, 5, seed=7)
    retriever = Retriever(4)
    item = item_ranks(images, texts, [f"item{i}" for i in range(9)], retriever)
    strict = strict_ranks(images, texts, [f"caption{i}" for i in range(9)], retriever)
    assert {d: r.tolist() for d, r in item.items()} == {d: r.tolist() for d, r in strict.items()}


def test_group_codes_are_equal_for_equal_strings() -> None:
    assert group_codes(["b", "a", "b", "c"]).tolist() == [1, 0, 1, 2]


# --- Marqo protocol -------------------------------------------------------------------------------

def duplicate_captions_case() -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """Three images captioned 'red', one 'blue'. Images are one-hot, so a text's scores are its own entries."""
    images = torch.eye(4)
    red, blue = [0.9, 0.1, 0.5, 0.8], [0.7, 0.0, 0.6, 0.1]
    texts = torch.tensor([red, red, blue, red])
    return images, texts, ["red", "red", "blue", "red"]


def test_marqo_queries_are_unique_captions_sampled_with_a_seed() -> None:
    captions = ["c", "a", "b", "a", "e", "d", "c"]
    assert marqo_queries(captions, 10, seed=42).tolist() == [1, 2, 0, 5, 4]  # a, b, c, d, e: first rows
    sampled = marqo_queries(captions, 3, seed=42)
    assert len(sampled) == 3 and set(sampled) <= {1, 2, 0, 5, 4}
    assert sampled.tolist() == marqo_queries(captions, 3, seed=42).tolist()
    assert [captions[row] for row in sampled] == sorted(captions[row] for row in sampled)


@pytest.mark.parametrize("chunk_size", [1, 100])
def test_marqo_metrics_on_duplicate_captions(chunk_size: int) -> None:
    images, texts, captions = duplicate_captions_case()
    ranking = marqo_ranking(images, texts, captions, 2000, seed=42, retriever=Retriever(chunk_size))
    # Queries in caption order: 'blue' (row 2), 'red' (row 0).
    # blue: image 2 (its only relevant) is second -> R@1 0, R@10 1, RR 1/2.
    # red: order 0 (0.9), 3 (0.8), 2 (0.5), 1 (0.1); relevant 0, 1, 3 -> R@1 1/3, R@10 3/3, RR 1.
    assert ranking.first.tolist() == [2, 1]
    assert ranking.hits.tolist() == [[0, 1], [1, 3]]
    metrics = marqo_metrics(ranking)
    assert metrics["recall_at_1"] == pytest.approx((0 + 1 / 3) / 2)
    assert metrics["recall_at_10"] == pytest.approx(1.0)
    assert metrics["mrr_at_10"] == pytest.approx((0.5 + 1) / 2)
    assert metrics["avg_recall"] == pytest.approx((1 / 6 + 1) / 2)
    assert metrics["queries"] == 2
    assert "recall_at_10_low" not in metrics  # no seed, no interval
    bounded = marqo_metrics(ranking, seed=42)
    # both queries have recall@10 1.0: every resample's mean is 1.0
    assert bounded["recall_at_10_low"] == bounded["recall_at_10_high"] == pytest.approx(1.0)
    assert {key: bounded[key] for key in metrics} == metrics


def test_marqo_ties_count_against_the_query() -> None:
    images = torch.eye(3)
    texts = torch.tensor([[1.0, 1.0, 1.0]] * 3)  # every image ties
    ranking = marqo_ranking(images, texts, ["red", "red", "blue"], 2000, seed=42, retriever=Retriever(8))
    # blue: two irrelevant first -> rank 3; red: one irrelevant first -> rank 2, R@1 0.
    assert ranking.first.tolist() == [3, 2]
    metrics = marqo_metrics(ranking)
    assert metrics["recall_at_1"] == 0.0
    assert metrics["mrr_at_10"] == pytest.approx((1 / 3 + 1 / 2) / 2)


def test_marqo_mrr_is_zero_beyond_ten() -> None:
    ranking = Ranking(torch.tensor([1, 10, 11]), torch.tensor([[1, 1], [0, 1], [0, 0]]), torch.tensor([1, 1, 2]))
    metrics = marqo_metrics(ranking)
    assert metrics["mrr_at_10"] == pytest.approx((1 + 0.1 + 0) / 3)
    assert metrics["recall_at_10"] == pytest.approx(2 / 3)
    assert MARQO_KS == (1, 10)


# --- small galleries ------------------------------------------------------------------------------

def reference_gallery_ranks(images: torch.Tensor, texts: torch.Tensor, captions: list[str], size: int, draws: int,
                            seed: int) -> dict[str, list[int]]:
    generator = torch.Generator().manual_seed(seed)
    ranks: dict[str, list[int]] = {"t2i": [], "i2t": []}
    for _ in range(draws):
        order = torch.randperm(len(images), generator=generator).tolist()
        for start in range(0, len(order) - size + 1, size):
            members = order[start:start + size]
            own = list(range(size))
            ranks["t2i"] += reference_ranking(texts[members], images[members], own, own, [])[0]
            ranks["i2t"] += reference_strict_i2t(images[members], texts[members], [captions[i] for i in members])
    return ranks


@pytest.mark.parametrize("chunk_size", [1, 3, 1000])
def test_small_gallery_ranks_match_the_reference(chunk_size: int) -> None:
    images = tied_vectors(11, 8)
    texts, captions = shared_captions(11, 6, seed=9)
    ranks = small_gallery_ranks(images, texts, captions, size=3, draws=4, seed=42, retriever=Retriever(chunk_size))
    expected = reference_gallery_ranks(images, texts, captions, 3, 4, 42)
    assert {d: r.tolist() for d, r in ranks.items()} == expected
    assert len(expected["t2i"]) == 4 * 9  # 11 pairs: three galleries of 3 per draw, 2 sit out
    assert max(expected["t2i"]) <= 3


def test_small_gallery_image_to_text_chance_counts_the_distinct_captions() -> None:
    # Six pairs, two captions: any gallery of 3 holds 1 or 2 distinct captions, so chance R@1 is above 1/3.
    captions = ["x", "x", "x", "y", "y", "y"]
    chance = small_gallery_i2t_chance(captions, size=3, draws=5, seed=42, ks=[1, 2])
    assert 1 / 2 <= chance[1] <= 1.0 and chance[2] == 1.0
    assert small_gallery_i2t_chance([f"c{i}" for i in range(6)], 3, 5, 42, [1, 2]) == {1: 1 / 3, 2: 2 / 3}


def test_small_gallery_is_easier_than_the_whole_set_and_one_gallery_is_strict() -> None:
    images, texts = random_unit(40, 6, seed=10), random_unit(40, 6, seed=11)
    captions = [f"caption{i}" for i in range(40)]
    retriever = Retriever(16)
    whole = strict_ranks(images, texts, captions, retriever)
    same_size = small_gallery_ranks(images, texts, captions, size=40, draws=2, seed=1, retriever=retriever)
    assert sorted(same_size["t2i"].tolist()) == sorted(whole["t2i"].tolist() * 2)
    small = small_gallery_ranks(images, texts, captions, size=4, draws=5, seed=1, retriever=retriever)
    assert small["t2i"].float().mean() < whole["t2i"].float().mean()


# --- re-ranking with groups -----------------------------------------------------------------------

def dot_scorer(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
    return (image * text).sum(dim=-1)


@pytest.mark.parametrize("chunk_size", [1, 4, 1000])
def test_reranking_by_the_dot_product_reproduces_the_dual_encoder(chunk_size: int) -> None:
    images, texts = random_unit(13, 6, seed=12), random_unit(13, 6, seed=13)
    groups = torch.tensor([0, 0, 1, 1, 1, 2, 3, 3, 4, 5, 5, 5, 5])
    ks = [1, 3, 5, 10]
    plain = Retriever(chunk_size)
    reranked = Retriever(chunk_size, scorer=dot_scorer, rerank_k=4)  # ks beyond k: the dual encoder's order
    for direction in ("t2i", "i2t"):
        expected = plain.rank(direction, images, texts, groups, groups, ks)
        got = reranked.rank(direction, images, texts, groups, groups, ks)
        assert got.first.tolist() == expected.first.tolist()
        assert got.hits.tolist() == expected.hits.tolist()


def test_reranking_with_a_scorer_that_knows_the_answer() -> None:
    images, texts = random_unit(12, 6, seed=14), random_unit(12, 6, seed=15)
    groups = torch.tensor([0, 0, 0, 1, 1, 2, 2, 2, 2, 3, 4, 4])
    k = 5

    def knows(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        image_group = groups[(image.unsqueeze(1) == images.unsqueeze(0)).all(-1).float().argmax(dim=1)]
        text_group = groups[(text.unsqueeze(1) == texts.unsqueeze(0)).all(-1).float().argmax(dim=1)]
        return dot_scorer(image, text) + 100.0 * (image_group == text_group)

    base = Retriever(4).rank("t2i", images, texts, groups, groups, [k])
    got = Retriever(4, scorer=knows, rerank_k=k).rank("t2i", images, texts, groups, groups, [1, 2, k, 8])
    found = base.hits[:, 0] > 0
    assert found.any() and (~found).any()
    assert (got.first[found] == 1).all()
    assert (got.first[~found] == base.first[~found]).all()  # the scorer cannot rescue what was not retrieved
    assert got.hits[:, 2].tolist() == base.hits[:, 0].tolist()  # the same candidates, re-ordered
    assert got.hits[:, 1].tolist() == torch.minimum(base.hits[:, 0], torch.tensor(2)).tolist()


# --- every measure, chunked = reference -----------------------------------------------------------

def settings(chunk_size: int) -> EvaluateSettings:
    return EvaluateSettings(ks=[1, 2, 5], plot_max_k=6, chunk_size=chunk_size, batch_size=8, queries=["q"],
                            gallery_size=4, gallery_draws=3, marqo_queries=5)


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_every_measure_chunked_equals_the_full_matrix_reference(chunk_size: int) -> None:
    import pandas as pd

    images, texts = tied_vectors(18, 16), tied_vectors(18, 17)
    items = [f"item{i // 3}" for i in range(18)]             # three views per item
    captions = [f"caption{i % 7}" for i in range(18)]          # duplicate captions across items
    texts = texts[[captions.index(c) for c in captions]]       # identical captions embed identically
    pairs = pd.DataFrame({"image": [f"{i}.jpg" for i in range(18)], "item_id": items, "caption": captions})
    got = measure(images, texts, pairs, Retriever(chunk_size), settings(chunk_size), seed=42)

    own, item_codes = list(range(18)), group_codes(items).tolist()
    expected = {("strict", "i2t"): reference_strict_i2t(images, texts, captions)}  # the distinct captions
    for protocol, groups in (("strict", own), ("item", item_codes)):
        for direction, (queries, gallery) in (("t2i", (texts, images)), ("i2t", (images, texts))):
            firsts = expected.get((protocol, direction)) or reference_ranking(queries, gallery, groups, groups, [])[0]
            for k in (1, 2, 5):
                assert got.metrics[protocol][f"{direction}_recall_at_{k}"] == pytest.approx(reference_recall(firsts, k))
            assert got.curves[f"{protocol}_{direction}"] == pytest.approx([reference_recall(firsts, k) for k in range(1, 7)])

    rows = marqo_queries(captions, 5, seed=42).tolist()
    caption_codes = group_codes(captions).tolist()
    firsts, hits, counts = reference_ranking(texts[rows], images, [caption_codes[r] for r in rows], caption_codes, [1, 10])
    assert got.metrics["marqo"]["recall_at_1"] == pytest.approx(sum(h[0] / n for h, n in zip(hits, counts)) / 5)
    assert got.metrics["marqo"]["recall_at_10"] == pytest.approx(sum(h[1] / n for h, n in zip(hits, counts)) / 5)
    assert got.metrics["marqo"]["mrr_at_10"] == pytest.approx(sum(1 / f if f <= 10 else 0 for f in firsts) / 5)

    small = reference_gallery_ranks(images, texts, captions, 4, 3, 42)
    assert got.metrics["gallery_4"]["t2i_recall_at_1"] == pytest.approx(reference_recall(small["t2i"], 1))
    assert got.metrics["gallery_4"]["i2t_recall_at_5"] == pytest.approx(reference_recall(small["i2t"], 5))


def test_measure_rejects_an_unknown_protocol() -> None:
    import pandas as pd

    with pytest.raises(ValueError, match="unknown protocol"):
        measure(torch.eye(2), torch.eye(2), pd.DataFrame(), Retriever(2), settings(2), 42, ["strict", "bogus"])
