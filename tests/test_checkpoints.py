"""Checkpoints load from safetensors and JSON only, and a damaged or tampered one is refused with a message."""

from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest

from conftest import TINY_MODEL
from fashion_search.models.clip import ModelNotFoundError, build_tiny, load_checkpoint
from fashion_search.models.xattn import XattnModel, load_xattn, new_scorer
from fashion_search.text import build_tokenizer

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokenizer = build_tokenizer([f"a red dress number {i}" for i in range(20)], 300, 77)
    directory = tmp_path_factory.mktemp("xattn")
    checkpoint = build_tiny(TINY_MODEL, tokenizer, 77, seed=1)
    XattnModel(checkpoint, new_scorer(32, 1, 4, 0.0, seed=1)).save(directory)
    return directory


def _copy(saved: Path, tmp_path: Path) -> Path:
    target = tmp_path / "copy"
    shutil.copytree(saved, target)
    return target


def test_a_saved_model_loads_back(saved: Path) -> None:
    model = load_xattn(saved)
    assert model.scorer.config.dim == 32 and model.encoder.info["trained_from"] == "scratch"


def test_a_tampered_config_is_refused(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    (copy / "clip" / "config.json").write_text("{ not json")
    with pytest.raises(ModelNotFoundError, match="damaged or was tampered"):
        load_checkpoint(copy / "clip")


def test_pickled_weights_are_never_loaded(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    (copy / "clip" / "model.safetensors").unlink()
    with (copy / "clip" / "pytorch_model.bin").open("wb") as stream:  # what an attacker could plant
        pickle.dump({"payload": "would run on unpickling"}, stream)
    with pytest.raises(ModelNotFoundError):
        load_checkpoint(copy / "clip")


def test_a_tampered_scorer_is_refused(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    (copy / "scorer.json").write_text('{"dim": 32, "layers": 1, "heads": 4, "dropout": 0.0, "exec": "x"}')
    with pytest.raises(ModelNotFoundError, match="tampered"):
        load_xattn(copy)
    copy = _copy(saved, tmp_path / "again")
    (copy / "scorer.safetensors").write_bytes((copy / "scorer.safetensors").read_bytes()[:100])
    with pytest.raises(ModelNotFoundError, match="tampered"):
        load_xattn(copy)


def test_no_module_unpickles() -> None:
    """No pickle, and torch.load only with weights_only=True, anywhere in the package."""
    for path in SRC.rglob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*import pickle|pickle\.load", text, re.M), path
        for call in re.findall(r"torch\.load\([^)]*\)", text):
            assert "weights_only=True" in call, (path, call)
    assert any(SRC.rglob("*.py"))
