"""models/index/: the gallery the search service answers from, and the model that embedded it.

    gallery.parquet   image (the id: its file name), path (from the repository root), embedding (unit float32),
                      caption (when the gallery has one), facet_<name> (each image's values of every filter
                      the source has: search/facets.py)
    index.json        the model reference: which model and directory, embedding width, gallery size and
                      kind, the text and image settings the embeddings were made with, the filters offered
    vectors.faiss     the FAISS index over the embeddings, in gallery order

A query must be encoded exactly as the gallery was (same model, same token limit),
so everything the engine needs to reproduce that lives in index.json.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fashion_search.atomic import atomic_path
from fashion_search.data.layout import IMAGES_DIR
from fashion_search.data.pairs import require
from fashion_search.device import CPU, Runtime
from fashion_search.embedding import embed_images
from fashion_search.errors import DataError
from fashion_search.inputs import pair_pixels
from fashion_search.models.clip import Checkpoint
from fashion_search.search.facets import Facets
from fashion_search.search.vectors import build_faiss, read_faiss, write_faiss

GALLERY_FILE = "gallery.parquet"
REFERENCE_FILE = "index.json"
FAISS_FILE = "vectors.faiss"
# What index.json must hold: to read the index, and to answer queries with it (rerank_k, long_text and
# examples have defaults for older indexes).
INDEX_KEYS = ("dim", "gallery_size", "faiss")
QUERY_KEYS = ("model", "model_dir", "max_tokens")
FACET_PREFIX = "facet_"


@dataclass
class GalleryIndex:
    ids: list[str]
    paths: list[str]
    embeddings: np.ndarray  # (N, D) float32, unit rows
    reference: dict[str, Any]
    faiss_index: Any  # faiss.Index, in the same row order
    captions: list[str | None] | None = None  # None where the gallery has no caption for an image
    facets: Facets | None = None  # none offered by an index written before filters existed

    def __post_init__(self) -> None:
        if self.captions is None:
            self.captions = [None] * len(self.ids)
        if self.facets is None:
            self.facets = Facets.from_values({}, len(self.ids))


def gallery_pairs(train: pd.DataFrame, test: pd.DataFrame, gallery: str) -> pd.DataFrame:
    """The images to search: the held-out split (`test`), or every image (`all`), sorted by name."""
    frame = test if gallery == "test" else pd.concat([train, test], ignore_index=True)
    return frame.drop_duplicates("image").sort_values("image", kind="stable").reset_index(drop=True)


def embed_gallery(checkpoint: Checkpoint, pairs: pd.DataFrame, raw: Path, fit: str, batch_size: int,
                  cache: Path | None = None, runtime: Runtime = CPU) -> np.ndarray:
    """Unit image embeddings (N, D) of the pairs' images, fitted as in training and evaluation."""
    pixels = pair_pixels(pairs, raw, checkpoint.pixel_spec, fit, cache)
    return embed_images(checkpoint, pixels, batch_size, runtime).numpy().astype(np.float32)


def image_paths(pairs: pd.DataFrame, raw: Path) -> list[str]:
    """Paths as the stage was given them (relative to the repository root when DVC runs it)."""
    return [(raw / IMAGES_DIR / name).as_posix() for name in pairs["image"]]


def write_index(out: Path, ids: list[str], paths: list[str], embeddings: np.ndarray,
                reference: dict[str, Any], captions: list[str | None] | None = None,
                facets: dict[str, list[list[str]]] | None = None) -> None:
    """The three files, atomically: a reader sees the old index or the new one, never a mix.

    `facets` is search/facets.py's facet_values of the gallery's attributes, in gallery order."""
    vectors = np.ascontiguousarray(embeddings, dtype=np.float32)
    column = pa.FixedSizeListArray.from_arrays(pa.array(vectors.reshape(-1)), vectors.shape[1])
    columns = {"image": ids, "path": paths, "embedding": column,
               "caption": pa.array(captions if captions is not None else [None] * len(ids), pa.string())}
    for name, values in (facets or {}).items():
        columns[FACET_PREFIX + name] = pa.array(values, pa.list_(pa.string()))
    table = pa.table(columns)
    reference = {**reference, "dim": int(vectors.shape[1]), "gallery_size": len(ids),
                 "facets": list(facets or {})}
    with atomic_path(out) as tmp:
        tmp.mkdir()
        pq.write_table(table, tmp / GALLERY_FILE)
        write_faiss(build_faiss(vectors, reference["faiss"]), tmp / FAISS_FILE)
        (tmp / REFERENCE_FILE).write_text(json.dumps(reference, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def require_keys(reference_path: Path, reference: Any, keys: tuple[str, ...]) -> None:
    """One line naming what a hand-edited or foreign index.json lacks."""
    missing = [key for key in keys if not isinstance(reference, dict) or key not in reference]
    if missing:
        raise DataError(f"{reference_path} lacks {', '.join(missing)}; rebuild it with `dvc repro -f index`")


def read_index(directory: Path) -> GalleryIndex:
    """Open an index directory and check that its three files agree with each other."""
    reference_path = require(Path(directory) / REFERENCE_FILE, "index")
    try:
        reference = json.loads(reference_path.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{reference_path} is not valid JSON ({error}); rebuild it with "
                        "`dvc repro -f index`") from None
    require_keys(reference_path, reference, INDEX_KEYS)
    table = pq.read_table(require(Path(directory) / GALLERY_FILE, "index"))
    embeddings = table.column("embedding").combine_chunks().flatten().to_numpy().reshape(len(table), -1)
    faiss_index = read_faiss(require(Path(directory) / FAISS_FILE, "index"), reference["faiss"])
    sizes = {len(table), faiss_index.ntotal, reference["gallery_size"]}
    if embeddings.shape[1] != reference["dim"] or len(sizes) != 1:
        raise DataError(f"{directory}: the gallery, the FAISS index and {REFERENCE_FILE} disagree; "
                        "rebuild it with `dvc repro index`")
    captions = table.column("caption").to_pylist() if "caption" in table.column_names else None
    facets = Facets.from_values({name[len(FACET_PREFIX):]: table.column(name).to_pylist()
                                 for name in table.column_names if name.startswith(FACET_PREFIX)}, len(table))
    return GalleryIndex(table.column("image").to_pylist(), table.column("path").to_pylist(),
                        np.ascontiguousarray(embeddings, dtype=np.float32), reference, faiss_index,
                        captions, facets)
