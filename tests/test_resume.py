"""Step checkpoints: a training run SIGKILLed mid-epoch resumes and ends bit-identical to an
uninterrupted one (its pictures augmented: a batch's augmentation follows from the batch); states of other runs are ignored; a complete run leaves a small record.

The runs are real subprocesses (`python -c TRAIN`): the one that is killed kills itself with
SIGKILL from its end-of-epoch callback, after its last step checkpoint and before the end,
which makes the moment of the kill exact instead of a race with the clock.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from fashion_search.train.resume import STATE_FILE, TENSORS_FILE, Progress, TrainingState, Trainer, fingerprint

# 16 pairs, batches of 4: 4 steps an epoch, 3 epochs; a state every 3 steps (mid-epoch at 3, 6 and 9).
TRAIN = """
import json, os, signal, sys
from pathlib import Path
import torch
from safetensors.torch import save_file
from fashion_search.config import TinyModelSettings, TrainSettings
from fashion_search.models.clip import build_tiny
from fashion_search.text import build_tokenizer
from fashion_search.train.loop import train_contrastive
from fashion_search.train.resume import TrainingState
from fashion_search.train.session import Session

state, out, kill_after_epoch, fingerprint = Path(sys.argv[1]), Path(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
captions = [f"a {c} dress with {p} patterns" for c in ("red", "blue", "green", "black")
            for p in ("striped", "floral", "lattice", "plain")]
tokenizer = build_tokenizer(captions, 300, 77)
pieces = [[ids] for ids in tokenizer(captions)["input_ids"]]
pixels = torch.randint(0, 256, (16, 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
small = TinyModelSettings(embed_dim=32, layers=1, heads=2, image_size=32, patch_size=8, vocab_size=300)
settings = TrainSettings(epochs=3, lr=1e-3, batch_size=4, temperature=0.1, weight_decay=0.01, warmup_steps=2,
                         schedule="cosine", grad_clip=1.0, workers=0, checkpoint_every=3, augment="flip_crop")
checkpoint = build_tiny(small, tokenizer, 77, seed=3)
seen = []

def on_epoch(epoch, values):
    seen.append([epoch, values])
    if epoch == kill_after_epoch:
        os.kill(os.getpid(), signal.SIGKILL)

state = TrainingState(state, fingerprint, settings.checkpoint_every)
losses = train_contrastive(checkpoint, pixels, pieces, settings, seed=3, session=Session(state=state, on_epoch=on_epoch))
save_file({k: v.contiguous() for k, v in checkpoint.model.state_dict().items()}, str(out / "model.safetensors"))
(out / "losses.json").write_text(json.dumps({"losses": losses, "epochs": seen}))
"""


def train(state: Path, out: Path, kill_after_epoch: int = -1) -> subprocess.CompletedProcess:
    out.mkdir(exist_ok=True)
    env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "2"}
    return subprocess.run([sys.executable, "-c", TRAIN, str(state), str(out), str(kill_after_epoch), "the-params"],
                          env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("resume")
    whole = train(root / "state-whole", root / "whole")
    assert whole.returncode == 0, whole.stderr[-2000:]
    killed = train(root / "state-killed", root / "killed", kill_after_epoch=1)
    assert killed.returncode == -signal.SIGKILL, killed.stderr[-2000:]
    (root / "killed-state").write_text((root / "state-killed" / STATE_FILE).read_text())
    resumed = train(root / "state-killed", root / "killed")
    assert resumed.returncode == 0, resumed.stderr[-2000:]
    assert "resuming from step 6" in resumed.stdout
    return {"root": root, "whole": root / "whole", "resumed": root / "killed"}


def test_a_run_killed_mid_training_resumes_to_bit_identical_weights(runs: dict[str, Path]) -> None:
    whole = load_file(str(runs["whole"] / "model.safetensors"))
    resumed = load_file(str(runs["resumed"] / "model.safetensors"))
    assert whole.keys() == resumed.keys()
    assert all(torch.equal(whole[name], resumed[name]) for name in whole)


def test_the_resumed_run_reports_every_step_and_every_epoch(runs: dict[str, Path]) -> None:
    whole = json.loads((runs["whole"] / "losses.json").read_text())
    resumed = json.loads((runs["resumed"] / "losses.json").read_text())
    assert len(whole["losses"]) == 12 and resumed["losses"] == whole["losses"]
    assert resumed["epochs"] == whole["epochs"]  # the finished epoch is replayed for the MLflow curve


def test_the_killed_run_left_a_mid_epoch_state(runs: dict[str, Path]) -> None:
    state = json.loads((runs["root"] / "killed-state").read_text())
    assert state["step"] == 6 and state["step"] % 4 != 0 and not state["complete"]
    assert len(state["losses"]) == 6


def make_trainer() -> Trainer:
    parameter = torch.nn.Parameter(torch.ones(3))
    optimizer = torch.optim.AdamW([parameter], lr=0.1)
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0)
    parameter.grad = torch.ones(3)
    optimizer.step()
    scheduler.step()
    return Trainer([parameter], optimizer, scheduler, torch.amp.GradScaler("cpu", enabled=False),
                   torch.device("cpu"))


def test_a_state_of_other_params_is_ignored(tmp_path: Path) -> None:
    trainer = make_trainer()
    TrainingState(tmp_path / "state", "params-a", 1).save(trainer, Progress(1, [0.5], torch.Generator().get_state()))
    assert TrainingState(tmp_path / "state", "params-b", 1).restore(trainer) is None
    restored = TrainingState(tmp_path / "state", "params-a", 1).restore(trainer)
    assert restored is not None and restored.step == 1 and restored.losses == [0.5]


def test_finish_leaves_only_a_deterministic_record(tmp_path: Path) -> None:
    checkpoints = TrainingState(tmp_path / "state", "params-a", 1)
    checkpoints.save(make_trainer(), Progress(1, [0.5], torch.Generator().get_state()))
    checkpoints.finish(12)
    first = (tmp_path / "state" / STATE_FILE).read_bytes()
    assert not (tmp_path / "state" / TENSORS_FILE).exists()
    assert json.loads(first) == {"fingerprint": "params-a", "complete": True, "step": 12}
    assert checkpoints.restore(make_trainer()) is None  # a complete run is not resumed
    checkpoints.finish(12)
    assert (tmp_path / "state" / STATE_FILE).read_bytes() == first


def test_the_fingerprint_follows_params_and_input_bytes(tmp_path: Path) -> None:
    (tmp_path / "model").mkdir()
    (tmp_path / "model" / "weights.bin").write_bytes(b"abc")
    base = fingerprint({"lr": 1e-6}, [tmp_path / "model"])
    assert fingerprint({"lr": 1e-6}, [tmp_path / "model"]) == base
    assert fingerprint({"lr": 1e-5}, [tmp_path / "model"]) != base
    (tmp_path / "model" / "weights.bin").write_bytes(b"abd")
    assert fingerprint({"lr": 1e-6}, [tmp_path / "model"]) != base
