"""MLflow: where runs go, what every run carries, and logging that does not slow training.

Default store: SQLite at the repository root with artifacts beside it, so that
`mlflow ui` started there shows every run, including those of `dvc exp run --queue`.
MLFLOW_TRACKING_URI overrides it (a shared tracking server, say).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from fashion_search.config import ConfigError, flatten, load_params
from fashion_search.errors import UserError
from fashion_search.paths import project_root

EXPERIMENT = "fashion-search"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
WORKSPACE = "workspace"  # the dvc_exp_name tag of a plain `dvc repro` (DVC sets DVC_EXP_NAME only for experiments)


def default_store_uri() -> str:
    """The SQLite store at the repository root."""
    return f"sqlite:///{project_root() / DB_FILE}"


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI if set, else the SQLite store at the repository root."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_store_uri()


def git_commit(root: Path) -> str:
    """The commit the code came from; 'unknown' outside a git repository."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, check=True)
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return out.stdout.strip()


def _ensure_experiment(mlflow: Any, name: str) -> str:
    """Create the experiment with its artifacts beside the store (not in the run's working copy).

    MLflow fixes an experiment's artifact location when it is created; a repository moved or copied
    since would send its artifacts to the old path, so the default store is re-anchored at the
    current repository root on every run (`relocate_artifacts`)."""
    location = (project_root() / ARTIFACTS_DIR).as_uri()
    existing = mlflow.get_experiment_by_name(name)
    if existing is not None:
        if existing.artifact_location != location and tracking_uri() == default_store_uri():
            relocate_artifacts(project_root() / DB_FILE, existing.artifact_location, location)
        return existing.experiment_id
    try:
        return mlflow.create_experiment(name, artifact_location=location)
    except Exception:  # another stage created it in the meantime
        existing = mlflow.get_experiment_by_name(name)
        if existing is None:
            raise
        return existing.experiment_id


def relocate_artifacts(db: Path, old: str, new: str) -> None:
    """Point the default store's artifact paths from `old` (an mlartifacts folder at a former repository
    root) to `new`: the experiment's location and every run's artifact URI, whose files moved with the
    repository. A location the user chose (another name, a remote store) is left as it is."""
    if not (old.startswith("file://") and old.rstrip("/").endswith(f"/{ARTIFACTS_DIR}")):
        return
    old, new = old.rstrip("/"), new.rstrip("/")
    with closing(sqlite3.connect(db, timeout=30)) as connection, connection:
        connection.execute("UPDATE experiments SET artifact_location = ? WHERE artifact_location IN (?, ?)",
                           (new, old, old + "/"))
        connection.execute("UPDATE runs SET artifact_uri = ? || substr(artifact_uri, ?) "
                           "WHERE substr(artifact_uri, 1, ?) = ?", (new, len(old) + 1, len(old) + 1, old + "/"))


class TrackingUnavailableError(UserError, RuntimeError):
    """The MLflow store cannot be reached when a stage starts; the message says what to do."""


def _retrying(action: Callable[[], Any], attempts: int = 6) -> Any:
    """Retry briefly: SQLite answers "database is locked" while another experiment writes."""
    for attempt in range(attempts):
        try:
            return action()
        except Exception as error:  # MLflow wraps the store's errors in several types
            if attempt == attempts - 1 or "locked" not in str(error).lower():
                raise
            time.sleep(0.2 * 2**attempt)
    return None


@contextmanager
def start_run(stage: str, params: dict[str, Any]) -> Iterator["RunLogger"]:
    """An MLflow run for one stage, with every params.yaml key (flattened) and provenance tags.

    The store is checked before any work: unreachable, the stage stops at once.
    If it goes away later, the stage still finishes and writes its outputs; what
    could not be logged is reported at the end instead of crashing hours of work.
    """
    import mlflow  # imported here: it costs seconds and only tracked stages need it

    uri = tracking_uri()
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "2")  # fail in seconds, not minutes
    os.environ.setdefault("MLFLOW_HTTP_REQUEST_TIMEOUT", "10")
    mlflow.set_tracking_uri(uri)
    exp_name = os.environ.get("DVC_EXP_NAME") or WORKSPACE
    commit = git_commit(project_root())
    everything = whole_params()
    tags = {"stage": stage, "git_commit": commit, "dvc_exp_name": exp_name, "mlflow.source.git.commit": commit,
            "data_source": str(everything.get("data.source", "")), "model_name": str(everything.get("model.name", ""))}
    try:
        experiment_id = _retrying(lambda: _ensure_experiment(mlflow, EXPERIMENT))
        run = _retrying(lambda: mlflow.start_run(experiment_id=experiment_id, tags=tags,
                                                 run_name=stage if exp_name == WORKSPACE else f"{exp_name}:{stage}"))
        logged = {**everything, **flatten(params)}  # the stage's own keys as it validated them
        _retrying(lambda: mlflow.log_params({k: _param_value(v) for k, v in logged.items()}))
    except Exception as error:
        raise TrackingUnavailableError(
            f"the MLflow tracking store {uri} is not usable ({error.__class__.__name__}: {error}). Start the "
            "tracking server, or unset MLFLOW_TRACKING_URI to use the SQLite store at the repository root."
        ) from error
    logger = RunLogger(mlflow, run.info.run_id)
    status = "FAILED"
    try:
        yield logger
        status = "FINISHED"
    finally:
        logger.attempt("end the run", lambda: mlflow.end_run(status=status))
        logger.report()


def whole_params() -> dict[str, Any]:
    """Every key of the params.yaml the stage runs with, flattened: each run can be filtered and compared
    in the MLflow UI by any setting (the evaluate run by finetune.lr), not only by its stage's own."""
    try:
        return flatten(load_params(Path("params.yaml")))
    except ConfigError:
        return {}


def _param_value(value: Any) -> str:
    """MLflow params are strings of at most 6,000 characters."""
    return str(value)[:6000]


class RunLogger:
    """Logs in batches (one database write per call, not one per number) and never lets a
    tracking failure end a stage: failures are collected and reported when the run ends."""

    def __init__(self, mlflow: Any, run_id: str) -> None:
        self._mlflow = mlflow
        self.run_id = run_id
        self.failures: list[str] = []

    def attempt(self, what: str, action: Callable[[], Any]) -> None:
        try:
            _retrying(action)
        except Exception as error:  # the store went away mid-run
            self.failures.append(f"{what}: {error.__class__.__name__}: {str(error)[:200]}")

    def report(self) -> None:
        if self.failures:
            print(f"warning: {len(self.failures)} MLflow call(s) failed for run {self.run_id}; the stage's "
                  "outputs and metrics/ files are complete. First failure: " + self.failures[0], file=sys.stderr)

    def log_series(self, name: str, values: Sequence[float], first_step: int = 0) -> None:
        """A curve (loss per step) in as few writes as the store allows."""
        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        metrics = [Metric(name, float(v), now, first_step + i) for i, v in enumerate(values)]
        client = self._mlflow.tracking.MlflowClient()
        for start in range(0, len(metrics), 1000):  # the REST API caps a batch at 1,000 metrics
            chunk = metrics[start:start + 1000]
            self.attempt(f"log {name}", lambda: client.log_batch(self.run_id, metrics=chunk))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        self.attempt("log metrics", lambda: self._mlflow.log_metrics(values, step=step))

    def log_artifact(self, path: str | Path) -> None:
        self.attempt(f"log artifact {path}", lambda: self._mlflow.log_artifact(str(path)))


class LossCurve:
    """An epoch callback for the training loops: logs each epoch's step losses as they come."""

    def __init__(self, logger: RunLogger, name: str = "train_loss") -> None:
        self.logger, self.name, self.steps = logger, name, 0

    def __call__(self, epoch: int, losses: list[float]) -> None:
        self.logger.log_series(self.name, losses, first_step=self.steps)
        self.steps += len(losses)
        self.logger.log_metrics({"epoch_loss": sum(losses) / len(losses)}, step=epoch)
