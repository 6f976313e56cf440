"""metrics/timing.json: each stage DVC runs records its wall seconds; the total is what a full run costs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fashion_search.errors import UserError
from fashion_search.stage import TIMING_FILE, record_time, run, seconds_since_start


def test_record_time_keeps_each_stages_latest_and_their_sum(tmp_path: Path) -> None:
    path = tmp_path / "metrics/timing.json"
    record_time("download", 2.04, path)
    record_time("train_baseline", 60.0, path)
    record_time("download", 3.0, path)  # a rerun replaces the stage's own entry only
    assert json.loads(path.read_text()) == {"pipeline_seconds": 63.0, "stages": {"download": 3.0,
                                                                                 "train_baseline": 60.0}}


@pytest.mark.parametrize("content", ["not json", "[1, 2]", '{"stages": {"a": "x"}}', '{"other": 1}'])
def test_a_damaged_timing_file_is_started_again(tmp_path: Path, content: str) -> None:
    path = tmp_path / "timing.json"
    path.write_text(content)
    record_time("split", 1.5, path)
    assert json.loads(path.read_text()) == {"pipeline_seconds": 1.5, "stages": {"split": 1.5}}


def test_seconds_since_start_counts_this_process() -> None:
    assert 0 < seconds_since_start() < 24 * 3600


def _stage(monkeypatch: pytest.MonkeyPatch, tmp_path: Path, body, **env: str) -> Path:
    monkeypatch.chdir(tmp_path)
    for key in ("DVC_STAGE", "RANK"):
        monkeypatch.delenv(key, raising=False)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    try:
        run(body)
    except SystemExit:
        pass
    return tmp_path / TIMING_FILE


def test_a_stage_dvc_runs_records_its_time(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    path = _stage(monkeypatch, tmp_path, lambda: None, DVC_STAGE="evaluate")
    assert set(json.loads(path.read_text())["stages"]) == {"evaluate"}


@pytest.mark.parametrize("env", [{}, {"DVC_STAGE": "finetune", "RANK": "1"}])
def test_no_time_outside_dvc_or_from_a_second_rank(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                                   env: dict[str, str]) -> None:
    assert not _stage(monkeypatch, tmp_path, lambda: None, **env).exists()


def test_a_failed_stage_records_nothing(monkeypatch: pytest.MonkeyPatch, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def fails() -> None:
        raise UserError("bad param")

    assert not _stage(monkeypatch, tmp_path, fails, DVC_STAGE="split").exists()
    assert "error: bad param" in capsys.readouterr().err


def test_seconds_since_start_falls_back_when_the_clocks_disagree(monkeypatch: pytest.MonkeyPatch) -> None:
    import time

    monkeypatch.setattr(time, "clock_gettime", lambda clock: 0.0)  # a boot clock before the process started
    assert 0 < seconds_since_start() < 24 * 3600
