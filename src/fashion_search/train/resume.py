"""Resumable training state: a training stage killed mid-epoch resumes at its last saved step and
ends with the weights an uninterrupted run would have had. (A checkpoint, in this project, is a
finished model directory; this is the state of a run in progress.)

    <dir>/state.json           fingerprint, steps done, the loss of every step so far, and the
                               optimiser's, scheduler's and gradient scaler's settings
    <dir>/tensors.safetensors  trainable parameters, AdamW's moments, the RNG states

Bit-identical resumption needs everything a step depends on: the weights, the
optimiser's moments, the learning-rate schedule's position, the shuffling
generator as it was when the epoch began (its batches are replayed and the done
ones skipped) and the global RNG that dropout draws from.

The directory is a DVC output with `persist: true`, so DVC keeps it for the run
after a kill. A state written for other params or inputs (another fingerprint)
is ignored. Once the stage's outputs are written, `finish` shrinks it to a small
record of the completed run, so that complete runs leave the same bytes behind.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file, save_file

from fashion_search.atomic import atomic_path

STATE_FILE = "state.json"
TENSORS_FILE = "tensors.safetensors"


def fingerprint(params: dict[str, Any], inputs: Iterable[Path]) -> str:
    """A digest of the params and of every input file's bytes: what a saved state must match."""
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode())
    for root in inputs:
        files = sorted(p for p in Path(root).rglob("*") if p.is_file()) if Path(root).is_dir() else [Path(root)]
        for path in files:
            digest.update(path.relative_to(root).as_posix().encode() if path != Path(root) else b"")
            with path.open("rb") as stream:
                for block in iter(lambda: stream.read(1 << 20), b""):
                    digest.update(block)
    return digest.hexdigest()


@dataclass
class Progress:
    """Where a resumed run picks up: steps done, their losses, and the generator at the epoch's start."""

    step: int
    losses: list[float]
    epoch_generator: torch.Tensor


@dataclass
class Trainer:
    """The objects whose state the training state holds."""

    parameters: Sequence[torch.nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: Any  # torch.optim.lr_scheduler.LRScheduler
    scaler: torch.amp.GradScaler
    device: torch.device


class TrainingState:
    """Save every `every` steps into `directory`; restore the newest state with this fingerprint."""

    def __init__(self, directory: Path, fingerprint: str, every: int) -> None:
        self.directory, self.fingerprint, self.every = Path(directory), fingerprint, every

    def due(self, step: int, total: int) -> bool:
        return self.every > 0 and step % self.every == 0 and step < total

    def save(self, trainer: Trainer, progress: Progress) -> None:
        """Write both files into a fresh directory and rename it into place: a kill leaves the old state."""
        tensors = {f"param.{i}": p.detach().cpu().contiguous() for i, p in enumerate(trainer.parameters)}
        optimizer = trainer.optimizer.state_dict()
        for index, slots in optimizer["state"].items():
            tensors.update({f"optim.{index}.{name}": value.detach().cpu().contiguous()
                            for name, value in slots.items()})
        tensors["rng.cpu"] = torch.get_rng_state()
        tensors["rng.epoch_generator"] = progress.epoch_generator
        if trainer.device.type == "cuda":
            tensors["rng.cuda"] = torch.cuda.get_rng_state(trainer.device)
        state = {"fingerprint": self.fingerprint, "complete": False, "step": progress.step,
                 "losses": progress.losses, "param_groups": optimizer["param_groups"],
                 "optim_slots": {str(i): sorted(slots) for i, slots in optimizer["state"].items()},
                 "scheduler": trainer.scheduler.state_dict(), "scaler": trainer.scaler.state_dict()}
        with atomic_path(self.directory) as tmp:
            tmp.mkdir()
            save_file(tensors, str(tmp / TENSORS_FILE))
            (tmp / STATE_FILE).write_text(json.dumps(state), encoding="utf-8")

    def restore(self, trainer: Trainer) -> Progress | None:
        """Load a matching unfinished state into the trainer; None (train from the start) otherwise."""
        state = self._matching_state()
        if state is None:
            return None
        tensors = load_file(str(self.directory / TENSORS_FILE))
        with torch.no_grad():
            for i, parameter in enumerate(trainer.parameters):
                parameter.copy_(tensors[f"param.{i}"])
        slots = {int(i): {name: tensors[f"optim.{i}.{name}"] for name in names}
                 for i, names in state["optim_slots"].items()}
        trainer.optimizer.load_state_dict({"state": slots, "param_groups": state["param_groups"]})
        trainer.scheduler.load_state_dict(state["scheduler"])
        trainer.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(tensors["rng.cpu"])
        if "rng.cuda" in tensors and trainer.device.type == "cuda":
            torch.cuda.set_rng_state(tensors["rng.cuda"], trainer.device)
        print(f"resuming from step {state['step']} saved in {self.directory}", flush=True)
        return Progress(state["step"], state["losses"], tensors["rng.epoch_generator"])

    def finish(self, steps: int) -> None:
        """Replace the step state by a small record of the complete run (the DVC output's final bytes)."""
        with atomic_path(self.directory) as tmp:
            tmp.mkdir()
            record = {"fingerprint": self.fingerprint, "complete": True, "step": steps}
            (tmp / STATE_FILE).write_text(json.dumps(record, indent=2) + "\n", encoding="utf-8")

    def _matching_state(self) -> dict[str, Any] | None:
        path = self.directory / STATE_FILE
        if not path.is_file() or not (self.directory / TENSORS_FILE).is_file():
            return None
        try:
            state = json.loads(path.read_text(encoding="utf-8"))
        except ValueError:
            return None
        if state.get("fingerprint") != self.fingerprint:
            print(f"ignoring the step state in {self.directory}: it belongs to other params or inputs", flush=True)
            return None
        return None if state.get("complete", True) else state
