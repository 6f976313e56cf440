"""MLflow tracking: an unreachable store stops a stage at once; a store lost mid-run does not lose the work."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from fashion_search.config import load_params, stage_params
from fashion_search.tracking import TrackingUnavailableError, dvc_lock_hashes, start_run, tracking_uri


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


def test_a_plain_repro_is_tagged_workspace_not_an_empty_name(local_store: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    import mlflow

    for value in (None, ""):
        if value is None:
            monkeypatch.delenv("DVC_EXP_NAME", raising=False)
        else:
            monkeypatch.setenv("DVC_EXP_NAME", value)
        with start_run("split", {"seed": 42}) as logger:
            pass
        run = mlflow.get_run(logger.run_id)
        assert run.data.tags["dvc_exp_name"] == "workspace" and run.info.run_name == "split"
    monkeypatch.setenv("DVC_EXP_NAME", "lr-1e-4")
    with start_run("split", {"seed": 42}) as logger:
        pass
    assert mlflow.get_run(logger.run_id).data.tags["dvc_exp_name"] == "lr-1e-4"


def test_artifacts_follow_the_repository_when_it_is_moved(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The experiment's artifact location is fixed at creation; a moved repository re-anchors it, old runs too."""
    import mlflow

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    (old / "note.txt").write_text("artifact")
    monkeypatch.setenv("DVC_ROOT", str(old))
    with start_run("evaluate", {"seed": 42}) as logger:
        logger.log_artifact(old / "note.txt")
    first = logger.run_id
    assert not logger.failures and (old / "mlartifacts").is_dir()

    shutil.move(old, new)
    monkeypatch.setenv("DVC_ROOT", str(new))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)  # mlflow.set_tracking_uri exported the old one
    with start_run("evaluate", {"seed": 42}) as logger:
        logger.log_artifact(new / "note.txt")
    assert not logger.failures
    assert not old.exists(), "an artifact went to the old path"
    mlflow.set_tracking_uri(f"sqlite:///{new / 'mlflow.db'}")
    assert mlflow.get_experiment_by_name("fashion-search").artifact_location == (new / "mlartifacts").as_uri()
    for run_id in (first, logger.run_id):
        uri = mlflow.get_run(run_id).info.artifact_uri
        assert uri.startswith((new / "mlartifacts").as_uri() + "/")
        assert (Path(uri.removeprefix("file://")) / "note.txt").is_file()


def test_every_run_carries_every_params_key_and_the_data_source(tmp_path, monkeypatch) -> None:
    """An evaluate run can be compared by finetune.lr in the MLflow UI: every run logs all of params.yaml."""
    from mlflow.tracking import MlflowClient

    shutil.copy(Path(__file__).resolve().parents[1] / "params.yaml", tmp_path / "params.yaml")
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    with start_run("evaluate", {"evaluate.batch_size": 128}) as logger:
        logger.log_metrics({"x": 1.0})
    client = MlflowClient(tracking_uri=uri)
    (run,) = client.search_runs([client.get_experiment_by_name("fashion-search").experiment_id],
                                filter_string="tags.stage = 'evaluate'")
    assert run.data.params["finetune.lr"] == "1e-06" and run.data.params["evaluate.batch_size"] == "128"
    assert run.data.params["split.val_size"] == "0.1"
    assert run.data.tags["data_source"] == "synthetic" and run.data.tags["model_name"] == "tiny"


def _project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, params: str | None = None):
    """A working copy with params.yaml and a stage script, its own SQLite store; returns an MlflowClient."""
    from mlflow.tracking import MlflowClient

    root = Path(__file__).resolve().parents[1]
    (tmp_path / "params.yaml").write_text(params or (root / "params.yaml").read_text())
    (tmp_path / "stages").mkdir(exist_ok=True)
    (tmp_path / "stages" / "finetune.py").write_text("print('finetune')\n")
    monkeypatch.chdir(tmp_path)
    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.delenv("DVC_EXP_NAME", raising=False)
    return MlflowClient(tracking_uri=uri)


def _runs(client, stage: str | None = None) -> list:
    experiment = client.get_experiment_by_name("fashion-search").experiment_id
    return client.search_runs([experiment], filter_string=f"tags.stage = '{stage}'" if stage else "")


def test_the_stages_of_one_pipeline_nest_under_one_parent_and_a_change_makes_another(tmp_path, monkeypatch) -> None:
    client = _project(tmp_path, monkeypatch)
    with start_run("train_baseline", {"seed": 42}) as first:
        pass
    with start_run("finetune", {"seed": 42}) as second:
        pass
    (parent,) = _runs(client, "pipeline")
    assert first.parent_id == second.parent_id == parent.info.run_id
    assert parent.info.status == "FINISHED" and parent.info.run_name == "workspace"
    assert parent.data.params["finetune.lr"] == "1e-06" and parent.data.params["split.val_size"] == "0.1"
    for logger in (first, second):
        run = client.get_run(logger.run_id)
        assert run.data.tags["mlflow.parentRunId"] == parent.info.run_id
        assert run.data.tags["pipeline"] == parent.data.tags["pipeline"]

    monkeypatch.setenv("DVC_EXP_NAME", "lr-1e-4")  # another experiment: another parent, even with equal params
    with start_run("finetune", {"seed": 42}) as experiment:
        pass
    (tmp_path / "stages" / "finetune.py").write_text("print('edited')\n")  # edited code: another pipeline
    with start_run("finetune", {"seed": 42}) as edited:
        pass
    parents = {logger.parent_id for logger in (first, experiment, edited)}
    assert len(parents) == 3 and len(_runs(client, "pipeline")) == 3
    assert client.get_run(experiment.parent_id).info.run_name == "lr-1e-4"


def test_runs_log_validated_values_and_defaults_the_file_leaves_out(tmp_path, monkeypatch) -> None:
    """`dvc exp run -S finetune.lr=1e-4` writes 1e-04: the run shows the number; a default is shown too."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "params.yaml").read_text().replace("  lr: 1.0e-6\n  batch_size: 32\n  temperature: 0.1\n"
                                                      "  weight_decay: 0.01\n  warmup_steps: 0",
                                                      "  lr: 1e-04\n  batch_size: 32\n  temperature: 0.1\n"
                                                      "  weight_decay: 0.01\n  warmup_steps: 0", 1)
    text = text.replace("  schedule: cosine         # after the warm-up: cosine | constant\n", "", 1)
    assert "1e-04" in text and "schedule: cosine         # after" not in text
    client = _project(tmp_path, monkeypatch, text)
    with start_run("finetune", {"seed": 42}):
        pass
    (run,) = _runs(client, "finetune")
    assert run.data.params["finetune.lr"] == "0.0001"
    assert run.data.params["xattn.schedule"] == "cosine"


def test_the_stage_params_are_logged_as_validated_numbers(tmp_path, monkeypatch) -> None:
    """A quoted "1e-4" or `epochs: 2.0` in params.yaml trains as the number: its run is logged as the number,
    so runs compare by value, not by how the file spelt it (the stage passes its raw params, stage_params)."""
    root = Path(__file__).resolve().parents[1]
    text = (root / "params.yaml").read_text().replace("finetune:                  # the report's fine-tuning\n"
                                                      "  epochs: 1\n  lr: 1.0e-6\n",
                                                      "finetune:                  # the report's fine-tuning\n"
                                                      "  epochs: 2.0\n  lr: \"1e-4\"\n", 1)
    assert 'lr: "1e-4"' in text
    client = _project(tmp_path, monkeypatch, text)
    params = load_params(tmp_path / "params.yaml")
    with start_run("finetune", stage_params(params, "finetune")):
        pass
    for run in (*_runs(client, "finetune"), *_runs(client, "pipeline")):
        assert run.data.params["finetune.lr"] == "0.0001" and run.data.params["finetune.epochs"] == "2"


def test_evaluate_finds_the_run_that_trained_a_cached_model(tmp_path, monkeypatch) -> None:
    """The model a later pipeline takes from DVC's cache is tied to the run of the pipeline that trained it."""
    client = _project(tmp_path, monkeypatch)
    with start_run("train_baseline", {"seed": 42}) as trained:
        trained.set_tags({"model_digest": "abc123"})
    monkeypatch.setenv("DVC_EXP_NAME", "lr-1e-4")
    with start_run("evaluate", {"seed": 42}) as evaluated:
        found = evaluated.source_runs({"baseline": ("abc123", "train_baseline"),
                                       "finetuned": ("fff000", "finetune")})
        evaluated.set_tags({"source_run.baseline": found["baseline"]}, on_parent=True)
    assert found == {"baseline": trained.run_id}  # a digest no run logged is left out, not guessed
    assert trained.parent_id != evaluated.parent_id
    for run_id in (evaluated.run_id, evaluated.parent_id):
        assert client.get_run(run_id).data.tags["source_run.baseline"] == trained.run_id
    assert "source_run.baseline" not in client.get_run(trained.parent_id).data.tags


def test_dvc_lock_hashes_are_read_per_output(tmp_path: Path) -> None:
    lock = tmp_path / "dvc.lock"
    lock.write_text("schema: '2.0'\nstages:\n  finetune:\n    cmd: python stages/finetune.py\n    outs:\n"
                    "    - path: models/finetuned\n      hash: md5\n      md5: 0123.dir\n      size: 9\n"
                    "    - path: checkpoints/finetune\n      hash: md5\n      md5: 4567.dir\n")
    assert dvc_lock_hashes(["models/finetuned", "models/xattn"], lock) == {"models/finetuned": "0123.dir"}
    assert dvc_lock_hashes(["models/finetuned"], tmp_path / "absent.lock") == {}
