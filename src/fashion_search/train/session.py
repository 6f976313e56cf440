"""What every training stage does around its loop: one process or several under torchrun,
MLflow on rank 0 only, step checkpoints to resume from, and outputs written once."""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fashion_search.config import RuntimeSettings
from fashion_search.device import Runtime, pick_runtime
from fashion_search.atomic import write_json
from fashion_search.tracking import LossCurve, RunLogger, start_run
from fashion_search.train.distributed import World, join, leave
from fashion_search.train.resume import StepCheckpoints, fingerprint

LAUNCH_KEYS = {"processes", "checkpoint_every"}


@dataclass
class Session:
    world: World
    runtime: Runtime
    checkpoints: StepCheckpoints
    logger: RunLogger | None  # None on every rank but 0

    @property
    def loss_curve(self) -> LossCurve | None:
        return LossCurve(self.logger) if self.logger is not None else None

    def finish(self, losses: list[float], save: Callable[[], None], metrics: Path,
               summary: dict[str, Any] | None = None) -> None:
        """On rank 0: log the final loss, write the model (`save`) and the metrics file, then
        shrink the step state to its record; the other ranks only wait for training to end."""
        if self.logger is None:
            return
        final = losses[-1] if losses else None
        if final is not None:
            self.logger.log_metrics({"final_loss": final})
        save()
        write_json(metrics, {"steps": len(losses), "final_loss": final, **(summary or {})})
        self.checkpoints.finish(len(losses))


@contextmanager
def training_session(stage: str, tracked: dict[str, Any], runtime: RuntimeSettings, state: Path,
                     checkpoint_every: int, inputs: Sequence[Path]) -> Iterator[Session]:
    """Joins the process group (the stage has re-executed itself under torchrun when
    `runtime.processes` > 1) and opens the stage's MLflow run on rank 0. `inputs` (and `tracked`)
    fingerprint the step state."""
    world, device = join(pick_runtime(runtime.device, runtime.precision, runtime.compile))
    checkpoints = StepCheckpoints(state, fingerprint(_without_launch(tracked), inputs), checkpoint_every)
    try:
        if world.main:
            with start_run(stage, tracked) as logger:
                yield Session(world, device, checkpoints, logger)
        else:
            yield Session(world, device, checkpoints, None)
    finally:
        leave()


def _without_launch(tracked: dict[str, Any]) -> dict[str, Any]:
    """The params the step state depends on. How many processes share the batches and how often
    the state is saved do not change the steps: a state saved by one process resumes under four."""
    return {key: {k: v for k, v in value.items() if k not in LAUNCH_KEYS} if isinstance(value, dict) else value
            for key, value in tracked.items()}
