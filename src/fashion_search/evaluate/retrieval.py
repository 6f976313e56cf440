"""Ranks and Recall@K, computed in chunks so memory grows with chunk × gallery, not gallery².

Ties count against the query: the rank of the right answer is the number of
candidates scoring at least as high as it (itself included). Identical captions
embed identically, so without this rule the same scores could give different
recalls depending on the order of the gallery.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

import numpy as np
import torch

PairScorer = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def target_ranks(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor, chunk_size: int) -> torch.Tensor:
    """1-based rank of gallery[targets[q]] for each query by dot product (cosine for unit vectors)."""
    ranks = torch.empty(len(queries), dtype=torch.long)
    for start in range(0, len(queries), chunk_size):
        scores = queries[start:start + chunk_size] @ gallery.T
        target = targets[start:start + chunk_size]
        own = scores.gather(1, target.unsqueeze(1))
        ranks[start:start + chunk_size] = (scores >= own).sum(dim=1)
    return ranks


def top_k(queries: torch.Tensor, gallery: torch.Tensor, k: int, chunk_size: int) -> torch.Tensor:
    """Indices (Q, k) of each query's k best gallery entries, best first."""
    k = min(k, len(gallery))
    parts = [(queries[start:start + chunk_size] @ gallery.T).topk(k, dim=1).indices
             for start in range(0, len(queries), chunk_size)]
    return torch.cat(parts)


def reranked_ranks(base_ranks: torch.Tensor, candidates: torch.Tensor, targets: torch.Tensor,
                   candidate_scores: torch.Tensor) -> torch.Tensor:
    """Ranks after re-ordering each query's candidates by a pair scorer.

    A target among the candidates takes its place in the new order (ties against
    it); a target the retriever did not return stays where it was, below all k.
    """
    k = candidates.shape[1]
    found = candidates == targets.unsqueeze(1)
    in_list = found.any(dim=1)
    own = candidate_scores.gather(1, found.int().argmax(dim=1, keepdim=True))
    new_rank = (candidate_scores >= own).sum(dim=1)
    return torch.where(in_list, new_rank, torch.clamp(base_ranks, min=k + 1))


@torch.inference_mode()
def rerank(queries: torch.Tensor, gallery: torch.Tensor, targets: torch.Tensor, k: int, chunk_size: int,
           score_pairs: PairScorer) -> torch.Tensor:
    """Retrieve the top k with the dual encoder, re-rank them with `score_pairs(query, candidate)`."""
    base = target_ranks(queries, gallery, targets, chunk_size)
    candidates = top_k(queries, gallery, k, chunk_size)
    k = candidates.shape[1]
    scores = torch.empty(candidates.shape, dtype=queries.dtype)
    for start in range(0, len(queries), max(1, chunk_size // k)):
        block = candidates[start:start + max(1, chunk_size // k)]
        query = queries[start:start + len(block)].repeat_interleave(k, dim=0)
        scores[start:start + len(block)] = score_pairs(query, gallery[block.reshape(-1)]).view(len(block), k)
    return reranked_ranks(base, candidates, targets, scores)


def recall_at_k(ranks: torch.Tensor, k: int) -> float:
    """Share of queries whose right answer is within the first k."""
    return float((ranks <= k).float().mean())


def summarise(ranks: torch.Tensor, ks: Iterable[int], prefix: str) -> dict[str, float]:
    """Recall@K for each K plus mean and median rank, under names MLflow accepts."""
    metrics = {f"{prefix}_recall_at_{k}": recall_at_k(ranks, k) for k in ks}
    metrics[f"{prefix}_mean_rank"] = float(ranks.float().mean())
    metrics[f"{prefix}_median_rank"] = float(np.median(ranks.numpy()))
    return metrics


@torch.inference_mode()
def search(query: torch.Tensor, gallery: torch.Tensor, k: int, score_pairs: PairScorer | None = None,
           rerank_k: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """The k best gallery indices for one query (D,) and their scores, re-ranked when a scorer is given."""
    depth = max(k, rerank_k) if score_pairs is not None else k
    candidates = top_k(query.unsqueeze(0), gallery, depth, chunk_size=1)[0]
    if score_pairs is None:
        scores = gallery[candidates] @ query
    else:
        scores = score_pairs(query.expand(len(candidates), -1), gallery[candidates])
        order = torch.sort(scores, descending=True, stable=True).indices
        candidates, scores = candidates[order], scores[order]
    return candidates[:k], scores[:k]
