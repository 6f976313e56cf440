"""Atomic outputs: the previous complete version or the new one, never half, and no litter."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fashion_search.atomic import atomic_path, write_text


def siblings(path: Path) -> list[str]:
    """Everything in the folder besides the output itself (temporary and stale copies would show here)."""
    return sorted(p.name for p in path.parent.iterdir() if p.name != path.name)


def test_a_file_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    with atomic_path(target) as tmp:
        assert tmp.parent == target.parent
        assert tmp != target and tmp.name.startswith(".")
        tmp.write_text('{"a": 1}', encoding="utf-8")
        assert not target.exists()
    assert target.read_text(encoding="utf-8") == '{"a": 1}'
    assert siblings(target) == []


def test_a_directory_appears_only_on_success(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "weights.bin").write_bytes(b"\x00\x01")
        (tmp / "config.json").write_text("{}", encoding="utf-8")
        assert not target.exists()
    assert target.is_dir()
    assert sorted(p.name for p in target.iterdir()) == ["config.json", "weights.bin"]
    assert siblings(target) == []


def test_missing_parent_folders_are_created(tmp_path: Path) -> None:
    target = tmp_path / "reports" / "metrics" / "strict.json"
    write_text(target, "x")
    assert target.read_text(encoding="utf-8") == "x"


def test_an_error_keeps_the_previous_file(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    write_text(target, "old")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_path(target) as tmp:
            tmp.write_text("half of the new", encoding="utf-8")
            raise RuntimeError("boom")
    assert target.read_text(encoding="utf-8") == "old"
    assert siblings(target) == []


def test_an_error_keeps_the_previous_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "old.txt").write_text("old", encoding="utf-8")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.mkdir()
            (tmp / "new.txt").write_text("new", encoding="utf-8")
            raise KeyboardInterrupt
    assert sorted(p.name for p in target.iterdir()) == ["old.txt"]
    assert siblings(target) == []


def test_an_error_on_the_first_write_leaves_nothing(tmp_path: Path) -> None:
    target = tmp_path / "pairs.parquet"
    with pytest.raises(ValueError):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"partial")
            raise ValueError
    assert not target.exists()
    assert siblings(target) == []


def test_stale_temporary_siblings_are_removed(tmp_path: Path) -> None:
    target = tmp_path / "metrics.json"
    stale_file = tmp_path / ".metrics.json.tmp-123"
    stale_file.write_text("left by a killed run", encoding="utf-8")
    stale_dir = tmp_path / ".metrics.json.tmp-old-456"
    stale_dir.mkdir()
    (stale_dir / "inside").write_text("x", encoding="utf-8")
    unrelated = tmp_path / ".other.json.tmp-123"
    unrelated.write_text("another output's business", encoding="utf-8")

    write_text(target, "new")
    assert target.read_text(encoding="utf-8") == "new"
    assert not stale_file.exists()
    assert not stale_dir.exists()
    assert unrelated.exists()
    assert siblings(target) == [".other.json.tmp-123"]


def test_replacing_an_existing_directory(tmp_path: Path) -> None:
    target = tmp_path / "model"
    target.mkdir()
    (target / "old.txt").write_text("old", encoding="utf-8")
    (target / "nested").mkdir()
    (target / "nested" / "deep.txt").write_text("deep", encoding="utf-8")
    with atomic_path(target) as tmp:
        tmp.mkdir()
        (tmp / "new.txt").write_text("new", encoding="utf-8")
    assert sorted(p.name for p in target.iterdir()) == ["new.txt"]
    assert (target / "new.txt").read_text(encoding="utf-8") == "new"
    assert siblings(target) == []


def test_write_text_replaces_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "params.json"
    write_text(target, "first")
    write_text(target, "second — with non-ASCII")
    assert target.read_text(encoding="utf-8") == "second — with non-ASCII"
    assert siblings(target) == []


def test_string_paths_are_accepted(tmp_path: Path) -> None:
    target = tmp_path / "a.txt"
    write_text(os.fspath(target), "ok")
    with atomic_path(os.fspath(tmp_path / "b.txt")) as tmp:
        assert isinstance(tmp, Path)
        tmp.write_text("ok", encoding="utf-8")
    assert (tmp_path / "b.txt").read_text(encoding="utf-8") == "ok"
