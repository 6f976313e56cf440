"""The search engine: the model and the index loaded once; a query is one text encoding plus a search.

Three ways to ask: words (`search`), a gallery image (`similar`: image-to-image, the image itself
left out) and a photo (`search_photo`: one image embedding, then the same search). Filters
(search/facets.py) restrict the candidates before ranking; with filters and no words, `listing`
gives the matching images in gallery order. The pair scorer of `xattn` judges an image against a
text, so it re-ranks word queries only.

A token-level scorer (`xattn.features: tokens`) reads the token states of the query and of each
candidate. The index holds pooled embeddings only, whatever the model: a query's `rerank_k` candidates
get their image token states computed from the gallery's image files (which the service serves anyway),
fitted as the index's were. The price is one decode and one vision-tower pass per candidate and query
(bench/rerank_cost.py --recompute).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from fashion_search.config import has_visible_text
from fashion_search.embedding import embed_images, embed_texts, encode_images, encode_texts, tokenize_queries
from fashion_search.errors import DataError, UserError
from fashion_search.evaluate.retrieval import Rows, needs_tokens, query_first, rerank_candidates
from fashion_search.images import fit_image, load_pixels
from fashion_search.models.clip import Checkpoint, Encoded, vectors
from fashion_search.models.loader import load_model
from fashion_search.models.xattn import XattnScorer
from fashion_search.search.calibration import served_threshold
from fashion_search.search.index import QUERY_KEYS, REFERENCE_FILE, GalleryIndex, read_index, require_keys
from fashion_search.search.facets import Facets
from fashion_search.search.vectors import FaissSearch, MatmulSearch, VectorSearch, restricted_top


class QueryError(UserError, ValueError):
    """A query the engine cannot answer; the message says what to change."""


def check_k(k: int) -> None:
    if k < 1:
        raise QueryError(f"k must be at least 1, got {k}")


@dataclass(frozen=True)
class Hit:
    image_id: str
    score: float | None  # None in a filter-only listing, which ranks nothing
    path: Path
    row: int  # in the gallery: its caption and labels


Filters = Mapping[str, Sequence[str]]  # facet -> chosen values (Facets.parse)


@dataclass(frozen=True)
class Answer:
    """The hits, how many gallery images the filters allow, and the best dual-encoder cosine (for the
    weak-match threshold; None when nothing was ranked)."""

    hits: list[Hit]
    matching: int
    best_cosine: float | None = None


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
        self._rows = {image_id: row for row, image_id in enumerate(index.ids)}
        # A fast tokenizer shared between server threads can fail with "Already borrowed".
        self._encode_lock = threading.Lock()
        self._check_width()
        self._weak_match_threshold = served_threshold(index.reference)
        self._tokens = needs_tokens(scorer)
        if self._tokens:
            self._check_image_files()

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

    def _check_image_files(self) -> None:
        """A token-level scorer computes its candidates' token states from the gallery's files: all must be there."""
        missing = [path for path in self._paths.values() if not path.is_file()]
        if missing:
            raise DataError(f"{len(missing)} of the gallery's {len(self._paths)} image files (e.g. {missing[0]}) are "
                            "missing; the xattn model (xattn.features: tokens) re-ranks with token states computed "
                            "from them: restore data/raw (dvc checkout), or rebuild the index (dvc repro index)")

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
        return vectors(self.encode_query(query)).reshape(-1)

    def encode_query(self, query: str) -> Rows:
        """The query as the engine ranks with it: its unit text embedding (D,), or for a token-level scorer one
        `Encoded` row that carries its token states too (the same embedding, to the bit)."""
        reference = self.index.reference
        with self._encode_lock:
            ids = tokenize_queries(self.checkpoint, [query], reference["max_tokens"],
                                   reference.get("long_text", "truncate"))
            if self._tokens:
                return encode_texts(self.checkpoint, ids, batch_size=1)
            return embed_texts(self.checkpoint, ids, batch_size=1)[0]

    @property
    def image_fit(self) -> str:
        """How the gallery's images were fitted to the model's square (pad or crop): photos and re-ranked
        candidates are fitted the same way."""
        return self.index.reference.get("image_fit", "pad")

    @property
    def facets(self) -> Facets:
        return self.index.facets

    @property
    def weak_match_threshold(self) -> float | None:
        """The validation-calibrated cosine below which a text query has no good match (search/calibration.py);
        None when the index has none or the calibration found none that separates."""
        return self._weak_match_threshold

    def caption(self, row: int) -> str | None:
        return self.index.captions[row]

    def row_of(self, image_id: str) -> int | None:
        return self._rows.get(image_id)

    def search(self, query: str, k: int, filters: Filters | None = None) -> list[Hit]:
        """The k best images for the query, best first; k beyond the gallery (or the filtered set) returns
        all of it."""
        return self.answer(query, k, filters).hits

    def answer(self, query: str, k: int, filters: Filters | None = None) -> Answer:
        """`search` with how many images the filters allow and the best cosine."""
        if not has_visible_text(query):  # blank, NUL, or only characters that show nothing on their own
            raise QueryError("the query is empty: type a few words describing the clothes")
        check_k(k)
        allowed = self._allowed(filters)
        rows, scores, best = self.rank(self.encode_query(query), k, allowed)
        return self._answer(rows, scores, allowed, best)

    def similar(self, image_id: str, k: int, filters: Filters | None = None) -> Answer | None:
        """The gallery ranked by image-to-image similarity to one of its images, that image left out;
        None for an id the gallery does not have."""
        row = self.row_of(image_id)
        if row is None:
            return None
        check_k(k)
        allowed = self._allowed(filters)
        allowed = np.ones(self.gallery_size, dtype=bool) if allowed is None else allowed.copy()
        allowed[row] = False
        rows, scores = restricted_top(self.vectors, self.index.embeddings, self.index.embeddings[row], k, allowed)
        return self._answer(rows, scores, allowed, float(scores[0]) if len(scores) else None)

    def search_photo(self, photo: Image.Image, k: int, filters: Filters | None = None) -> Answer:
        """The gallery ranked by similarity to a photo: one image embedding, fitted as the gallery was."""
        check_k(k)
        allowed = self._allowed(filters)
        query = self.embed_photo(photo)
        rows, scores = restricted_top(self.vectors, self.index.embeddings, query.numpy(), k, allowed)
        return self._answer(rows, scores, allowed, float(scores[0]) if len(scores) else None)

    def listing(self, k: int, filters: Filters) -> Answer:
        """The first k images the filters allow, in gallery order: a filter-only request ranks nothing."""
        check_k(k)
        allowed = self._allowed(filters)
        rows = np.flatnonzero(allowed) if allowed is not None else np.arange(self.gallery_size)
        return self._answer(rows[:k], [None] * min(k, len(rows)), allowed, None)

    def embed_photo(self, photo: Image.Image) -> torch.Tensor:
        """The unit image embedding (D,) of a decoded photo, fitted (pad or crop) as the gallery's images were."""
        spec = self.checkpoint.pixel_spec
        fitted = fit_image(photo, spec.size, self.image_fit)
        pixels = torch.from_numpy(np.asarray(fitted, dtype=np.uint8).copy()).permute(2, 0, 1).unsqueeze(0)
        with self._encode_lock:
            return embed_images(self.checkpoint, pixels, batch_size=1)[0]

    def rank(self, text: Rows, k: int, allowed: np.ndarray | None = None,
             ) -> tuple[np.ndarray, np.ndarray, float | None]:
        """Dual-encoder retrieval among the allowed rows for `encode_query`'s answer; with a pair scorer, its
        top `rerank_k` re-ordered as in evaluation. Also the best dual-encoder cosine, whatever re-orders
        the results."""
        depth = max(k, self.index.reference.get("rerank_k") or 0) if self.scorer is not None else k
        vector = vectors(text).reshape(-1).numpy()
        rows, scores = restricted_top(self.vectors, self.index.embeddings, vector, depth, allowed)
        best = float(scores[0]) if len(scores) else None
        if self.scorer is None or len(rows) == 0:
            return rows[:k], scores[:k], best
        hits, pair_scores = rerank_candidates(text, torch.from_numpy(rows), self.candidates(rows),
                                              query_first(self.scorer), min(k, len(rows)))
        return hits.numpy(), pair_scores.numpy(), best

    def candidates(self, rows: np.ndarray) -> Rows:
        """Gallery rows as the pair scorer reads them: their indexed embeddings, and for a token-level scorer
        their image token states beside them, computed from the image files."""
        embeddings = torch.from_numpy(self.index.embeddings[rows])
        if not self._tokens:
            return embeddings
        paths = [self._paths[self.index.ids[row]] for row in rows]
        pixels = load_pixels(paths, self.checkpoint.pixel_spec, self.image_fit, progress=False)
        with self._encode_lock:
            tokens = encode_images(self.checkpoint, pixels, batch_size=len(paths)).tokens
        return Encoded(embeddings, tokens)

    def _allowed(self, filters: Filters | None) -> np.ndarray | None:
        return self.facets.allowed(filters) if filters else None

    def _answer(self, rows, scores, allowed: np.ndarray | None, best: float | None) -> Answer:
        matching = self.gallery_size if allowed is None else int(np.count_nonzero(allowed))
        hits = [Hit(self.index.ids[row], None if score is None else float(score), self._paths[self.index.ids[row]],
                    int(row)) for row, score in zip(rows, scores)]
        return Answer(hits, matching, best)

    def image_path(self, image_id: str) -> Path | None:
        """The file of a gallery image, looked up by id; never built from the id itself."""
        return self._paths.get(image_id)
