"""Data sources, each ending in the same DeepFashion-MultiModal layout under data/raw/."""

from __future__ import annotations

import shutil
from pathlib import Path

from fashion_search.atomic import atomic_path
from fashion_search.config import DataSettings
from fashion_search.config import ConfigError
from fashion_search.data.download import fetch_deepfashion
from fashion_search.data.hub import fetch_hf
from fashion_search.data.layout import CAPTIONS_FILE, IMAGES_DIR
from fashion_search.data.synthetic import generate_synthetic


def fetch_raw(settings: DataSettings, seed: int, out: Path) -> None:
    """Fill `out` from the configured source; `out` appears only when complete."""
    with atomic_path(out) as tmp:
        if settings.source == "synthetic":
            generate_synthetic(tmp, n_items=settings.n_items, seed=seed,
                               image_size=(settings.image_width, settings.image_height))
        elif settings.source == "deepfashion":
            fetch_deepfashion(settings.deepfashion, tmp)
        elif settings.source == "hf":
            fetch_hf(settings.hf_repo, tmp)
        else:
            copy_local(Path(settings.local_path), tmp)


def copy_local(source: Path, out: Path) -> None:
    """A folder the user already has in the DeepFashion-MultiModal layout (images/, captions.json, labels/)."""
    if not (source / IMAGES_DIR).is_dir() or not (source / CAPTIONS_FILE).is_file():
        raise ConfigError(f"data.local_path={str(source)!r} must hold {IMAGES_DIR}/ and {CAPTIONS_FILE} "
                          "(the DeepFashion-MultiModal layout)")
    shutil.copytree(source, out)
