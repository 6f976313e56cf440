"""Checkpoints load from safetensors and JSON only, and a damaged or tampered one is refused with a message."""

from __future__ import annotations

import json
import os
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from safetensors import SafetensorError
from transformers import CLIPModel

from conftest import TINY_MODEL
from fashion_search.models.clip import (INFO_FILE, WEIGHTS_HASHES, ModelNotFoundError, WeightsChangedError, build_tiny,
                                       file_sha256, load_checkpoint, load_pretrained)
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


def _flip_a_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0x01  # inside the tensors: the file still parses, only the numbers change
    path.write_bytes(bytes(data))


def test_the_weights_hashes_are_recorded_when_saving(saved: Path) -> None:
    info = json.loads((saved / "clip" / INFO_FILE).read_text())
    assert info[WEIGHTS_HASHES] == {"model.safetensors": file_sha256(saved / "clip" / "model.safetensors")}
    assert json.loads((saved / "scorer.json").read_text())[WEIGHTS_HASHES] == {
        "scorer.safetensors": file_sha256(saved / "scorer.safetensors")}
    assert WEIGHTS_HASHES not in load_checkpoint(saved / "clip").info  # checked, then not carried into a re-save


def test_flipped_weight_bytes_are_one_error_naming_the_file_and_the_stage(saved: Path, tmp_path: Path) -> None:
    copy = _copy(saved, tmp_path)
    info_path = copy / "clip" / INFO_FILE
    info_path.write_text(json.dumps({**json.loads(info_path.read_text()), "stage": "finetune"}))
    _flip_a_byte(copy / "clip" / "model.safetensors")
    with pytest.raises(WeightsChangedError, match=r"model\.safetensors is damaged.*dvc repro -f finetune") as error:
        load_checkpoint(copy / "clip")
    assert "\n" not in str(error.value)
    copy = _copy(saved, tmp_path / "scorer")
    _flip_a_byte(copy / "scorer.safetensors")
    with pytest.raises(WeightsChangedError, match=r"scorer\.safetensors is damaged.*dvc repro -f train_xattn"):
        load_xattn(copy)


def test_a_truncated_unhashed_weights_file_is_a_message_not_a_traceback(saved: Path, tmp_path: Path) -> None:
    """A checkpoint saved before the hashes were recorded: safetensors' own error becomes the message."""
    copy = _copy(saved, tmp_path)
    info_path = copy / "clip" / INFO_FILE
    info = json.loads(info_path.read_text())
    del info[WEIGHTS_HASHES]
    info_path.write_text(json.dumps({**info, "stage": "finetune"}))
    weights = copy / "clip" / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:1000])
    with pytest.raises(ModelNotFoundError, match=r"damaged or was tampered.*SafetensorError.*dvc repro -f finetune`"):
        load_checkpoint(copy / "clip")


def test_a_config_that_does_not_fit_the_weights_is_a_message_naming_the_stage(saved: Path, tmp_path: Path) -> None:
    """config.json is not hashed: an edited width meets the weights as torch's size mismatch (a RuntimeError)."""
    copy = _copy(saved, tmp_path)
    config_path = copy / "clip" / "config.json"
    config = json.loads(config_path.read_text())
    config["text_config"]["intermediate_size"] *= 2
    config_path.write_text(json.dumps(config))
    with pytest.raises(ModelNotFoundError, match=r"damaged or was tampered.*RuntimeError.*dvc repro -f train_xattn`"):
        load_xattn(copy)


def test_query_with_damaged_weights_is_one_line_and_exit_1(saved: Path, tmp_path: Path) -> None:
    """What `benchmark`, `query` and `serve` print: the stage runner's one line, no traceback."""
    copy = _copy(saved, tmp_path)
    _flip_a_byte(copy / "clip" / "model.safetensors")
    code = ("import sys; from fashion_search.stage import run; from fashion_search.models.clip import load_checkpoint;"
            f"run(lambda: load_checkpoint({str(copy / 'clip')!r}))")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            env={**os.environ, "PYTHONPATH": str(SRC)})
    assert result.returncode == 1
    assert result.stderr.startswith("error: ") and result.stderr.count("\n") == 1, result.stderr
    assert "model.safetensors" in result.stderr and "Traceback" not in result.stderr


def test_damaged_cached_weights_of_a_hugging_face_id_say_how_to_download_them_again(
        monkeypatch: pytest.MonkeyPatch) -> None:
    def damaged(*args: object, **kwargs: object) -> None:
        raise SafetensorError("Error while deserializing header: invalid header length")

    monkeypatch.setattr(CLIPModel, "from_pretrained", damaged)
    with pytest.raises(ModelNotFoundError, match=r"of 'org/clip' in the Hugging Face cache are damaged "
                                                 r"\(SafetensorError: .*`hf cache rm model/org/clip`"):
        load_pretrained("org/clip")
