"""`fashion-search benchmark` on a small synthetic set: a checkpoint directory, an xattn directory, an offline id."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fashion_search.cli import main
from fashion_search.config import TinyModelSettings
from fashion_search.data.pairs import build_pairs, write_pairs
from fashion_search.data.synthetic import generate_synthetic
from fashion_search.models.clip import build_tiny
from fashion_search.models.xattn import XattnModel, new_scorer
from fashion_search.text import build_tokenizer
from fashion_search.tokenize import tokenize_pairs

REPO = Path(__file__).resolve().parents[1]
TINY = TinyModelSettings(embed_dim=32, layers=1, heads=2, image_size=32, patch_size=8, vocab_size=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml, data/raw (8 synthetic items), the pairs file, an untrained tiny CLIP and an xattn beside it."""
    root = tmp_path_factory.mktemp("bench")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    raw = root / "data/raw"
    generate_synthetic(raw, n_items=8, seed=0, image_size=(64, 96))
    pairs, _ = build_pairs(raw)
    tokenizer = build_tokenizer(pairs["caption"], TINY.vocab_size, 77)
    write_pairs(tokenize_pairs(pairs, tokenizer, 77)[0], root / "data/interim/captions.parquet")
    checkpoint = build_tiny(TINY, tokenizer, 77, seed=0)
    checkpoint.save(root / "models/tiny")
    XattnModel(checkpoint, new_scorer(TINY.embed_dim, 1, 2, 0.0, seed=0)).save(root / "models/xattn")
    return root


def run_cli(workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, *args: str) -> dict:
    monkeypatch.chdir(workdir)
    main(["benchmark", *args])
    return json.loads(capsys.readouterr().out)


def test_benchmark_a_checkpoint_directory_with_every_protocol(workdir, monkeypatch, capsys) -> None:
    report = run_cli(workdir, monkeypatch, capsys, "--model", "models/tiny")
    n_pairs = report["gallery"]["size"]
    assert n_pairs > 8 and report["gallery"]["items"] == 8
    assert set(report) == {"model", "pairs", "gallery", "strict", "item", "marqo", "gallery_32",
                           "published_marqo_zero_shot"}
    for protocol in ("strict", "item", "gallery_32"):
        assert all(0.0 <= report[protocol][f"{d}_recall_at_{k}"] <= 1.0 for d in ("t2i", "i2t") for k in (1, 5, 10))
    # Any view counts at item level: never below strict.
    assert all(report["item"][f"t2i_recall_at_{k}"] >= report["strict"][f"t2i_recall_at_{k}"] for k in (1, 5, 10))
    assert report["marqo"]["queries"] == report["gallery"]["unique_captions"]
    assert report["published_marqo_zero_shot"]["gallery_size"] == 42537


def test_benchmark_one_protocol_on_an_xattn_directory(workdir, monkeypatch, capsys) -> None:
    report = run_cli(workdir, monkeypatch, capsys, "--model", "models/xattn", "--protocol", "marqo")
    plain = run_cli(workdir, monkeypatch, capsys, "--model", "models/tiny", "--protocol", "marqo")
    assert set(report) == {"model", "pairs", "gallery", "marqo", "published_marqo_zero_shot"}
    # An untrained scorer equals the dual encoder's cosine: re-ranking changes nothing.
    assert report["marqo"] == pytest.approx(plain["marqo"])


def test_benchmark_of_a_model_that_is_not_there_is_one_clear_line(workdir, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--model", "no-such-org/no-such-clip", "--protocol", "strict"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "no-such-org/no-such-clip" in error and "HF_HUB_OFFLINE" in error
