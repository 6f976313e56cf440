"""Our measures against a standard IR library (ranx), and the TREC files evaluate writes read back by it.

ranx is given each ranking as an order it cannot misread: the test sorts every query's gallery itself
(plain Python, ties against the model) and hands ranx strictly decreasing scores. Agreement then checks
our chunked counting, the tie rule and every measure's definition against an independent implementation.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

ranx = pytest.importorskip("ranx")  # the `test` extra

from fashion_search.evaluate.intervals import paired_difference  # noqa: E402
from fashion_search.evaluate.marqo import marqo_metrics  # noqa: E402
from fashion_search.evaluate.retrieval import rank_block, recall_at_k  # noqa: E402
from fashion_search.evaluate.shopper import query_measures  # noqa: E402
from fashion_search.evaluate.trec import Judged, caption_judgements, run_lines, write_trec  # noqa: E402

KS = (1, 5, 10)


def tied_case(queries: int = 25, gallery: int = 30, seed: int = 0) -> tuple[torch.Tensor, np.ndarray]:
    """Scores with many exact ties (small integer vectors) and several relevant images per query."""
    generator = torch.Generator().manual_seed(seed)
    q = torch.randint(0, 3, (queries, 3), generator=generator).double()
    g = torch.randint(0, 3, (gallery, 3), generator=generator).double()
    groups = torch.randint(0, 6, (gallery,), generator=generator)
    query_groups = groups[torch.randint(0, gallery, (queries,), generator=generator)]
    return q @ g.T, (query_groups.unsqueeze(1) == groups.unsqueeze(0)).numpy()


def worst_case_run(scores: torch.Tensor, relevance: np.ndarray, optimistic: bool = False) -> dict:
    """{qid: {docid: score}} in the order ties against the model imply (or for it), as distinct scores."""
    run = {}
    for q, (row, rel) in enumerate(zip(scores.tolist(), relevance.tolist())):
        order = sorted(range(len(row)), key=lambda j: (-row[j], rel[j] != optimistic))
        run[f"q{q}"] = {f"d{j}": float(len(row) - position) for position, j in enumerate(order)}
    return run


def qrels_of(relevance: np.ndarray) -> dict:
    return {f"q{q}": {f"d{j}": 1 for j in np.flatnonzero(row)} for q, row in enumerate(relevance)}


def ranx_scores(qrels: dict, run: dict, metrics: list[str]) -> dict[str, float]:
    return {name: float(value) for name, value in ranx.evaluate(ranx.Qrels.from_dict(qrels),
                                                                ranx.Run.from_dict(run), metrics).items()}


def ours(scores: torch.Tensor, relevance: np.ndarray) -> dict[str, float]:
    """Hit rate@K, and through the Marqo measure recall@1/10 and MRR@10 (the ranking's counting rule);
    precision@10, nDCG@10 and recall@50 through the shopper measure (its full order)."""
    ranking = rank_block(scores, torch.as_tensor(relevance), (1, 10))
    marqo = marqo_metrics(ranking)
    shopper = [query_measures(row.numpy(), rel, np.zeros_like(rel)) for row, rel in zip(scores, relevance)]
    return {**{f"hit_rate@{k}": recall_at_k(ranking.first, k) for k in KS},
            "recall@1": marqo["recall_at_1"], "recall@10": marqo["recall_at_10"], "mrr@10": marqo["mrr_at_10"],
            **{f"{name}@{k}": float(np.mean([m[f"{name}_at_{k}"] for m in shopper]))
               for name, k in (("precision", 10), ("ndcg", 10), ("recall", 50))}}


def test_recall_mrr_and_ndcg_agree_with_ranx_with_ties() -> None:
    scores, relevance = tied_case()
    expected = ours(scores, relevance)
    got = ranx_scores(qrels_of(relevance), worst_case_run(scores, relevance), list(expected))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)
    # the ties matter here: ranked in the model's favour, ranx gives other numbers
    optimistic = ranx_scores(qrels_of(relevance), worst_case_run(scores, relevance, optimistic=True), list(expected))
    assert optimistic["hit_rate@1"] > got["hit_rate@1"] and optimistic["ndcg@10"] > got["ndcg@10"]


def test_recall_mrr_and_ndcg_agree_with_ranx_on_distinct_scores() -> None:
    generator = torch.Generator().manual_seed(1)
    scores = torch.randn(40, 60, generator=generator, dtype=torch.float64)
    relevance = (torch.rand(40, 60, generator=generator) < 0.1).numpy()
    relevance[:, 0] = True  # every query has something to find
    expected = ours(scores, relevance)
    got = ranx_scores(qrels_of(relevance), worst_case_run(scores, relevance), list(expected))
    assert got == pytest.approx(expected, rel=1e-12, abs=1e-12)


# --- significance: ranx's paired tests and our paired bootstrap ---------------------------------------

def one_relevant_case(queries: int = 60, gallery: int = 100) -> tuple[np.ndarray, dict]:
    """Query q's relevant image is image q."""
    relevance = np.zeros((queries, gallery), dtype=bool)
    relevance[np.arange(queries), np.arange(queries)] = True
    return relevance, qrels_of(relevance)


def per_query_hits(scores: np.ndarray, relevance: np.ndarray, k: int = 10) -> list[float]:
    ranks = [1 + int(((row >= row[rel].max()) & ~rel).sum()) for row, rel in zip(scores, relevance)]
    return [float(rank <= k) for rank in ranks]


def as_run(scores: np.ndarray, relevance: np.ndarray, name: str) -> "ranx.Run":
    run = ranx.Run.from_dict(worst_case_run(torch.as_tensor(scores), relevance))
    run.name = name
    return run


@pytest.mark.parametrize("stat_test", ["fisher", "student"])
def test_significance_agrees_with_ranx_in_clear_cases(stat_test: str) -> None:
    relevance, qrels = one_relevant_case()
    rng = np.random.default_rng(3)
    weak = rng.normal(size=relevance.shape)
    strong = weak + 3.0 * relevance  # the relevant image lifted: a large, real difference
    same = weak.copy()
    for other, differs in ((strong, True), (same, False)):
        ours_ = paired_difference(per_query_hits(other, relevance), per_query_hits(weak, relevance), seed=42)
        runs = [as_run(other, relevance, "a"), as_run(weak, relevance, "b")]
        report = ranx.compare(ranx.Qrels.from_dict(qrels), runs,
                              metrics=["hit_rate@10"], stat_test=stat_test, max_p=0.05, random_seed=42)
        theirs = report.comparisons[("a", "b")]["hit_rate@10"]
        assert ours_["excludes_0"] is differs
        assert bool(theirs["significant"]) is differs, theirs
        assert report.results["a"]["hit_rate@10"] - report.results["b"]["hit_rate@10"] == pytest.approx(ours_["mean"])


# --- the TREC files, read back by ranx --------------------------------------------------------------

def test_run_files_read_by_ranx_give_our_numbers_with_ties(tmp_path) -> None:
    scores, relevance = tied_case(seed=4)
    judged = Judged([f"q{i}" for i in range(len(scores))], ["text"] * len(scores),
                    [f"d{j}" for j in range(scores.shape[1])], relevance)
    write_trec(tmp_path / "trec", {"case": judged}, {"model": {"case": scores.float()}})
    qrels = ranx.Qrels.from_file(str(tmp_path / "trec/case/qrels.txt"), kind="trec")
    run = ranx.Run.from_file(str(tmp_path / "trec/case/model.run.gz"))
    expected = ours(scores.float().double(), relevance)
    assert {k: float(v) for k, v in ranx.evaluate(qrels, run, list(expected)).items()} == pytest.approx(
        expected, rel=1e-12, abs=1e-12)


def test_run_lines_put_relevant_images_after_tied_irrelevant_ones_and_stop_at_the_depth() -> None:
    judged = Judged(["q"], ["text"], ["a", "b", "c", "d"], np.array([[True, False, False, True]]))
    lines = run_lines(np.array([[0.5, 0.5, 0.9, 0.5]], dtype=np.float32), judged, "m", depth=3)
    assert [line.split()[2] for line in lines] == ["c", "b", "a"]
    assert [line.split()[3] for line in lines] == ["1", "2", "3"]
    written = [float(line.split()[4]) for line in lines]
    assert written[0] == pytest.approx(0.9) and written[1] == 0.5 and 0.5 - 1e-12 < written[2] < 0.5
    assert all(line.split()[1] == "Q0" and line.split()[5] == "m" for line in lines)


def test_caption_judgements_strict_is_the_own_image_item_any_view() -> None:
    pairs = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "item_id": ["p", "p", "q"],
                          "caption": ["x", "x", "y"]})
    judged = caption_judgements(pairs)
    assert judged["strict_t2i"].relevance.tolist() == np.eye(3, dtype=bool).tolist()
    assert judged["item_t2i"].relevance.tolist() == [[True, True, False], [True, True, False],
                                                     [False, False, True]]
    with pytest.raises(ValueError, match="whitespace"):
        Judged(["a query"], ["t"], ["d"], np.ones((1, 1), dtype=bool))
