"""A Hugging Face dataset with the schema of the public mirror Marqo/deepfashion-multimodal.

One or more Parquet files with embedded images: columns `image` ({bytes, path}),
`text` (the caption) and `item_ID` (the image file stem). Read with pyarrow in
row batches, so the 42,537-row mirror never has to fit in memory at once.
"""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq

from fashion_search.data.download import DownloadError
from fashion_search.data.layout import CAPTIONS_FILE, IMAGES_DIR
from fashion_search.errors import DataError

REQUIRED_COLUMNS = ("image", "text", "item_ID")


def parquet_files(repo: str) -> list[Path]:
    """The Parquet files of a local folder, or of a Hub dataset snapshot (downloaded once, then cached)."""
    local = Path(repo)
    if not local.exists():
        from huggingface_hub import snapshot_download

        try:
            local = Path(snapshot_download(repo_id=repo, repo_type="dataset", allow_patterns=["*.parquet"]))
        except Exception as error:  # offline, unknown repo, gated repo
            raise DownloadError(f"data.hf_repo={repo!r} could not be fetched ({error.__class__.__name__}: {error}); "
                                "without network, point data.hf_repo at a local folder of its Parquet files") from error
    files = sorted(local.rglob("*.parquet"))
    if not files:
        raise DataError(f"data.hf_repo={repo!r}: no Parquet files found in {local}")
    return files


def fetch_hf(repo: str, out: Path) -> None:
    """Write images/<item_ID>.jpg and captions.json.

    Embedded bytes are written as they are: the tokenize stage then counts an
    undecodable one as unreadable and a row without bytes as a caption without
    an image, the same way for every source.
    """
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    captions: dict[str, str] = {}
    for path in parquet_files(repo):
        parquet = pq.ParquetFile(path)
        missing = [c for c in REQUIRED_COLUMNS if c not in parquet.schema_arrow.names]
        if missing:
            raise DataError(f"{path} lacks columns {missing}; expected the schema of Marqo/deepfashion-multimodal")
        for batch in parquet.iter_batches(batch_size=256, columns=list(REQUIRED_COLUMNS)):
            for row in batch.to_pylist():
                name = f"{row['item_ID']}.jpg"
                captions[name] = row["text"]
                if row["image"] and row["image"].get("bytes"):
                    (images / name).write_bytes(row["image"]["bytes"])
    (out / CAPTIONS_FILE).write_text(json.dumps(captions, sort_keys=True, ensure_ascii=False), encoding="utf-8")
