"""`fashion-search benchmark` on a small synthetic set, with every kind of `--model` the README promises:
a project model directory (dual encoder or xattn), a plain `save_pretrained` CLIP directory, and a
Hugging Face id already in the local cache (offline)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL
from fashion_search.cli import main
from fashion_search.data.pairs import build_pairs, write_pairs
from fashion_search.data.synthetic import generate_synthetic
from fashion_search.models.clip import INFO_FILE, build_tiny, load_checkpoint
from fashion_search.models.xattn import XattnModel, new_scorer
from fashion_search.text import build_tokenizer
from fashion_search.tokenize import tokenize_pairs

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """params.yaml, data/raw (8 synthetic items), the pairs file, an untrained tiny CLIP and an xattn beside it."""
    root = tmp_path_factory.mktemp("bench")
    shutil.copy(REPO / "params.yaml", root / "params.yaml")
    raw = root / "data/raw"
    generate_synthetic(raw, n_items=8, seed=0, image_size=(64, 96))
    pairs, _ = build_pairs(raw)
    tokenizer = build_tokenizer(pairs["caption"], TINY_MODEL.vocab_size, 77)
    write_pairs(tokenize_pairs(pairs, tokenizer, 77)[0], root / "data/interim/captions.parquet")
    checkpoint = build_tiny(TINY_MODEL, tokenizer, 77, seed=0)
    checkpoint.save(root / "models/tiny")
    XattnModel(checkpoint, new_scorer(TINY_MODEL.embed_dim, 1, 2, 0.0, seed=0)).save(root / "models/xattn")
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
                           "published_marqo_zero_shot", "shopper"}
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


def test_benchmark_a_token_level_xattn_re_ranks_with_its_token_states(workdir, monkeypatch, capsys) -> None:
    checkpoint = load_checkpoint(workdir / "models/tiny")
    untrained = new_scorer(TINY_MODEL.embed_dim, 1, 2, 0.0, seed=0, features="tokens").eval()
    moved = new_scorer(TINY_MODEL.embed_dim, 1, 2, 0.0, seed=0, features="tokens")
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in moved.parameters():
            parameter.add_(0.3 * torch.randn(parameter.shape, generator=generator))
    XattnModel(checkpoint, untrained).save(workdir / "models/xattn-tokens-untrained")
    XattnModel(checkpoint, moved.eval()).save(workdir / "models/xattn-tokens")
    plain, start, trained = (run_cli(workdir, monkeypatch, capsys, "--model", model, "--protocol", "strict")["strict"]
                             for model in ("models/tiny", "models/xattn-tokens-untrained", "models/xattn-tokens"))
    # An untrained token scorer equals the dual encoder's cosine: re-ranking changes nothing; a moved one re-orders.
    assert start == pytest.approx(plain)
    assert trained["t2i_mean_rank"] != pytest.approx(plain["t2i_mean_rank"])


def test_benchmark_of_a_model_that_is_not_there_is_one_clear_line(workdir, monkeypatch, capsys) -> None:
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--model", "no-such-org/no-such-clip", "--protocol", "strict"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and "no-such-org/no-such-clip" in error and "HF_HUB_OFFLINE" in error


@pytest.mark.parametrize("keep", [0.5, 0.001])  # the tensors cut short; the header itself cut short
def test_benchmark_of_a_plain_directory_with_truncated_weights_is_one_clear_line(
        workdir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture, tmp_path: Path,
        keep: float) -> None:
    """A save_pretrained CLIP (no manifest, so no hashes) whose safetensors file is cut short."""
    tokenizer = build_tokenizer(["a red dress", "blue denim jeans"], TINY_MODEL.vocab_size, 77)
    checkpoint = build_tiny(TINY_MODEL, tokenizer, 77, seed=0)
    for part in (checkpoint.model, checkpoint.tokenizer, checkpoint.processor):
        part.save_pretrained(tmp_path)
    weights = tmp_path / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:int(len(data) * keep)])
    monkeypatch.chdir(workdir)
    with pytest.raises(SystemExit) as exit_info:
        main(["benchmark", "--model", str(tmp_path), "--protocol", "strict"])
    assert exit_info.value.code == 1
    error = capsys.readouterr().err
    assert error.startswith("error: ") and error.count("\n") == 1, error
    assert f"{weights} is damaged" in error and "save_pretrained" in error and "HF_HUB_OFFLINE" not in error


def test_benchmark_a_plain_save_pretrained_directory(workdir, monkeypatch, capsys) -> None:
    """A CLIP saved with save_pretrained and nothing of the project's: its own tokenizer and processor."""
    plain = workdir / "plain-clip"
    if not plain.exists():
        shutil.copytree(workdir / "models/tiny", plain)
        (plain / INFO_FILE).unlink()
    report = run_cli(workdir, monkeypatch, capsys, "--model", "plain-clip", "--protocol", "strict")
    same = run_cli(workdir, monkeypatch, capsys, "--model", "models/tiny", "--protocol", "strict")
    assert report["strict"] == same["strict"]


def test_benchmark_a_hugging_face_id_from_the_local_cache(workdir: Path, tmp_path: Path) -> None:
    """The id resolves through a Hugging Face cache laid out as the hub writes it (refs/main -> a snapshot),
    offline. A fresh process, because huggingface_hub reads HF_HUB_CACHE when it is imported."""
    repo_id, commit = "fashion-search-test/tiny-clip", "0" * 40
    cache = tmp_path / "hub"
    snapshot = cache / f"models--{repo_id.replace('/', '--')}" / "snapshots" / commit
    shutil.copytree(workdir / "models/tiny", snapshot)
    (snapshot / INFO_FILE).unlink()
    (snapshot.parents[1] / "refs").mkdir()
    (snapshot.parents[1] / "refs" / "main").write_text(commit, encoding="utf-8")
    env = {**os.environ, "HF_HUB_CACHE": str(cache), "HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1"}
    command = [sys.executable, "-c", "from fashion_search.cli import main; main()",
               "benchmark", "--model", repo_id, "--protocol", "strict"]
    done = subprocess.run(command, cwd=workdir, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    report = json.loads(done.stdout)
    assert report["model"] == repo_id and 0.0 <= report["strict"]["t2i_recall_at_10"] <= 1.0


def test_benchmark_the_shopper_protocol(workdir, monkeypatch, capsys) -> None:
    """8 items give combinations with 10 relevant images only for the commonest garments: the 1-attribute
    family ("top"), measured with its base rate and chance beside it."""
    report = run_cli(workdir, monkeypatch, capsys, "--model", "models/xattn", "--protocol", "shopper")
    families = report["shopper"]["families"]
    assert "1_attribute" in families
    row = families["1_attribute"]
    assert 0.0 <= row["precision_at_10"] <= 1.0 and 0.0 < row["base_rate"] <= 1.0
    assert row["chance_precision_at_10"] == pytest.approx(row["base_rate"])
    assert row["precision_at_10_low"] <= row["precision_at_10"] <= row["precision_at_10_high"]
