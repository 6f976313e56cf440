"""Data sources end in the same layout: the official files (through gdown, against a local server),
a Hub-style Parquet mirror, and a local folder."""

from __future__ import annotations

import dataclasses
import http.server
import io
import json
import os
import shutil
import subprocess
import sys
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from PIL import Image
from ruamel.yaml import YAML

from conftest import commit_all, copy_project
from fashion_search.config import ConfigError, DataSettings, DeepFashionSettings, load_params, section
from fashion_search.data.download import DownloadError, fetch, fetch_deepfashion, md5_of
from fashion_search.data.hub import fetch_hf
from fashion_search.data.layout import FABRIC_FILE, SHAPE_FILE
from fashion_search.data.sources import fetch_raw
from fashion_search.data.synthetic import generate_synthetic


class RangeHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files with HTTP Range support (resumed downloads) and records each request."""

    requests: list[tuple[str, str | None]] = []

    def log_message(self, *args: object) -> None:  # keep test output clean
        pass

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        RangeHandler.requests.append((self.path, self.headers.get("Range")))
        path = Path(self.translate_path(self.path))
        if not path.is_file():
            self.send_error(404)
            return
        data = path.read_bytes()
        start = 0
        if self.headers.get("Range"):
            start = int(self.headers["Range"].split("=")[1].split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        self.wfile.write(data[start:])


@pytest.fixture(scope="module")
def published(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The official files' shapes, made from a small synthetic set: images.zip, captions.json, labels.zip."""
    source = tmp_path_factory.mktemp("synthetic")
    generate_synthetic(source, n_items=5, seed=3, image_size=(64, 96))
    served = tmp_path_factory.mktemp("served")
    with zipfile.ZipFile(served / "images.zip", "w") as zipped:
        for image in sorted((source / "images").iterdir()):
            zipped.write(image, f"images/{image.name}")
    (served / "captions.json").write_bytes((source / "captions.json").read_bytes())
    with zipfile.ZipFile(served / "labels.zip", "w") as zipped:
        for name in ("shape/shape_anno_all.txt", "texture/fabric_ann.txt", "texture/pattern_ann.txt"):
            zipped.write(source / "labels" / name, f"labels/{name}")
    (served / "broken.zip").write_bytes(b"PK\x03\x04 not really a zip")
    return served


@pytest.fixture(scope="module")
def server(published: Path) -> Iterator[str]:
    handler = lambda *a, **k: RangeHandler(*a, directory=str(published), **k)  # noqa: E731
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def _settings(server: str, cache: Path, **changes: str) -> DeepFashionSettings:
    base = DeepFashionSettings(images=f"{server}/images.zip", captions=f"{server}/captions.json",
                               labels=f"{server}/labels.zip", images_md5="", captions_md5="", labels_md5="",
                               cache_dir=str(cache))
    return dataclasses.replace(base, **changes)


def test_deepfashion_source_builds_the_layout_and_never_downloads_twice(
        server: str, published: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    settings = _settings(server, tmp_path / "downloads")
    RangeHandler.requests.clear()
    fetch_deepfashion(settings, tmp_path / "raw1")
    first = len(RangeHandler.requests)
    fetch_deepfashion(settings, tmp_path / "raw2")
    assert first == 3 and len(RangeHandler.requests) == first
    with zipfile.ZipFile(published / "images.zip") as zipped:
        expected = sorted(Path(n).name for n in zipped.namelist())
    assert sorted(p.name for p in (tmp_path / "raw1/images").iterdir()) == expected
    assert json.loads((tmp_path / "raw1/captions.json").read_text()) == json.loads(
        (published / "captions.json").read_text())
    assert (tmp_path / "raw1" / SHAPE_FILE).is_file() and (tmp_path / "raw1" / FABRIC_FILE).is_file()


def test_checksum_mismatch_removes_the_file_and_says_so(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="MD5 mismatch"):
        fetch(f"{server}/captions.json", tmp_path / "captions.json", md5="0" * 32)
    assert not (tmp_path / "captions.json").exists()


def test_matching_checksum_is_accepted(server: str, published: Path, tmp_path: Path) -> None:
    md5 = md5_of(published / "captions.json")
    assert fetch(f"{server}/captions.json", tmp_path / "c.json", md5=md5).read_bytes() == (
        published / "captions.json").read_bytes()


def test_a_truncated_archive_is_rejected(server: str, tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="not a complete ZIP"):
        fetch(f"{server}/broken.zip", tmp_path / "images.zip", md5="")


def test_an_interrupted_download_resumes_from_its_partial_file(server: str, published: Path, tmp_path: Path) -> None:
    data = (published / "images.zip").read_bytes()
    (tmp_path / "images.zipABCDEFGH.part").write_bytes(data[:1000])  # what gdown leaves when interrupted
    RangeHandler.requests.clear()
    fetch(f"{server}/images.zip", tmp_path / "images.zip", md5="")
    assert (tmp_path / "images.zip").read_bytes() == data
    assert RangeHandler.requests[-1][1] == "bytes=1000-"


def test_an_unreachable_source_explains_the_manual_route(tmp_path: Path) -> None:
    with pytest.raises(DownloadError, match="data.source=local"):
        fetch("http://127.0.0.1:9/images.zip", tmp_path / "images.zip", md5="")


def _jpeg(colour: str) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (8, 12), colour).save(buffer, format="JPEG")
    return buffer.getvalue()


def test_hf_mirror_schema_becomes_the_layout(tmp_path: Path) -> None:
    mirror = tmp_path / "mirror" / "data"
    mirror.mkdir(parents=True)
    rows = {"image": [{"bytes": _jpeg("red"), "path": None}, {"bytes": b"broken", "path": None}, None],
            "text": ["a red dress", "a blue shirt", "no picture"],
            "item_ID": ["WOMEN-Dresses-id_00000001-01_1_front", "MEN-Denim-id_00000002-01_1_front", "x"],
            "category1": ["women", "men", "men"]}
    pq.write_table(pa.table(rows), mirror / "train-00000.parquet")
    fetch_hf(str(tmp_path / "mirror"), tmp_path / "raw")
    captions = json.loads((tmp_path / "raw/captions.json").read_text())
    assert captions["WOMEN-Dresses-id_00000001-01_1_front.jpg"] == "a red dress"
    assert sorted(p.name for p in (tmp_path / "raw/images").iterdir()) == [
        "MEN-Denim-id_00000002-01_1_front.jpg", "WOMEN-Dresses-id_00000001-01_1_front.jpg"]


def test_hf_repo_without_parquet_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="no Parquet"):
        fetch_hf(str(tmp_path), tmp_path / "raw")


def test_local_source_is_copied_and_checked(tmp_path: Path) -> None:
    generate_synthetic(tmp_path / "mine", n_items=2, seed=1, image_size=(64, 96))
    settings = DataSettings(source="local", local_path=str(tmp_path / "mine"), hf_repo="", n_items=2,
                            image_width=64, image_height=96,
                            deepfashion=_settings("http://unused", tmp_path))
    fetch_raw(settings, 42, tmp_path / "raw")
    assert sorted((tmp_path / "raw/images").iterdir()) and (tmp_path / "raw/captions.json").is_file()
    with pytest.raises(ValueError, match="data.local_path"):
        fetch_raw(dataclasses.replace(settings, local_path=str(tmp_path / "nothing")), 42, tmp_path / "raw2")
    assert not (tmp_path / "raw2").exists()


REPO = Path(__file__).resolve().parents[1]


def _dvc(repo: Path, *args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env['PATH']}"
    result = subprocess.run([sys.executable, "-m", "dvc", *args], cwd=repo, env=env, capture_output=True, text=True)
    assert result.returncode == 0, f"dvc {args} failed:\n{result.stdout[-2000:]}\n{result.stderr[-2000:]}"
    return result.stdout


def _project_copy(repo: Path) -> None:
    """The project's files (what git would commit) in a fresh git repository; DVC already initialised."""
    commit_all(copy_project(repo))


@pytest.mark.slow
def test_a_change_in_the_local_folder_reruns_download(tmp_path: Path) -> None:
    """data.local_path is a DVC dependency of download: an edited caption, an added or a removed image
    shows in `dvc status`; with the committed params (synthetic, placeholder folder) DVC works too."""
    repo = tmp_path / "project"
    _project_copy(repo)
    assert "download" in _dvc(repo, "status", "download")  # the synthetic default: a valid pipeline, never run
    mine = tmp_path / "mine"
    generate_synthetic(mine, n_items=2, seed=1, image_size=(64, 96))
    yaml = YAML()
    params = yaml.load(repo / "params.yaml")
    params["data"]["source"], params["data"]["local_path"] = "local", str(mine)
    yaml.dump(params, repo / "params.yaml")
    _dvc(repo, "repro", "download")
    assert "up to date" in _dvc(repo, "status", "download")
    assert sorted((repo / "data/raw/images").iterdir())

    captions = json.loads((mine / "captions.json").read_text(encoding="utf-8"))
    first = sorted(captions)[0]
    captions[first] = "a corrected caption"
    (mine / "captions.json").write_text(json.dumps(captions), encoding="utf-8")
    status = _dvc(repo, "status", "download")
    assert "changed deps" in status and str(mine) in status
    _dvc(repo, "repro", "download")
    assert json.loads((repo / "data/raw/captions.json").read_text(encoding="utf-8"))[first] == "a corrected caption"

    added = mine / "images" / f"added-{first}"
    shutil.copy(mine / "images" / first, added)
    assert "changed deps" in _dvc(repo, "status", "download")
    added.unlink()
    assert "up to date" in _dvc(repo, "status", "download")  # the added file, and nothing else, was the change
    (mine / "images" / first).unlink()
    assert "changed deps" in _dvc(repo, "status", "download")


def test_an_empty_local_path_is_refused_naming_the_key() -> None:
    """DVC cannot track an empty path (it fails with a bare AssertionError), so the settings refuse it."""
    raw = load_params(REPO / "params.yaml")
    raw["data"]["local_path"] = ""
    with pytest.raises(ConfigError, match="data.local_path is empty"):
        section(raw, "data")
