"""The official DeepFashion-MultiModal files from Google Drive, via gdown.

gdown also takes plain URLs, so tests point the same code at a local server.
Downloads land in a cache folder outside data/raw (a DVC output that DVC clears
before the stage runs), resume when interrupted, are checked (MD5 when given,
ZIP integrity always) and are never fetched twice. Extraction goes into the
caller's temporary folder, which is renamed into place only when complete.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sys
import zipfile
from pathlib import Path, PurePosixPath

from fashion_search.config import DeepFashionSettings
from fashion_search.data.layout import CAPTIONS_FILE, FABRIC_FILE, IMAGES_DIR, PATTERN_FILE, SHAPE_FILE
from fashion_search.errors import UserError
from fashion_search.paths import project_root

DRIVE_FOLDER = "https://drive.google.com/drive/folders/1An2c_ZCkeGmhJg0zUjtZF46vyJgQwIr2"
LABEL_FILES = (SHAPE_FILE, FABRIC_FILE, PATTERN_FILE)


class DownloadError(UserError, RuntimeError):
    """A file could not be fetched or failed its check; the message says what to do instead."""


def source_url(source: str) -> str:
    """A Google Drive file id or a URL."""
    return source if "://" in source else f"https://drive.google.com/uc?id={source}"


def md5_of(path: Path) -> str:
    digest = hashlib.md5()
    with path.open("rb") as stream:
        for block in iter(lambda: stream.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def verify(path: Path, md5: str) -> str | None:
    """Why the file is unusable, or None if it passed its checks."""
    if md5 and md5_of(path) != md5.lower():
        return f"MD5 mismatch (expected {md5})"
    if path.suffix == ".zip" and (not zipfile.is_zipfile(path) or zipfile.ZipFile(path).testzip() is not None):
        return "not a complete ZIP archive"
    return None


def fetch(source: str, target: Path, md5: str) -> Path:
    """Download `source` to `target` unless a verified copy is already there; resume partial downloads."""
    import gdown  # imported here: only this source needs it

    if target.is_file() and verify(target, md5) is None:
        return target
    target.unlink(missing_ok=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    try:
        gdown.download(source_url(source), str(target), quiet=not sys.stderr.isatty(), resume=True, retries=3)
    except Exception as error:  # gdown raises requests', its own and OS errors alike
        raise DownloadError(
            f"could not download {target.name} from {source_url(source)}: {error}. Google Drive throttles "
            f"large files: download them by hand from {DRIVE_FOLDER}, unpack them into one folder "
            "(images/, captions.json, labels/) and run with data.source=local data.local_path=<that folder>."
        ) from error
    problem = verify(target, md5)
    if problem is not None:
        target.unlink()
        raise DownloadError(f"{target.name} from {source_url(source)} is unusable: {problem}; it was removed, "
                            "rerun to download it again")
    return target


def extract_images(archive: Path, out: Path) -> int:
    """Every .jpg of the archive into out/images/ (flattened); returns how many."""
    images = out / IMAGES_DIR
    images.mkdir(parents=True, exist_ok=True)
    count = 0
    with zipfile.ZipFile(archive) as zipped:
        for member in zipped.infolist():
            name = PurePosixPath(member.filename).name
            if member.is_dir() or not name.lower().endswith(".jpg") or name.startswith("."):
                continue
            with zipped.open(member) as source, (images / name).open("wb") as sink:
                shutil.copyfileobj(source, sink)
            count += 1
    return count


def extract_captions(download: Path, out: Path) -> None:
    """captions.json as published, or from inside a ZIP that holds it."""
    if not zipfile.is_zipfile(download):
        json.loads(download.read_text(encoding="utf-8"))  # fail here, not three stages later
        shutil.copyfile(download, out / CAPTIONS_FILE)
        return
    with zipfile.ZipFile(download) as zipped:
        names = [m for m in zipped.namelist() if PurePosixPath(m).name == CAPTIONS_FILE]
        if not names:
            raise DownloadError(f"{download} holds no {CAPTIONS_FILE}")
        (out / CAPTIONS_FILE).write_bytes(zipped.read(names[0]))


def extract_labels(archive: Path, out: Path) -> None:
    """The three label files the pipeline reads, wherever they sit in the archive."""
    with zipfile.ZipFile(archive) as zipped:
        members = zipped.namelist()
        for wanted in LABEL_FILES:
            tail = PurePosixPath(wanted).relative_to("labels").as_posix()
            found = [m for m in members if m.endswith(tail)]
            if found:
                (out / wanted).parent.mkdir(parents=True, exist_ok=True)
                (out / wanted).write_bytes(zipped.read(found[0]))


def fetch_deepfashion(settings: DeepFashionSettings, out: Path) -> None:
    """Download (or reuse) the official files and lay them out under `out`."""
    # Anchored at the repository root: `dvc exp run --temp` must not download 5 GB into every copy.
    cache = project_root() / settings.cache_dir
    images = fetch(settings.images, cache / "images.zip", settings.images_md5)
    captions = fetch(settings.captions, cache / "captions.download", settings.captions_md5)
    extract_images(images, out)
    extract_captions(captions, out)
    if settings.labels:
        extract_labels(fetch(settings.labels, cache / "labels.zip", settings.labels_md5), out)
