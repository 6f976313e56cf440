"""Nearest neighbours by inner product (cosine on unit vectors): exact matmul, or a FAISS index.

Exact search reads every float32 embedding once per query: at 50,000 × 512 that
is 100 MB and 5–30 ms on 2 cores, 15–55% of a ViT-B/32 text encoding.
`fastscan` reads 4-bit product codes instead (1/16 of the bytes, scanned with
SIMD lookup tables) and re-scores its best candidates with the float32 vectors,
so the top k keep their exact scores; it found ≥ 0.99 of the exact top 10 on
random and clustered galleries up to 1,000,000 images (bench/RESULTS.md).
HNSW and IVF stay available but lose most of the top 10 on random 512-d vectors.

A filtered search (`restricted_top`) ranks only the images the filters allow, so k results come
back whenever k are allowed: a small allowed set is scanned exactly (its rows only), a large one
through the index, over-fetched and asked again deeper until k allowed rows are found.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import faiss
import numpy as np

from fashion_search.config import ConfigError
from fashion_search.errors import DataError

AUTO_APPROXIMATE_FROM = 5_000  # `serve.faiss: auto` stays exact below this many images
FASTSCAN_DIMS_PER_CODE = 2  # one 4-bit code per 2 dimensions: 1/16 of float32
FASTSCAN_BITS = 4  # 16 centroids per code, so k-means needs at least 16 images
FASTSCAN_RESCORE_FACTOR = 100  # candidates re-scored exactly per result asked for
HNSW_NEIGHBOURS = 32
HNSW_EF_SEARCH = 128
IVF_MIN_PROBES = 16
IVF_PROBE_SHARE = 32  # past 16 lists probed, search 1/32 of them
TRAIN_SEED = 42
# A filtered search scans the allowed rows alone up to this many floats (2,500 × 512, a quarter of a
# millisecond), else takes this many of the index's candidates per result, divided by the allowed share:
# fastscan's unfiltered recall@10 was 0.995 at 25 re-scored per result (bench/RESULTS.md), and every
# filtered recall@10 measured 1.0 with it (bench/search_latency.py --filtered)
EXACT_FILTER_FLOATS = 2_500 * 512
FILTER_CANDIDATES_PER_RESULT = 25
OVERFETCH_GROWTH = 4  # and this many times deeper each time the allowed rows among them fall short


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

    def candidates(self, query: np.ndarray, count: int) -> np.ndarray:
        """The rows of about the `count` best, in no promised order: fastscan's code scan alone, before its
        exact re-scoring; any other kind's top `count`."""
        base = faiss.downcast_index(self.index.base_index) if hasattr(self.index, "base_index") else self.index
        _, indices = base.search(query.astype(np.float32).reshape(1, -1), min(count, self.index.ntotal))
        return indices[0][indices[0] >= 0]


def restricted_top(search: VectorSearch, embeddings: np.ndarray, query: np.ndarray, depth: int,
                   allowed: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """The `depth` best rows among the `allowed` ones (a bool mask; None: all), best first, scored exactly.

    A small allowed set (EXACT_FILTER_FLOATS, or any set with exact matmul search) is scanned alone.
    A large one takes the index's candidates, FILTER_CANDIDATES_PER_RESULT per result asked for divided
    by the allowed share (for fastscan: its 4-bit code scan, the re-scoring left for the allowed rows),
    and re-scores the allowed ones exactly; it asks again OVERFETCH_GROWTH times deeper while fewer than
    `depth` are allowed, and an approximate index that still finds too few falls back to the exact scan,
    so the answer is never short while enough rows are allowed. FAISS's own ID selectors would do the
    first step, but fastscan does not take them."""
    if allowed is None:
        return search.top(query, depth)
    allowed_count = int(np.count_nonzero(allowed))
    depth = min(depth, allowed_count)
    if depth == 0:
        return np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.float32)
    total = len(allowed)
    if allowed_count * embeddings.shape[1] > EXACT_FILTER_FLOATS and isinstance(search, FaissSearch):
        fetch = min(total, int(np.ceil(FILTER_CANDIDATES_PER_RESULT * depth * total / allowed_count)))
        while True:
            rows = search.candidates(query, fetch)
            rows = rows[allowed[rows]]
            if len(rows) >= depth:
                found, scores = MatmulSearch(embeddings[rows]).top(query, depth)
                return rows[found], scores
            if fetch >= total:
                break
            fetch = min(total, fetch * OVERFETCH_GROWTH)
    return exact_among(embeddings, query, depth, allowed)


def exact_among(embeddings: np.ndarray, query: np.ndarray, depth: int, allowed: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact top `depth` of the allowed rows: only those rows scored when they are under half the gallery,
    else every row scored and the others ranked out (gathering most rows costs more than scoring them)."""
    if np.count_nonzero(allowed) * 2 <= len(allowed):
        rows = np.flatnonzero(allowed)
        found, scores = MatmulSearch(embeddings[rows]).top(query, depth)
        return rows[found], scores
    scores = embeddings @ query.astype(np.float32)
    scores[~allowed] = -np.inf
    depth = min(depth, int(np.count_nonzero(allowed)))
    best = np.argpartition(-scores, depth - 1)[:depth]
    order = best[np.argsort(-scores[best], kind="stable")]
    return order, scores[order]


def resolve_kind(requested: str, gallery_size: int) -> str:
    """`auto` becomes exact below 5,000 images, where the exact scan was as fast as fastscan (under
    half a millisecond), and fastscan from there: the fastest kind that kept recall@10 ≥ 0.99 on random
    and clustered galleries in bench/search_latency.py."""
    if requested != "auto":
        return requested
    return "exact" if gallery_size < AUTO_APPROXIMATE_FROM else "fastscan"


def build_faiss(embeddings: np.ndarray, kind: str) -> faiss.Index:
    """A FAISS inner-product index over unit embeddings (N, D) of kind exact, fastscan, ivf or hnsw."""
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    dim = vectors.shape[1]
    if kind == "exact":
        index = faiss.IndexFlatIP(dim)
    elif kind == "fastscan":
        index = _trained_fastscan(vectors)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
    elif kind == "ivf":
        index = _trained_ivf(vectors)
    else:
        raise DataError(f"unknown FAISS index kind {kind!r} (serve.faiss); expected exact, fastscan, ivf or hnsw")
    index.add(vectors)
    tune(index, kind)
    return index


def _trained_fastscan(vectors: np.ndarray) -> faiss.Index:
    """4-bit product codes scanned with SIMD, then exact re-scoring from a float32 copy.

    Two dimensions a code keeps the quantization error small enough that the
    true top 10 are almost always among the first thousand candidates (k-means
    per pair of dimensions is seeded by FAISS, so builds are reproducible).
    """
    rows, dim = vectors.shape
    if rows < 2**FASTSCAN_BITS:
        raise ConfigError(f"serve.faiss: fastscan needs at least {2**FASTSCAN_BITS} images to train its "
                          f"codebooks, the gallery has {rows}; use exact")
    codes = dim // FASTSCAN_DIMS_PER_CODE if dim % FASTSCAN_DIMS_PER_CODE == 0 else dim
    scan = faiss.IndexPQFastScan(dim, codes, FASTSCAN_BITS, faiss.METRIC_INNER_PRODUCT)
    scan.pq.cp.min_points_per_centroid = 1  # else one warning per code under 624 images; re-scoring covers them
    scan.train(vectors)
    return faiss.IndexRefineFlat(scan)


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
    elif kind == "fastscan":
        index.k_factor = FASTSCAN_RESCORE_FACTOR


def write_faiss(index: faiss.Index, path: Path) -> None:
    faiss.write_index(index, str(path))


def read_faiss(path: Path, kind: str) -> faiss.Index:
    """The index file the index stage wrote; a truncated or foreign file is one line, not FAISS's C++ trace."""
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else error.__class__.__name__
        raise DataError(f"{path} is not a readable FAISS index ({first[:200]}); rebuild it with "
                        "`dvc repro -f index`") from None
    tune(index, kind)
    return index
