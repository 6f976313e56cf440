"""Both trainers on two gloo processes over loopback give the one-process loss curve.

Each rank embeds half of every global batch; the contrastive loss gathers the embeddings of both
ranks with their gradients, and the pair scorer's ranks each score their own queries against
candidates from the whole batch. The dropout of the scorer is off here: with it on, two ranks
draw other masks than one process does, and the curves may only agree in distribution.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.slow

RUN = """
import json, os, sys
import torch
import torch.distributed as dist
from fashion_search.config import TinyModelSettings, TrainSettings, XattnSettings
from fashion_search.models.clip import build_tiny
from fashion_search.models.xattn import XattnModel, new_scorer
from fashion_search.text import build_tokenizer
from fashion_search.train.distributed import SINGLE, current_world
from fashion_search.train.loop import train_contrastive
from fashion_search.train.session import Session
from fashion_search.train.xattn import train_xattn

out, trainer, negatives = sys.argv[1], sys.argv[2], int(sys.argv[3])
world = SINGLE
if os.environ.get("WORLD_SIZE"):
    dist.init_process_group("gloo")
    world = current_world()
captions = [f"a {c} {g} with {p} patterns" for c in ("red", "blue", "green", "black")
            for p in ("striped", "floral", "lattice", "plain") for g in ("dress", "shirt")]
tokenizer = build_tokenizer(captions, 300, 77)
pieces = [[ids] for ids in tokenizer(captions)["input_ids"]]
pixels = torch.randint(0, 256, (len(captions), 3, 32, 32), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))
small = TinyModelSettings(embed_dim=32, layers=1, heads=2, image_size=32, patch_size=8, vocab_size=300)
checkpoint = build_tiny(small, tokenizer, 77, seed=5)
if trainer == "contrastive":
    settings = TrainSettings(epochs=2, lr=1e-3, batch_size=8, temperature=0.1, weight_decay=0.01, warmup_steps=1,
                             schedule="cosine", grad_clip=1.0, workers=0, checkpoint_every=0)
    losses = train_contrastive(checkpoint, pixels, pieces, settings, seed=5, session=Session(world=world))
else:
    settings = XattnSettings(layers=1, heads=4, dropout=0.0, epochs=2, lr=1e-4, lock_image=False, lock_text=True,
                             head_lr=1e-3, batch_size=8, temperature=0.1, weight_decay=0.01, warmup_steps=1,
                             grad_clip=1.0, workers=0, checkpoint_every=0, negatives=negatives)
    xattn = XattnModel(checkpoint, new_scorer(32, 1, 4, 0.0, seed=5))
    groups = [i // 2 for i in range(len(captions))]  # pairs of two views of one item
    losses = train_xattn(xattn, pixels, pieces, groups, settings, seed=5, session=Session(world=world))
if world.main:
    json.dump(losses, open(out, "w"))
"""


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def losses_of(tmp_path: Path, processes: int, trainer: str, negatives: int = 0) -> list[float]:
    """Run the training in `processes` processes (ranks set up as torchrun would) and read rank 0's losses."""
    out = tmp_path / f"{trainer}-{negatives}-{processes}.json"
    port = free_port()
    running = []
    for rank in range(processes):
        env = {**os.environ, "HF_HUB_OFFLINE": "1", "OMP_NUM_THREADS": "1"}
        if processes > 1:
            env.update(RANK=str(rank), LOCAL_RANK=str(rank), WORLD_SIZE=str(processes),
                       MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), GLOO_SOCKET_IFNAME="lo")
        running.append(subprocess.Popen([sys.executable, "-c", RUN, str(out), trainer, str(negatives)], env=env,
                                        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for process in running:
        _, stderr = process.communicate(timeout=600)
        assert process.returncode == 0, stderr[-3000:]
    return json.loads(out.read_text())


@pytest.mark.parametrize(("trainer", "negatives"), [("contrastive", 0), ("xattn", 3), ("xattn", 0)])
def test_two_processes_train_like_one(tmp_path: Path, trainer: str, negatives: int) -> None:
    one = losses_of(tmp_path, 1, trainer, negatives)
    two = losses_of(tmp_path, 2, trainer, negatives)
    assert len(one) == 8 and one[-1] < one[0]
    assert two == pytest.approx(one, rel=2e-4)
