"""The default data is pinned: the embedded run's gains must come from the model, not easier data.

Any change to what the synthetic generator writes for the default params (which attributes exist,
how they are drawn, the captions, the pictures, the number of items) changes this hash, so it can
only happen deliberately, with the hash updated in the same commit and the reason in its message.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest
from ruamel.yaml import YAML

from fashion_search.data.synthetic import generate_synthetic

REPO = Path(__file__).resolve().parents[1]
# images, captions.json and the shape/fabric/pattern label files are the same bytes as before the garment
# file was added (the synthetic source's garment colours and skirt-or-trousers, for the shopper protocol)
DEFAULT_RAW_SHA256 = "5ba21b216fb947231f594486ce2a28ce5b549fce03f5c2581415d02c1a091fe7"


def tree_sha256(root: Path) -> str:
    digest = hashlib.sha256()
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        digest.update(path.relative_to(root).as_posix().encode() + b"\0")
        digest.update(hashlib.sha256(path.read_bytes()).digest())
    return digest.hexdigest()


@pytest.mark.slow
def test_default_synthetic_data_is_pinned(tmp_path: Path) -> None:
    params = YAML(typ="safe", pure=True).load((REPO / "params.yaml").read_text(encoding="utf-8"))
    data = params["data"]
    assert data["source"] == "synthetic"
    generate_synthetic(tmp_path, n_items=data["n_items"], seed=params["seed"],
                       image_size=(data["image_width"], data["image_height"]))
    assert tree_sha256(tmp_path) == DEFAULT_RAW_SHA256
