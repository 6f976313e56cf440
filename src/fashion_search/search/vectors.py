"""Nearest neighbours by inner product (cosine on unit vectors): exact matmul, or a FAISS index.

Exact search costs one (N, D) matrix-vector product per query, which is cheap
next to the text encoder up to hundreds of thousands of images; past that an
approximate FAISS index (IVF or HNSW) keeps a query in milliseconds.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

AUTO_APPROXIMATE_FROM = 100_000  # `serve.faiss: auto` stays exact below this many images
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128
IVF_MIN_PROBES = 16
IVF_PROBE_SHARE = 32  # past 16 lists probed, search 1/32 of them
TRAIN_SEED = 42


class VectorSearch(Protocol):
    def top(self, query: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        """Indices and scores of the `depth` best gallery rows for one unit query (D,), best first."""


class MatmulSearch:
    """Exact search with one matrix-vector product; the reference every FAISS kind is compared with."""

    def __init__(self, embeddings: np.ndarray) -> None:
        self.embeddings = np.ascontiguousarray(embeddings, dtype=np.float32)

    def top(self, query: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        scores = self.embeddings @ query.astype(np.float32)
        depth = min(depth, len(scores))
        best = np.argpartition(-scores, depth - 1)[:depth]
        order = best[np.argsort(-scores[best], kind="stable")]
        return order, scores[order]


class FaissSearch:
    """Search through a FAISS inner-product index (flat, IVF or HNSW)."""

    def __init__(self, index: faiss.Index) -> None:
        self.index = index

    def top(self, query: np.ndarray, depth: int) -> tuple[np.ndarray, np.ndarray]:
        scores, indices = self.index.search(query.astype(np.float32).reshape(1, -1), min(depth, self.index.ntotal))
        found = indices[0] >= 0  # approximate indices pad with -1 when a probe finds too few
        return indices[0][found], scores[0][found]


def resolve_kind(requested: str, gallery_size: int) -> str:
    """`auto` becomes exact for small galleries and HNSW (no training, good recall) for large ones."""
    if requested != "auto":
        return requested
    return "exact" if gallery_size < AUTO_APPROXIMATE_FROM else "hnsw"


def build_faiss(embeddings: np.ndarray, kind: str) -> faiss.Index:
    """A FAISS inner-product index over unit embeddings (N, D) of kind exact, ivf or hnsw."""
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    dim = vectors.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        index = _trained_ivf(vectors)
    else:
        raise ValueError(f"unknown FAISS index kind {kind!r}; expected exact, ivf or hnsw")
    index.add(vectors)
    tune(index, kind)
    return index


def _trained_ivf(vectors: np.ndarray) -> faiss.Index:
    """IVF with about 4·sqrt(N) lists, k-means trained (seeded) on the vectors themselves."""
    lists = max(1, min(int(4 * np.sqrt(len(vectors))), len(vectors) // 39))  # FAISS wants ~39 points a list
    index = faiss.IndexIVFFlat(faiss.IndexFlatIP(vectors.shape[1]), vectors.shape[1], lists,
                               faiss.METRIC_INNER_PRODUCT)
    index.cp.seed = TRAIN_SEED
    index.train(vectors)
    return index


def tune(index: faiss.Index, kind: str) -> None:
    """Search-time settings, set after every load because not every kind stores them."""
    if kind == "ivf":
        ivf = faiss.extract_index_ivf(index)
        ivf.nprobe = min(ivf.nlist, max(IVF_MIN_PROBES, ivf.nlist // IVF_PROBE_SHARE))
    elif kind == "hnsw":
        index.hnsw.efSearch = HNSW_EF_SEARCH


def write_faiss(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read_faiss(path: Path, kind: str) -> faiss.Index:
    index = faiss.read_index(str(path))
    tune(index, kind)
    return index
