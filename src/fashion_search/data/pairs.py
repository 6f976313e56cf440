"""Image-caption pairs: built from the raw layout where the data enters, and the Parquet contract.

Pairs Parquet columns: image (file name), item_id, caption, input_ids, n_tokens,
truncated, segments (the token ids a caption is embedded from: one truncated
piece, or sentence-aligned pieces). The split adds nothing but rows. Bad data is counted here, where it
enters, and reported in metrics/data.json; nothing is dropped silently.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from typing import Any
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fashion_search.atomic import atomic_path
from fashion_search.data.labels import read_labels
from fashion_search.data.layout import CAPTIONS_FILE, IMAGES_DIR, item_id_from_image_name
from fashion_search.errors import DataError, UserError
from fashion_search.images import is_readable

PAIR_COLUMNS = ["image", "item_id", "caption", "input_ids", "n_tokens", "truncated", "segments"]
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


class MissingInputError(UserError, FileNotFoundError):
    """An input a stage needs is absent; the message names the stage that makes it."""


@dataclass
class DataCounts:
    images: int = 0
    captions: int = 0
    pairs: int = 0
    images_without_caption: int = 0
    captions_without_image: int = 0
    unreadable_images: int = 0
    empty_captions: int = 0
    non_text_captions: int = 0
    duplicate_caption_keys: int = 0
    malformed_label_lines: int = 0
    images_in_some_label_files_only: int = 0
    label_rows_for_unknown_images: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


def caption_sharing(captions: pd.Series) -> dict[str, Any]:
    """Unique captions, and how many caption texts are shared by 1, 2, 3, ... images (keys as strings, for
    JSON): a text shared by n images bounds strict text-to-image recall (evaluate/ceiling.py)."""
    sizes = captions.value_counts()
    shared = sizes.value_counts().sort_index()
    return {"unique_captions": int(len(sizes)),
            "images_per_caption": {str(int(n)): int(count) for n, count in shared.items()}}


def require(path: Path, made_by: str) -> Path:
    """Fail early, and say which stage writes the missing input."""
    if not path.exists():
        raise MissingInputError(f"{path} does not exist: it is written by the '{made_by}' stage "
                                f"(run `dvc repro {made_by}`)")
    return path


def read_captions(root: Path, counts: DataCounts, rejected: set[str] | None = None) -> dict[str, str]:
    """captions.json as file name -> non-empty caption, counting what had to be left out (the names
    of left-out captions go into `rejected`, so their images are not counted a second time)."""
    path = require(root / CAPTIONS_FILE, "download")

    def keep_last_counting_duplicates(items: list[tuple[str, object]]) -> dict[str, object]:
        counts.duplicate_caption_keys += len(items) - len({key for key, _ in items})
        return dict(items)

    try:
        raw = json.loads(path.read_text(encoding="utf-8"), object_pairs_hook=keep_last_counting_duplicates)
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise DataError(f"{path} is not valid UTF-8 JSON ({error}); fix or re-download it") from None
    if not isinstance(raw, dict):
        raise DataError(f"{path} must be a JSON object mapping image file name to caption")
    captions: dict[str, str] = {}
    for name, caption in raw.items():
        if not isinstance(caption, str):
            counts.non_text_captions += 1
        elif not caption.strip():
            counts.empty_captions += 1
        else:
            captions[name] = " ".join(caption.split())
            continue
        if rejected is not None:
            rejected.add(name)
    counts.captions = len(raw)
    return captions


def count_label_problems(root: Path, images: set[str], counts: DataCounts) -> None:
    """Labels are optional, but a damaged label file is reported where the data enters."""
    labels = read_labels(root)
    counts.malformed_label_lines = labels.malformed_lines
    counts.images_in_some_label_files_only = labels.missing_names
    counts.label_rows_for_unknown_images = sum(1 for name in labels.labels if name not in images)


def build_pairs(root: Path) -> tuple[pd.DataFrame, DataCounts]:
    """Every readable image that has a caption, sorted by file name so that order is reproducible."""
    counts = DataCounts()
    images_dir = require(root / IMAGES_DIR, "download")
    rejected: set[str] = set()
    captions = read_captions(root, counts, rejected)
    names = sorted(p.name for p in images_dir.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
    counts.images = len(names)
    present = set(names)
    counts.captions_without_image = sum(1 for name in captions if name not in present)
    rows = []
    for name in names:
        if name in rejected:
            continue  # counted once, as an empty or non-text caption
        if name not in captions:
            counts.images_without_caption += 1
        elif not is_readable(images_dir / name):
            counts.unreadable_images += 1
        else:
            rows.append({"image": name, "item_id": item_id_from_image_name(name), "caption": captions[name]})
    counts.pairs = len(rows)
    count_label_problems(root, present, counts)
    if not rows:
        raise DataError(f"no usable image-caption pairs under {root}: {counts.as_dict()}")
    return pd.DataFrame(rows, columns=["image", "item_id", "caption"]), counts


def write_pairs(frame: pd.DataFrame, path: Path) -> None:
    """Parquet with the pairs schema, written atomically."""
    table = pa.Table.from_pandas(frame[PAIR_COLUMNS], preserve_index=False)
    with atomic_path(path) as tmp:
        pq.write_table(table, tmp)


def read_pairs(path: Path, made_by: str) -> pd.DataFrame:
    """Read a pairs file and check its columns, so a stale or foreign file fails loudly."""
    frame = pq.read_table(require(path, made_by)).to_pandas()
    missing = [c for c in PAIR_COLUMNS if c not in frame.columns]
    if missing:
        raise DataError(f"{path} lacks columns {missing}; rerun the '{made_by}' stage")
    if frame.empty:
        raise DataError(f"{path} has no rows; check the '{made_by}' stage's output and data/raw")
    return frame.reset_index(drop=True)
