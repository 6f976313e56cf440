"""Write outputs so that a reader sees the previous complete version or the new one, never half.

A killed stage leaves at most a hidden temporary sibling behind; the next run
removes it. The rename is atomic on one filesystem, which a sibling guarantees.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


def _temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _clear_stale(path: Path) -> None:
    for stale in path.parent.glob(f".{path.name}.tmp-*"):
        _remove(stale)


@contextmanager
def atomic_path(path: str | Path) -> Iterator[Path]:
    """Yield a temporary path to write a file or a directory into; rename it to `path` on success."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    _clear_stale(path)
    tmp = _temporary_sibling(path)
    try:
        yield tmp
        if path.is_dir() and tmp.is_dir():
            # A directory cannot be replaced by rename in one step: move the old one aside first.
            old = path.with_name(f".{path.name}.tmp-old-{os.getpid()}")
            os.replace(path, old)
            os.replace(tmp, path)
            _remove(old)
        else:
            os.replace(tmp, path)
    except BaseException:
        if tmp.exists():
            _remove(tmp)
        raise


def write_text(path: str | Path, text: str) -> None:
    """Write a small text file (metrics JSON, a config) atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def write_json(path: str | Path, data: Any) -> None:
    """Metrics files: sorted keys and a final newline, so reruns are byte-identical and diffs are small."""
    write_text(path, json.dumps(data, indent=2, sort_keys=True) + "\n")
