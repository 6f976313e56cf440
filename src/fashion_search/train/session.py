"""What every training stage does around its loop: one process or several under torchrun,
MLflow on rank 0 only, a training state to resume from, and outputs written once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashion_search.atomic import write_json
from fashion_search.config import RuntimeSettings
from fashion_search.device import CPU, Runtime, pick_runtime
from fashion_search.models.loader import model_digest
from fashion_search.tracking import DIGEST_TAG, LossCurve, RunLogger, start_run
from fashion_search.train.distributed import SINGLE, World, join, leave
from fashion_search.train.resume import TrainingState, fingerprint

EpochCallback = Callable[[int, list[float]], None]

LAUNCH_KEYS = {"processes", "checkpoint_every"}
SCRATCH_DIR = "tmp"  # in the state directory: large temporary files of a run (locked towers' token tables)


@dataclass
class Session:
    """Where and how a training loop runs. The defaults are one process on the CPU that saves no
    state and logs nothing, as tests and benchmarks call the loops."""

    world: World = SINGLE
    runtime: Runtime = CPU
    state: TrainingState | None = None  # saved every few steps, resumed from when it matches
    logger: RunLogger | None = None  # the stage's MLflow run; None on every rank but 0
    on_epoch: EpochCallback | None = None  # each finished epoch's step losses (the MLflow loss curve)

    @property
    def scratch(self) -> Path | None:
        """Where a run's large temporary files go: inside its state directory, on the disk the stage writes
        to, which every save of the state replaces; None (the system's temporary folder) without a state."""
        return self.state.directory / SCRATCH_DIR if self.state is not None else None

    def finish(self, losses: list[float], save: Callable[[], None], out: Path, metrics: Path,
               summary: dict[str, Any] | None = None) -> None:
        """On rank 0: log the final loss, write the model (`save`, into `out`) and the metrics file,
        tag the run with the model's digest (how a later evaluate run finds it), then shrink the step
        state to its record; the other ranks only wait for training to end."""
        if self.logger is None:
            return
        final = losses[-1] if losses else None
        if final is not None:
            self.logger.log_metrics({"final_loss": final})
        save()
        digest = model_digest(out)
        if digest is not None:
            self.logger.set_tags({DIGEST_TAG: digest})
        write_json(metrics, {"steps": len(losses), "final_loss": final, **(summary or {})})
        if self.state is not None:
            self.state.finish(len(losses))


@contextmanager
def training_session(stage: str, tracked: dict[str, Any], runtime: RuntimeSettings, state_dir: Path,
                     checkpoint_every: int, inputs: Sequence[Path]) -> Iterator[Session]:
    """Joins the process group (the stage has re-executed itself under torchrun when
    `runtime.processes` > 1) and opens the stage's MLflow run on rank 0. `inputs` (and `tracked`)
    fingerprint the training state."""
    world, device = join(pick_runtime(runtime.device, runtime.precision, runtime.compile))
    state = TrainingState(state_dir, fingerprint(_without_launch(tracked), inputs), checkpoint_every)
    try:
        if world.main:
            with start_run(stage, tracked) as logger:
                yield Session(world, device, state, logger, LossCurve(logger))
        else:
            yield Session(world, device, state)
    finally:
        leave()


def _without_launch(tracked: dict[str, Any]) -> dict[str, Any]:
    """The params the step state depends on. How many processes share the batches and how often
    the state is saved do not change the steps: a state saved by one process resumes under four."""
    return {key: {k: v for k, v in value.items() if k not in LAUNCH_KEYS} if isinstance(value, dict) else value
            for key, value in tracked.items()}
