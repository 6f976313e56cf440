"""Ranks and hit counts, computed in chunks so memory grows with chunk × gallery, not gallery².

A query's relevant gallery entries are those that share its group id: its own
image (strict), any view of the same product (item level), any image with its
exact caption (Marqo protocol). One rule covers every measure:

Ties count against the query. Among equal scores the irrelevant entries come
first, so the rank of the best relevant entry is one more than the number of
irrelevant entries scoring at least as high as it. Identical captions embed
identically; without this rule the same scores could give different recalls
depending on the order of the gallery.

Queries and gallery are rows: unit embeddings (a tensor), or `Encoded` rows that carry each
row's token states too, for a token-level pair scorer. Retrieval reads their pooled
embeddings; a pair scorer is handed rows of the same kind.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass

import numpy as np
import torch

from fashion_search.models.clip import Encoded, vectors

Rows = torch.Tensor | Encoded
PairScorer = Callable[[Rows, Rows], torch.Tensor]  # (queries, candidates) -> one score per pair
DIRECTIONS = ("t2i", "i2t")


def query_first(scorer: Callable[[Rows, Rows], torch.Tensor], direction: str = "t2i") -> PairScorer:
    """A pair scorer called as `scorer(image, text)`, as `score_pairs(query, candidate)` for one direction."""
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
    return (lambda text, image: scorer(image, text)) if direction == "t2i" else scorer


def needs_tokens(scorer: object) -> bool:
    """Whether the rows a pair scorer sees must carry their token states (a token-level scorer, late interaction)."""
    return bool(getattr(scorer, "needs_tokens", False))


@dataclass(frozen=True)
class Ranking:
    """Where each query's relevant gallery entries landed."""

    first: torch.Tensor     # (Q,) 1-based rank of the best relevant entry
    hits: torch.Tensor      # (Q, len(ks)) relevant entries within the first k, one column per k asked for
    relevant: torch.Tensor  # (Q,) relevant entries in the whole gallery


def rank_block(scores: torch.Tensor, relevant: torch.Tensor, ks: Sequence[int] = ()) -> Ranking:
    """The tie rule, once: a block of queries (rows) against their candidates (columns)."""
    best = scores.masked_fill(~relevant, float("-inf")).amax(dim=1, keepdim=True)
    first = ((scores >= best) & ~relevant).sum(dim=1) + 1
    hits = torch.zeros(len(scores), len(ks), dtype=torch.long)
    if ks and scores.shape[1]:
        ks = [min(k, scores.shape[1]) for k in ks]
        thresholds = scores.topk(max(ks), dim=1).values
        for column, k in enumerate(ks):
            hits[:, column] = _hits_within(scores, relevant, k, thresholds[:, k - 1:k])
    return Ranking(first, hits, relevant.sum(dim=1))


def pessimistic_order(scores: np.ndarray, relevance: np.ndarray) -> np.ndarray:
    """One query's gallery indices best first under the same rule: among equal scores the irrelevant come
    first. For measures that read every position (precision, nDCG) and for the TREC run files."""
    return np.lexsort((relevance.astype(np.int8), -scores))


def _hits_within(scores: torch.Tensor, relevant: torch.Tensor, k: int, threshold: torch.Tensor) -> torch.Tensor:
    """Relevant entries in the first k when the k-th score is `threshold` and ties put the irrelevant first."""
    above = scores > threshold
    irrelevant_ties = ((scores == threshold) & ~relevant).sum(dim=1)
    slots_left_for_relevant_ties = (k - above.sum(dim=1) - irrelevant_ties).clamp(min=0)
    return (above & relevant).sum(dim=1) + slots_left_for_relevant_ties


def group_ranks(queries: torch.Tensor, gallery: torch.Tensor, query_groups: torch.Tensor,
                gallery_groups: torch.Tensor, chunk_size: int, ks: Sequence[int] = ()) -> Ranking:
    """Rank every query against the whole gallery by dot product (cosine for unit vectors)."""
    parts = []
    for start in range(0, len(queries), chunk_size):
        scores = queries[start:start + chunk_size] @ gallery.T
        relevant = query_groups[start:start + chunk_size].unsqueeze(1) == gallery_groups.unsqueeze(0)
        parts.append(rank_block(scores, relevant, ks))
    return _concat(parts)


def target_ranks(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """1-based rank of gallery[targets[q]] for each query: the case of one relevant entry each."""
    return group_ranks(queries, gallery, targets, torch.arange(len(gallery)), chunk_size).first


def top_k(queries: torch.Tensor, gallery: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Indices (Q, k) of each query's k best gallery entries, best first."""
    k = min(k, len(gallery))
    parts = [(queries[start:start + chunk_size] @ gallery.T).topk(k, dim=1).indices
             for start in range(0, len(queries), chunk_size)]
    return torch.cat(parts)


def reranked_ranking(base: Ranking, relevant: torch.Tensor, candidate_scores: torch.Tensor,
                     ks: Sequence[int] = ()) -> Ranking:
    """The ranking after a pair scorer re-orders each query's k candidates.

    `base` is the dual encoder's ranking, with hits for `ks` and then for k itself.
    Relevant candidates take their places in the new order (ties against them);
    a best relevant entry the retriever did not return stays where it was, below
    all k. Below the k candidates the dual encoder's order stands, so hits for a
    K beyond k add the dual encoder's hits between k and K.
    """
    k = relevant.shape[1]
    new = rank_block(candidate_scores, relevant, ks)
    first = torch.where(relevant.any(dim=1), new.first, base.first.clamp(min=k + 1))
    beyond = base.hits[:, :-1] - base.hits[:, -1:] + relevant.sum(dim=1, keepdim=True)
    deeper = torch.tensor([K > k for K in ks], dtype=torch.bool)
    hits = torch.where(deeper, torch.minimum(beyond, base.relevant.unsqueeze(1)), new.hits)
    return Ranking(first, hits, base.relevant)


@torch.inference_mode()
def candidate_scores(queries: Rows, gallery: Rows, k: int, chunk_size: int,
                     score_pairs: PairScorer) -> tuple[torch.Tensor, torch.Tensor]:
    """The dual encoder's top k per query (Q, k) and `score_pairs(query, candidate)` for each."""
    candidates = top_k(vectors(queries), vectors(gallery), k, chunk_size)
    k = candidates.shape[1]
    scores = torch.empty(candidates.shape, dtype=vectors(queries).dtype)
    step = max(1, chunk_size // k)
    for start in range(0, len(queries), step):
        block = candidates[start:start + step]
        query = queries[start:start + len(block)].repeat_interleave(k, dim=0)
        scores[start:start + len(block)] = score_pairs(query, gallery[block.reshape(-1)]).view(len(block), k)
    return candidates, scores


@torch.inference_mode()
def ranking_scores(queries: Rows, gallery: Rows, chunk_size: int,
                   score_pairs: PairScorer | None = None, k: int = 0) -> torch.Tensor:
    """(Q, N) scores whose order is the model's ranking of the whole gallery: dot products, and with a
    pair scorer its re-scores of the dual encoder's top k (`candidate_scores`) lifted above the rest.
    For measures that need every position (precision, nDCG) rather than one relevant entry's rank."""
    scores = vectors(queries) @ vectors(gallery).T
    if score_pairs is None or k == 0:
        return scores
    candidates, rescored = candidate_scores(queries, gallery, k, chunk_size, score_pairs)
    lift = scores.amax(dim=1, keepdim=True) - rescored.amin(dim=1, keepdim=True) + 1.0
    return scores.scatter(1, candidates, rescored + lift)


def rerank_groups(queries: Rows, gallery: Rows, query_groups: torch.Tensor,
                  gallery_groups: torch.Tensor, chunk_size: int, ks: Sequence[int],
                  candidates: torch.Tensor, scores: torch.Tensor) -> Ranking:
    """Re-ranked ranking for one relevance definition, from `candidate_scores`' output."""
    base = group_ranks(vectors(queries), vectors(gallery), query_groups, gallery_groups, chunk_size,
                       [*ks, candidates.shape[1]])
    relevant = query_groups.unsqueeze(1) == gallery_groups[candidates]
    return reranked_ranking(base, relevant, scores, ks)


def rerank(queries: Rows, gallery: Rows, targets: torch.Tensor, k: int, chunk_size: int,
           score_pairs: PairScorer) -> torch.Tensor:
    """Re-ranked rank of gallery[targets[q]] for each query: the case of one relevant entry each."""
    candidates, scores = candidate_scores(queries, gallery, k, chunk_size, score_pairs)
    return rerank_groups(queries, gallery, targets, torch.arange(len(gallery)), chunk_size, (),
                         candidates, scores).first


@dataclass(frozen=True)
class Retriever:
    """How a model ranks: dot products of unit embeddings, optionally re-ranked by a pair scorer.

    With a scorer (called as `scorer(image, text)`), the dual encoder retrieves the
    top rerank_k over the full gallery and the scorer re-orders them, as the
    search service does.
    """

    chunk_size: int
    scorer: PairScorer | None = None
    rerank_k: int = 0

    def rank(self, direction: str, images: Rows, texts: Rows, image_groups: torch.Tensor,
             text_groups: torch.Tensor, ks: Sequence[int] = ()) -> Ranking:
        """t2i: texts query the images; i2t: images query the texts. Relevant: the same group id."""
        return self.rank_groupings(direction, images, texts, {"": (image_groups, text_groups)}, ks)[""]

    def rank_groupings(self, direction: str, images: Rows, texts: Rows,
                       groupings: dict[str, tuple[torch.Tensor, torch.Tensor]],
                       ks: Sequence[int] = ()) -> dict[str, Ranking]:
        """`rank` for several relevance definitions (name -> image groups, text groups) at once.

        The pair scorer is the expensive part; its candidates and scores do not depend
        on what counts as relevant, so they are computed once for all definitions.
        """
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        score_pairs = query_first(self.scorer, direction) if self.scorer is not None else None
        t2i = direction == "t2i"
        queries, gallery = (texts, images) if t2i else (images, texts)
        groups = {name: (text_groups, image_groups) if t2i else (image_groups, text_groups)
                  for name, (image_groups, text_groups) in groupings.items()}
        if score_pairs is None:
            return {name: group_ranks(vectors(queries), vectors(gallery), *pair, self.chunk_size, ks)
                    for name, pair in groups.items()}
        candidates, scores = candidate_scores(queries, gallery, self.rerank_k, self.chunk_size, score_pairs)
        return {name: rerank_groups(queries, gallery, *pair, self.chunk_size, ks, candidates, scores)
                for name, pair in groups.items()}


def recall_at_k(ranks: torch.Tensor, k: int) -> float:
    """Share of queries with a relevant answer within the first k."""
    return float((ranks <= k).double().mean())


def recall_curve(ranks: torch.Tensor, max_k: int) -> list[float]:
    """Recall@K for K = 1..max_k, for the DVC plots."""
    return [recall_at_k(ranks, k) for k in range(1, max_k + 1)]


def summarise(ranks: torch.Tensor, ks: Iterable[int], prefix: str) -> dict[str, float]:
    """Recall@K for each K plus mean and median rank, under names MLflow accepts."""
    metrics = {f"{prefix}_recall_at_{k}": recall_at_k(ranks, k) for k in ks}
    metrics[f"{prefix}_mean_rank"] = float(ranks.double().mean())
    metrics[f"{prefix}_median_rank"] = float(np.median(ranks.numpy()))
    return metrics


def direction_metrics(ranks: dict[str, torch.Tensor], ks: Iterable[int]) -> dict[str, float]:
    """t2i_recall_at_1 ... i2t_median_rank: one summary per direction."""
    ks = list(ks)
    return {name: value for direction, r in ranks.items() for name, value in summarise(r, ks, direction).items()}


def _concat(parts: list[Ranking]) -> Ranking:
    return Ranking(*(torch.cat(column) for column in zip(*(
        (part.first, part.hits, part.relevant) for part in parts))))


@torch.inference_mode()
def search(query: Rows, gallery: Rows, k: int, score_pairs: PairScorer | None = None,
           rerank_k: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best gallery indices for one query ((D,), or one `Encoded` row) and their scores, re-ranked
    when a scorer is given."""
    depth = max(k, rerank_k) if score_pairs is not None else k
    vector = vectors(query).reshape(-1)
    candidates = top_k(vector.unsqueeze(0), vectors(gallery), depth, chunk_size=1)[0]
    if score_pairs is None:
        return candidates[:k], vectors(gallery)[candidates] @ vector
    return rerank_candidates(query, candidates, gallery[candidates], score_pairs, k)


@torch.inference_mode()
def rerank_candidates(query: Rows, candidates: torch.Tensor, candidate_embeds: Rows,
                      score_pairs: PairScorer, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One query's retrieved candidates ((D,), or one `Encoded` row) re-ordered by the pair scorer, best
    first, cut to k, with their pair scores. The sort is stable: among equal scores the retriever's order
    stands. The grid of the evaluate stage and the search service both re-rank through here."""
    repeated = query.repeat_interleave(len(candidates)) if isinstance(query, Encoded) \
        else query.expand(len(candidates), -1)
    scores = score_pairs(repeated, candidate_embeds)
    order = torch.sort(scores, descending=True, stable=True).indices
    return candidates[order][:k], scores[order][:k]
