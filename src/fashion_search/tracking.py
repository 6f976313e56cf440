"""MLflow: where runs go, what every run carries, and logging that does not slow training.

Default store: SQLite at the repository root with artifacts beside it, so that
`mlflow ui` started there shows every run, including those of `dvc exp run --queue`.
MLFLOW_TRACKING_URI overrides it (a shared tracking server, say).

Runs that belong together are nested under one parent run per pipeline: the stages that ran
with one params.yaml, one code state and one DVC experiment name (the `pipeline` tag: a digest
of those three). DVC runs each stage as its own process and gives them no shared id, so the
first stage that runs creates the parent and the later ones find it by that tag. A stage DVC took
from its cache has no run of its own in the pipeline: the evaluate run (and its parent) name the
run that produced each model it scored (`source_run.<model>`), found by the model's weights digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path
from typing import Any

from fashion_search.config import SECTIONS, ConfigError, flatten, load_params, section
from fashion_search.errors import UserError
from fashion_search.paths import project_root

EXPERIMENT = "fashion-search"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "mlartifacts"
WORKSPACE = "workspace"  # the dvc_exp_name tag of a plain `dvc repro` (DVC sets DVC_EXP_NAME only for experiments)
PIPELINE_TAG = "pipeline"  # shared by a pipeline's parent run and its stage runs
PARENT_STAGE = "pipeline"  # the `stage` tag of a parent run
DIGEST_TAG = "model_digest"  # on a training run: the digest of the model it wrote (models.loader.model_digest)
# what the pipeline id covers besides params.yaml: the code every stage runs
CODE = ("dvc.yaml", "stages", "src/fashion_search")


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
    """An MLflow run for one stage, with every params.yaml key (flattened, validated where its section
    validates), the stage's `params` besides, and provenance tags.

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
    pipeline = pipeline_id(exp_name, commit, everything, Path.cwd())
    tags = {"git_commit": commit, "dvc_exp_name": exp_name, "mlflow.source.git.commit": commit,
            "data_source": str(everything.get("data.source", "")), "model_name": str(everything.get("model.name", "")),
            PIPELINE_TAG: pipeline}
    # The stage's own params are read from the same params.yaml: where it validates, the typed value is
    # logged (a quoted "1e-4" as 0.0001), so runs compare by the number, not by how the file spells it.
    logged = {k: _param_value(v) for k, v in {**flatten(params), **everything}.items()}
    try:
        experiment_id = _retrying(lambda: _ensure_experiment(mlflow, EXPERIMENT))
        parent = _retrying(lambda: _parent_run(mlflow, experiment_id, exp_name, tags, logged))
        run = _retrying(lambda: mlflow.start_run(
            experiment_id=experiment_id, tags={**tags, "stage": stage, "mlflow.parentRunId": parent},
            run_name=stage if exp_name == WORKSPACE else f"{exp_name}:{stage}"))
        _retrying(lambda: mlflow.log_params(logged))
    except Exception as error:
        raise TrackingUnavailableError(
            f"the MLflow tracking store {uri} is not usable ({error.__class__.__name__}: {error}). Start the "
            "tracking server, or unset MLFLOW_TRACKING_URI to use the SQLite store at the repository root."
        ) from error
    logger = RunLogger(mlflow, run.info.run_id, parent)
    status = "FAILED"
    try:
        yield logger
        status = "FINISHED"
    finally:
        logger.attempt("end the run", lambda: mlflow.end_run(status=status))
        logger.report()


def whole_params() -> dict[str, Any]:
    """Every key of the params.yaml the stage runs with, flattened: each run can be filtered and compared
    in the MLflow UI by any setting (the evaluate run by finetune.lr), not only by its stage's own.

    Validated values (`1e-04` as written by `dvc exp run -S` is the number 0.0001, a default the file
    omits is present); a section another stage would refuse is logged as written, for that stage to report."""
    try:
        params = load_params(Path("params.yaml"))
    except ConfigError:
        return {}
    values = dict(params)
    for name in SECTIONS:
        if name in params:
            try:
                values[name] = _as_dict(section(params, name))
            except ConfigError:
                pass
    return flatten(values)


def _as_dict(settings: Any) -> Any:
    """A validated settings object as nested dicts (dataclasses.asdict would copy the lists it holds)."""
    if not dataclasses.is_dataclass(settings):
        return settings
    return {field.name: _as_dict(getattr(settings, field.name)) for field in dataclasses.fields(settings)}


def pipeline_id(exp_name: str, commit: str, params: dict[str, Any], root: Path) -> str:
    """What the stages of one `dvc repro` or `dvc exp run` share: the experiment name, the commit, every
    setting and the bytes of the code the stages run (uncommitted edits included). Two invocations share it
    only when nothing differs (`dvc repro -f` of an unchanged project): their runs nest under one parent."""
    digest = hashlib.sha256(json.dumps({"exp": exp_name, "commit": commit, "params": params}, sort_keys=True,
                                       default=str).encode())
    for top in CODE:
        path = root / top
        files = sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.is_file() else []
        for file in files:
            digest.update(str(file.relative_to(root)).encode() + b"\0" + file.read_bytes() + b"\0")
    return digest.hexdigest()[:16]


def _parent_run(mlflow: Any, experiment_id: str, exp_name: str, tags: dict[str, str],
                params: dict[str, str]) -> str:
    """The pipeline's parent run: found by its tag, or created (finished at once: a stage that fails
    leaves no parent running forever) with every param, so that parents compare like their stages."""
    from mlflow.entities import Param

    client = mlflow.tracking.MlflowClient()
    found = client.search_runs([experiment_id], max_results=1, order_by=["attributes.start_time ASC"],
                               filter_string=f"tags.{PIPELINE_TAG} = '{tags[PIPELINE_TAG]}' and "
                                             f"tags.stage = '{PARENT_STAGE}'")
    if found:
        return found[0].info.run_id
    run = client.create_run(experiment_id, run_name=exp_name, tags={**tags, "stage": PARENT_STAGE})
    items = [Param(key, value) for key, value in params.items()]
    for start in range(0, len(items), 100):  # the REST API caps a batch at 100 params
        client.log_batch(run.info.run_id, params=items[start:start + 100])
    client.set_terminated(run.info.run_id, "FINISHED")
    return run.info.run_id


def dvc_lock_hashes(paths: Sequence[str], lock: Path = Path("dvc.lock")) -> dict[str, str]:
    """The hash dvc.lock records for each of `paths` (stage outputs), as DVC wrote it when that stage ran
    or was taken from the cache in this pipeline; a path dvc.lock does not list is left out."""
    from ruamel.yaml import YAML

    if not lock.is_file():
        return {}
    recorded = {}
    for stage in (YAML(typ="safe", pure=True).load(lock.read_text(encoding="utf-8")) or {}).get("stages", {}).values():
        for out in stage.get("outs", []):
            if out.get("path") in paths and "md5" in out:
                recorded[out["path"]] = out["md5"]
    return recorded


def _param_value(value: Any) -> str:
    """MLflow params are strings of at most 6,000 characters."""
    return str(value)[:6000]


class RunLogger:
    """Logs in batches (one database write per call, not one per number) and never lets a
    tracking failure end a stage: failures are collected and reported when the run ends."""

    def __init__(self, mlflow: Any, run_id: str, parent_id: str | None = None) -> None:
        self._mlflow = mlflow
        self.run_id = run_id
        self.parent_id = parent_id  # the pipeline's parent run
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
        self._log_batch(self.run_id, [Metric(name, float(v), now, first_step + i) for i, v in enumerate(values)],
                        f"log {name}")

    def _log_batch(self, run_id: str, metrics: list[Any], what: str) -> None:
        client = self._mlflow.tracking.MlflowClient()
        for start in range(0, len(metrics), 1000):  # the REST API caps a batch at 1,000 metrics
            chunk = metrics[start:start + 1000]
            self.attempt(what, lambda: client.log_batch(run_id, metrics=chunk))

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        values = {k: float(v) for k, v in metrics.items()}
        self.attempt("log metrics", lambda: self._mlflow.log_metrics(values, step=step))

    def set_tags(self, tags: dict[str, str], on_parent: bool = False) -> None:
        """Tags on the stage's run, and with `on_parent` on the pipeline's parent run too."""
        from mlflow.entities import RunTag

        client = self._mlflow.tracking.MlflowClient()
        for run_id in [self.run_id, *([self.parent_id] if on_parent and self.parent_id else [])]:
            items = [RunTag(key, str(value)) for key, value in tags.items()]
            self.attempt("set tags", lambda: client.log_batch(run_id, tags=items))

    def log_parent_metrics(self, metrics: dict[str, float]) -> None:
        """Headline figures on the parent run as well: one row per pipeline in the runs table."""
        from mlflow.entities import Metric

        if self.parent_id is None:
            return
        now = int(time.time() * 1000)
        self._log_batch(self.parent_id, [Metric(name, float(value), now, 0) for name, value in metrics.items()],
                        "log parent metrics")

    def source_runs(self, digests: dict[str, tuple[str, str]]) -> dict[str, str]:
        """For each model name -> (its weights digest, the stage that writes it): the id of the newest
        run of that stage that logged that digest, in this pipeline or an earlier one DVC's cache
        stands for; a model no run logged (written outside DVC) is left out."""
        client = self._mlflow.tracking.MlflowClient()
        experiment = self._mlflow.get_run(self.run_id).info.experiment_id
        found = {}
        for name, (digest, stage) in digests.items():
            try:
                runs = _retrying(lambda: client.search_runs(
                    [experiment], max_results=1, order_by=["attributes.start_time DESC"],
                    filter_string=f"tags.{DIGEST_TAG} = '{digest}' and tags.stage = '{stage}'"))
            except Exception as error:
                self.failures.append(f"find the run of {name}: {error.__class__.__name__}: {str(error)[:200]}")
                continue
            if runs:
                found[name] = runs[0].info.run_id
        return found

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
