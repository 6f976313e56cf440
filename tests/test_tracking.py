"""MLflow tracking: an unreachable store stops a stage at once; a store lost mid-run does not lose the work."""

from __future__ import annotations

from pathlib import Path

import pytest

from fashion_search.tracking import TrackingUnavailableError, start_run, tracking_uri


@pytest.fixture
def local_store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.setenv("DVC_ROOT", str(tmp_path))
    return tmp_path


def test_default_store_is_sqlite_at_the_dvc_root(local_store: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir("/")
    assert tracking_uri() == f"sqlite:///{local_store / 'mlflow.db'}"


def test_an_unreachable_server_stops_the_stage_with_a_clear_message(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "http://127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    with pytest.raises(TrackingUnavailableError, match="unset MLFLOW_TRACKING_URI"):
        with start_run("finetune", {"finetune": {"lr": 1e-6}}):
            pytest.fail("the stage body must not run")


def test_a_store_lost_mid_run_is_reported_not_raised(local_store: Path, capsys: pytest.CaptureFixture) -> None:
    import mlflow

    finished = False
    with start_run("finetune", {"finetune": {"lr": 1e-6}}) as logger:
        logger.log_metrics({"before": 1.0})
        mlflow.set_tracking_uri("http://127.0.0.1:9")  # the server goes away
        logger.log_series("train_loss", [3.0, 2.0])
        logger.log_metrics({"after": 2.0})
        finished = True
    assert finished and len(logger.failures) >= 2
    assert "MLflow call(s) failed" in capsys.readouterr().err
    mlflow.set_tracking_uri(f"sqlite:///{local_store / 'mlflow.db'}")
    run = mlflow.get_run(logger.run_id)
    assert run.data.metrics["before"] == 1.0 and run.data.params["finetune.lr"] == "1e-06"
    assert run.data.tags["stage"] == "finetune"
