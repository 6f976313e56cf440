"""Chunked ranks, top-k, re-ranking and Recall@K, proven against a plain-Python full-matrix reference."""

from __future__ import annotations

import pytest
import torch

from fashion_search.evaluate.retrieval import (
    Ranking,
    Retriever,
    direction_metrics,
    recall_at_k,
    recall_curve,
    rerank,
    reranked_ranking,
    search,
    summarise,
    target_ranks,
    top_k,
)
from fashion_search.evaluate.strict import strict_ranks
from fashion_search.models.xattn import ScorerConfig, XattnScorer

CHUNK_SIZES = [1, 3, 1000]


def full_similarity(queries: torch.Tensor, gallery: torch.Tensor) -> list[list[float]]:
    """Every query against every gallery entry, one dot product at a time, in Python floats."""
    q_rows, g_rows = queries.tolist(), gallery.tolist()
    return [[sum(a * b for a, b in zip(q, g)) for g in g_rows] for q in q_rows]


def brute_force_ranks(queries: torch.Tensor, gallery: torch.Tensor, targets: list[int]) -> list[int]:
    """Ties against the query: the number of gallery entries scoring >= the target, itself included."""
    ranks = []
    for row, target in zip(full_similarity(queries, gallery), targets):
        own = row[target]
        ranks.append(sum(1 for score in row if score >= own))
    return ranks


def brute_force_top_k(queries: torch.Tensor, gallery: torch.Tensor, k: int) -> list[list[int]]:
    return [sorted(range(len(row)), key=lambda j: -row[j])[:k] for row in full_similarity(queries, gallery)]


def random_unit(rows: int, dim: int, seed: int) -> torch.Tensor:
    x = torch.randn(rows, dim, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return x / x.norm(dim=1, keepdim=True)


@pytest.fixture
def retrieval_case() -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """23 queries, a gallery of 17, random targets (some gallery entries are the target of several)."""
    queries, gallery = random_unit(23, 12, seed=0), random_unit(17, 12, seed=1)
    targets = torch.randint(0, 17, (23,), generator=torch.Generator().manual_seed(2))
    return queries, gallery, targets


# --- target_ranks ---------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_target_ranks_match_brute_force(retrieval_case, chunk_size: int) -> None:
    queries, gallery, targets = retrieval_case
    ranks = target_ranks(queries, gallery, targets, chunk_size)
    expected = brute_force_ranks(queries, gallery, targets.tolist())
    assert ranks.dtype == torch.long
    assert ranks.tolist() == expected
    assert len(set(expected)) > 3  # the case is not degenerate


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_target_ranks_with_exact_ties_count_against_the_query(chunk_size: int) -> None:
    # Integer vectors: every dot product is exact. Gallery 0 and 1 are duplicates, so are 2 and 3.
    gallery = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 1, 0], [0, 0, 1]])
    queries = torch.tensor([[1.0, 0, 0], [1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 1, 0], [0, 0, 1]])
    targets = torch.tensor([0, 1, 3, 4, 2, 0])
    # q0, q1: their target ties with its duplicate -> 2 (whichever of the two it is)
    # q2: target 3 ties with 2 -> 2; q3: unique best -> 1
    # q4 = (1,1,0): gallery 0..3 all score 1 -> 4; q5: target 0 scores 0, as do 0..3, gallery 4 scores 1 -> 5
    expected = [2, 2, 2, 1, 4, 5]
    assert brute_force_ranks(queries, gallery, targets.tolist()) == expected
    assert target_ranks(queries, gallery, targets, chunk_size).tolist() == expected


def test_target_ranks_do_not_depend_on_gallery_order_when_tied() -> None:
    gallery = torch.tensor([[1.0, 0], [1, 0], [0, 1]])
    queries = torch.tensor([[1.0, 0], [1, 0]])
    first = target_ranks(queries, gallery, torch.tensor([0, 1]), chunk_size=2)
    swapped = target_ranks(queries, gallery[[1, 0, 2]], torch.tensor([1, 0]), chunk_size=2)
    assert first.tolist() == swapped.tolist() == [2, 2]


# --- top_k ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_top_k_is_the_k_best_best_first(retrieval_case, chunk_size: int) -> None:
    queries, gallery, _ = retrieval_case
    indices = top_k(queries, gallery, 5, chunk_size)
    assert indices.shape == (23, 5)
    assert indices.tolist() == brute_force_top_k(queries, gallery, 5)


def test_top_k_larger_than_the_gallery_returns_the_whole_gallery_ordered(retrieval_case) -> None:
    queries, gallery, _ = retrieval_case
    indices = top_k(queries, gallery, 50, chunk_size=4)
    assert indices.shape == (23, 17)
    assert indices.tolist() == brute_force_top_k(queries, gallery, 17)


# --- reranked_ranking -----------------------------------------------------------------------------

def reranked_ranks(base: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor,
                   scores: torch.Tensor) -> torch.Tensor:
    """The one-target case: relevant = the candidate that is the query's target."""
    base_ranking = Ranking(base, torch.zeros(len(base), 1, dtype=torch.long), torch.ones(len(base), dtype=torch.long))
    return reranked_ranking(base_ranking, candidates == targets.unsqueeze(1), scores).first


def test_reranked_rank_is_the_targets_place_under_the_new_scores() -> None:
    candidates = torch.tensor([[5, 3, 9], [5, 3, 9], [5, 3, 9]])
    targets = torch.tensor([3, 3, 9])
    scores = torch.tensor([[0.2, 0.9, 0.5],    # target best -> 1
                           [0.9, 0.2, 0.5],    # target worst -> 3
                           [0.1, 0.7, 0.3]])   # target 9 second -> 2
    base = torch.tensor([2, 1, 3])
    assert reranked_ranks(base, candidates, targets, scores).tolist() == [1, 3, 2]


def test_reranked_rank_ties_count_against_the_target() -> None:
    candidates = torch.tensor([[5, 3, 9], [5, 3, 9]])
    targets = torch.tensor([3, 5])
    scores = torch.tensor([[0.5, 0.5, 0.1], [0.4, 0.4, 0.4]])
    assert reranked_ranks(torch.tensor([1, 1]), candidates, targets, scores).tolist() == [2, 3]


def test_reranked_rank_of_a_target_not_retrieved_is_below_all_k() -> None:
    candidates = torch.tensor([[5, 3, 9], [5, 3, 9], [5, 3, 9]])
    targets = torch.tensor([7, 7, 7])
    scores = torch.tensor([[0.1, 0.2, 0.3]] * 3)
    # A base rank inside the list would be inconsistent with the target being absent: at least k + 1.
    assert reranked_ranks(torch.tensor([2, 4, 10]), candidates, targets, scores).tolist() == [4, 4, 10]


def test_reranked_rank_with_non_finite_scores_of_other_candidates() -> None:
    candidates = torch.tensor([[5, 3], [5, 3]])
    targets = torch.tensor([3, 3])
    scores = torch.tensor([[float("-inf"), 5.0], [float("inf"), 5.0]])
    assert reranked_ranks(torch.tensor([2, 2]), candidates, targets, scores).tolist() == [1, 2]


# --- rerank ---------------------------------------------------------------------------------------

def dot_scorer(query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
    return (query * candidate).sum(dim=-1)


def target_preferring_scorer(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor):
    """Dot product, plus 100 for the true pair (found by looking the rows up)."""
    def score(query: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        query_index = (query.unsqueeze(1) == queries.unsqueeze(0)).all(-1).float().argmax(dim=1)
        gallery_index = (candidate.unsqueeze(1) == gallery.unsqueeze(0)).all(-1).float().argmax(dim=1)
        return dot_scorer(query, candidate) + 100.0 * (targets[query_index] == gallery_index)
    return score


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
def test_rerank_by_the_dot_product_reproduces_target_ranks(retrieval_case, chunk_size: int) -> None:
    queries, gallery, targets = retrieval_case
    expected = target_ranks(queries, gallery, targets, chunk_size=1000)
    ranks = rerank(queries, gallery, targets, k=5, chunk_size=chunk_size, score_pairs=dot_scorer)
    assert ranks.tolist() == expected.tolist()
    assert (expected <= 5).any() and (expected > 5).any()


@pytest.mark.parametrize("chunk_size", [1, 3, 7, 1000])
def test_rerank_with_a_scorer_that_knows_the_answer(retrieval_case, chunk_size: int) -> None:
    queries, gallery, targets = retrieval_case
    k = 5
    base = target_ranks(queries, gallery, targets, chunk_size=1000)
    scorer = target_preferring_scorer(queries, gallery, targets)
    ranks = rerank(queries, gallery, targets, k=k, chunk_size=chunk_size, score_pairs=scorer)
    retrieved = base <= k
    assert retrieved.any() and (~retrieved).any()
    assert (ranks[retrieved] == 1).all()
    # The scorer cannot rescue a target that the dual encoder did not retrieve.
    assert (ranks[~retrieved] > k).all()
    assert ranks[~retrieved].tolist() == base[~retrieved].tolist()


def test_rerank_with_k_beyond_the_gallery_reorders_everything(retrieval_case) -> None:
    queries, gallery, targets = retrieval_case
    scorer = target_preferring_scorer(queries, gallery, targets)
    ranks = rerank(queries, gallery, targets, k=100, chunk_size=8, score_pairs=scorer)
    assert ranks.tolist() == [1] * len(queries)


def test_rerank_keeps_the_scorers_precision() -> None:
    queries = torch.tensor([[1.0, 0.0]], dtype=torch.float64)
    gallery = torch.tensor([[0.9, 0.0], [0.9 + 1e-9, 0.0], [0.1, 0.0]], dtype=torch.float64)
    targets = torch.tensor([1])
    assert target_ranks(queries, gallery, targets, chunk_size=4).tolist() == [1]
    assert rerank(queries, gallery, targets, k=3, chunk_size=4, score_pairs=dot_scorer).tolist() == [1]


# --- recall_at_k, summarise -----------------------------------------------------------------------

def test_recall_at_k_hand_cases() -> None:
    ranks = torch.tensor([1, 2, 3, 10])
    assert recall_at_k(ranks, 1) == pytest.approx(0.25)
    assert recall_at_k(ranks, 2) == pytest.approx(0.5)
    assert recall_at_k(ranks, 5) == pytest.approx(0.75)
    assert recall_at_k(ranks, 9) == pytest.approx(0.75)
    assert recall_at_k(ranks, 10) == pytest.approx(1.0)
    assert recall_at_k(torch.tensor([4, 4, 4]), 3) == 0.0


def test_summarise_names_and_values() -> None:
    metrics = summarise(torch.tensor([1, 2, 3, 10]), [1, 5], "t2i")
    assert set(metrics) == {"t2i_recall_at_1", "t2i_recall_at_5", "t2i_mean_rank", "t2i_median_rank"}
    assert metrics["t2i_recall_at_1"] == pytest.approx(0.25)
    assert metrics["t2i_recall_at_5"] == pytest.approx(0.75)
    assert metrics["t2i_mean_rank"] == pytest.approx(4.0)
    assert metrics["t2i_median_rank"] == pytest.approx(2.5)
    assert all(type(value) is float for value in metrics.values())


# --- search ---------------------------------------------------------------------------------------

def test_search_returns_the_best_k_with_their_scores(retrieval_case) -> None:
    queries, gallery, _ = retrieval_case
    query = queries[4]
    indices, scores = search(query, gallery, k=4)
    assert indices.tolist() == brute_force_top_k(query.unsqueeze(0), gallery, 4)[0]
    torch.testing.assert_close(scores, gallery[indices] @ query)
    assert scores.tolist() == sorted(scores.tolist(), reverse=True)


def test_search_reorders_by_the_scorer(retrieval_case) -> None:
    queries, gallery, _ = retrieval_case
    query = queries[4]
    best_six = brute_force_top_k(query.unsqueeze(0), gallery, 6)[0]

    def reverse(q: torch.Tensor, candidate: torch.Tensor) -> torch.Tensor:
        return -dot_scorer(q, candidate)

    # Without rerank_k the scorer re-orders only the k retrieved.
    indices, scores = search(query, gallery, k=3, score_pairs=reverse)
    assert indices.tolist() == best_six[:3][::-1]
    torch.testing.assert_close(scores, -(gallery[indices] @ query))
    # With rerank_k the scorer sees the top rerank_k and the best k of its order come back.
    indices, _ = search(query, gallery, k=2, score_pairs=reverse, rerank_k=6)
    assert indices.tolist() == [best_six[5], best_six[4]]


# --- strict protocol ------------------------------------------------------------------------------

def distinct_captions(n: int) -> list[str]:
    """One caption string per pair: strict image to text then ranks every pair's caption."""
    return [f"caption {i}" for i in range(n)]


@pytest.mark.parametrize("chunk_size", CHUNK_SIZES)
def test_strict_ranks_both_directions_match_brute_force(chunk_size: int) -> None:
    images, texts = random_unit(19, 10, seed=3), random_unit(19, 10, seed=4)
    ranks = strict_ranks(images, texts, distinct_captions(19), Retriever(chunk_size))
    own = list(range(19))
    assert ranks["t2i"].tolist() == brute_force_ranks(texts, images, own)
    assert ranks["i2t"].tolist() == brute_force_ranks(images, texts, own)
    assert ranks["t2i"].tolist() != ranks["i2t"].tolist()


def test_strict_ranks_directions_hand_case() -> None:
    # Two identical images, two different captions: t2i ties (rank 2 each); i2t separates them.
    images = torch.tensor([[1.0, 0.0], [1.0, 0.0]])
    texts = torch.tensor([[1.0, 0.0], [0.0, 1.0]])
    ranks = strict_ranks(images, texts, ["a", "b"], Retriever(chunk_size=1))
    assert ranks["t2i"].tolist() == [2, 2]
    assert ranks["i2t"].tolist() == [1, 2]


def test_strict_ranks_with_an_untrained_scorer_equal_the_dual_encoder() -> None:
    images, texts = random_unit(15, 32, seed=5).float(), random_unit(15, 32, seed=6).float()
    torch.manual_seed(0)
    scorer = XattnScorer(ScorerConfig(dim=32, layers=1, heads=4, dropout=0.0)).eval()
    plain = strict_ranks(images, texts, distinct_captions(15), Retriever(chunk_size=4))
    reranked = strict_ranks(images, texts, distinct_captions(15), Retriever(chunk_size=4, scorer=scorer, rerank_k=15))
    assert reranked["t2i"].tolist() == plain["t2i"].tolist()
    assert reranked["i2t"].tolist() == plain["i2t"].tolist()


def test_strict_ranks_call_the_scorer_with_images_first() -> None:
    images, texts = random_unit(6, 4, seed=7).float(), random_unit(6, 4, seed=8).float()
    calls = []

    def scorer(image: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        calls.append((image, text))
        return (image * text).sum(dim=-1)

    strict_ranks(images, texts, distinct_captions(6), Retriever(chunk_size=6, scorer=scorer, rerank_k=3))
    assert calls
    for image, text in calls:
        assert (image.unsqueeze(1) == images.unsqueeze(0)).all(-1).any(1).all()
        assert (text.unsqueeze(1) == texts.unsqueeze(0)).all(-1).any(1).all()


def test_direction_metrics_names_both_directions() -> None:
    ranks = {"t2i": torch.tensor([1, 2, 3, 10]), "i2t": torch.tensor([1, 1, 2, 2])}
    metrics = direction_metrics(ranks, (k for k in [1, 5]))  # a generator: used for both directions
    assert set(metrics) == {f"{d}_{name}" for d in ("t2i", "i2t")
                            for name in ("recall_at_1", "recall_at_5", "mean_rank", "median_rank")}
    assert metrics["t2i_median_rank"] == pytest.approx(2.5)
    assert metrics["i2t_recall_at_1"] == pytest.approx(0.5)
    assert metrics["i2t_recall_at_5"] == pytest.approx(1.0)
    assert metrics["i2t_mean_rank"] == pytest.approx(1.5)


def test_recall_curve() -> None:
    curve = recall_curve(torch.tensor([1, 2, 3, 10]), max_k=4)
    assert curve == pytest.approx([0.25, 0.5, 0.75, 0.75])
    assert len(recall_curve(torch.tensor([1, 2]), max_k=50)) == 50
    assert recall_curve(torch.tensor([1, 2]), max_k=50)[-1] == 1.0
