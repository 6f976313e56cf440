"""The search engine: the model and the index loaded once; a query is one text encoding plus a search."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from fashion_search.config import has_visible_text
from fashion_search.embedding import embed_texts, tokenize_queries
from fashion_search.errors import DataError, UserError
from fashion_search.evaluate.retrieval import needs_tokens, query_first, rerank_candidates
from fashion_search.models.clip import Checkpoint
from fashion_search.models.loader import load_model
from fashion_search.models.xattn import XattnScorer
from fashion_search.search.index import QUERY_KEYS, REFERENCE_FILE, GalleryIndex, read_index, require_keys
from fashion_search.search.vectors import FaissSearch, MatmulSearch, VectorSearch


class QueryError(UserError, ValueError):
    """A query the engine cannot answer; the message says what to change."""


@dataclass(frozen=True)
class Hit:
    image_id: str
    score: float
    path: Path


def repository_root(index_dir: Path, model_dir: str) -> Path:
    """Where the index's relative paths start: the current folder or a folder above the index."""
    for candidate in (Path.cwd(), *Path(index_dir).resolve().parents):
        if (candidate / model_dir).is_dir():
            return candidate
    raise DataError(f"the index {index_dir} names its model {model_dir!r} relative to the repository it was built "
                    "in, and neither the current folder nor any folder above the index holds it: run from that "
                    "repository's root, or rebuild the index there (dvc repro index)")


class SearchEngine:
    """Answers free-text queries over one gallery with the model that embedded it."""

    def __init__(self, index: GalleryIndex, checkpoint: Checkpoint, scorer: XattnScorer | None,
                 root: Path, vectors: VectorSearch | None = None) -> None:
        self.index, self.checkpoint, self.scorer = index, checkpoint, scorer
        self.vectors = vectors or FaissSearch(index.faiss_index)
        self._paths = {image_id: root / path for image_id, path in zip(index.ids, index.paths)}
        # A fast tokenizer shared between server threads can fail with "Already borrowed".
        self._encode_lock = threading.Lock()
        self._check_width()
        if needs_tokens(scorer):
            raise UserError("this xattn model scores token states (xattn.features: tokens), which the index does not "
                            "store yet: serve it with serve.model set to finetuned or to a pooled xattn "
                            "(xattn.features: pooled)")

    @classmethod
    def open(cls, index_dir: Path, root: Path | None = None, exact: bool = False) -> "SearchEngine":
        """Load the index and the model it names; `exact` searches by matmul instead of FAISS.

        The index names its model and images relative to the repository root it was built in: the
        current folder, or (for `query --index` from elsewhere) the nearest folder above the index
        that holds the model."""
        index = read_index(index_dir)
        require_keys(Path(index_dir) / REFERENCE_FILE, index.reference, QUERY_KEYS)
        root = repository_root(index_dir, index.reference["model_dir"]) if root is None else root
        checkpoint, scorer = load_model(root / index.reference["model_dir"], index.reference["model"])
        vectors = MatmulSearch(index.embeddings) if exact else None
        return cls(index, checkpoint, scorer, root, vectors)

    def _check_width(self) -> None:
        width = self.checkpoint.model.config.projection_dim
        if width != self.index.reference["dim"]:
            raise DataError(f"the model embeds in {width} dimensions but the index holds "
                            f"{self.index.reference['dim']}; rebuild it with `dvc repro index`")

    @property
    def model_name(self) -> str:
        return self.index.reference["model"]

    @property
    def backend(self) -> str:
        """How the gallery is searched: `matmul`, or the FAISS kind the index stage built (index.json)."""
        return "matmul" if isinstance(self.vectors, MatmulSearch) else self.index.reference["faiss"]

    @property
    def gallery_size(self) -> int:
        return len(self.index.ids)

    @property
    def examples(self) -> list[str]:
        return list(self.index.reference.get("examples", []))

    def encode(self, query: str) -> torch.Tensor:
        """The unit text embedding (D,); past the token limit the query is truncated or segmented, like the captions."""
        reference = self.index.reference
        with self._encode_lock:
            ids = tokenize_queries(self.checkpoint, [query], reference["max_tokens"],
                                   reference.get("long_text", "truncate"))
            return embed_texts(self.checkpoint, ids, batch_size=1)[0]

    def search(self, query: str, k: int) -> list[Hit]:
        """The k best images for the query, best first; k beyond the gallery returns the whole gallery."""
        if not has_visible_text(query):  # blank, NUL, or only zero-width and control characters
            raise QueryError("the query is empty: type a few words describing the clothes")
        if k < 1:
            raise QueryError(f"k must be at least 1, got {k}")
        k = min(k, self.gallery_size)
        text = self.encode(query)
        rows, scores = self.rank(text, k)
        return [Hit(self.index.ids[row], float(score), self._paths[self.index.ids[row]])
                for row, score in zip(rows, scores)]

    def rank(self, text: torch.Tensor, k: int) -> tuple[np.ndarray, np.ndarray]:
        """Dual-encoder retrieval; with a pair scorer, its top `rerank_k` re-ordered as in evaluation."""
        depth = max(k, self.index.reference.get("rerank_k") or 0) if self.scorer is not None else k
        rows, scores = self.vectors.top(text.numpy(), depth)
        if self.scorer is None:
            return rows[:k], scores[:k]
        candidates = torch.from_numpy(self.index.embeddings[rows])
        hits, pair_scores = rerank_candidates(text, torch.from_numpy(rows), candidates, query_first(self.scorer), k)
        return hits.numpy(), pair_scores.numpy()

    def image_path(self, image_id: str) -> Path | None:
        """The file of a gallery image, looked up by id; never built from the id itself."""
        return self._paths.get(image_id)
