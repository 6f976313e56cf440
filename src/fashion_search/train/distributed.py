"""Training on several processes with DistributedDataParallel: GPUs on one machine, or CPU
processes over loopback (gloo) in the tests.

A stage starts as usual; with `runtime.processes` > 1 it re-executes itself under
torchrun, which starts one copy per process. Every rank takes an equal slice of
each global batch (the same batches a single process would draw), and the
contrastive loss gathers the embeddings of all ranks with their gradients, as
open_clip's ClipLoss does: each rank computes the loss of the whole global
batch, so the loss curve is the single-process one. Only rank 0 logs to MLflow,
writes step checkpoints and writes outputs.
"""

from __future__ import annotations

import dataclasses
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch
import torch.distributed as dist
from torch import nn

from fashion_search.config import ConfigError
from fashion_search.device import Runtime

LAUNCHED_BY_TORCHRUN = "TORCHELASTIC_RUN_ID"


@dataclass(frozen=True)
class World:
    rank: int
    size: int
    local_rank: int

    @property
    def main(self) -> bool:
        """Rank 0: the process that logs and writes."""
        return self.rank == 0


SINGLE = World(0, 1, 0)


def current_world() -> World:
    """The rank and world size torchrun put in the environment; one process without it."""
    return World(int(os.environ.get("RANK", 0)), int(os.environ.get("WORLD_SIZE", 1)),
                 int(os.environ.get("LOCAL_RANK", 0)))


def relaunch(processes: int, batch_size: int, batch_key: str) -> None:
    """With `processes` > 1 and not yet under torchrun, replace this process by torchrun running this
    same script: DVC's stage command stays `python stages/<stage>.py`, one param switches it.

    A batch that does not split evenly is refused here, in one line naming both keys, not by every
    worker after torchrun has started them (a 40-line trace per rank)."""
    if processes > 1 and batch_size % processes:
        raise ConfigError(f"params.yaml: {batch_key}={batch_size} does not split evenly over runtime.processes="
                          f"{processes}; use a batch size divisible by the number of processes")
    if processes <= 1 or LAUNCHED_BY_TORCHRUN in os.environ:
        return
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // processes)))
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={processes}",
               sys.argv[0], *sys.argv[1:]]
    sys.stdout.flush()
    os.execve(sys.executable, command, env)


def join(runtime: Runtime) -> tuple[World, Runtime]:
    """Join the process group (NCCL on GPUs, gloo on CPUs); each rank gets its own GPU."""
    world = current_world()
    if world.size == 1:
        return world, runtime
    if runtime.device.type == "cuda":
        if world.local_rank >= torch.cuda.device_count():
            raise ConfigError(f"runtime.processes={world.size} but {torch.cuda.device_count()} GPU(s) are visible; "
                              "use one process per GPU")
        runtime = dataclasses.replace(runtime, device=torch.device("cuda", world.local_rank))
        torch.cuda.set_device(runtime.device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if runtime.device.type == "cuda" else "gloo")
    return world, runtime


def leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()


class _GatherWithGrad(torch.autograd.Function):
    """all_gather whose backward hands each rank the gradient of its own rows summed over all ranks
    (an all-reduce, which gloo supports and reduce-scatter is not on every backend)."""

    @staticmethod
    def forward(ctx: Any, tensor: torch.Tensor) -> torch.Tensor:
        ctx.rows, ctx.rank = len(tensor), dist.get_rank()
        parts = [torch.empty_like(tensor) for _ in range(dist.get_world_size())]
        dist.all_gather(parts, tensor.contiguous())
        return torch.cat(parts)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> torch.Tensor:
        grad = grad.contiguous().clone()
        dist.all_reduce(grad)
        return grad[ctx.rank * ctx.rows:(ctx.rank + 1) * ctx.rows]


def gather(tensor: torch.Tensor) -> torch.Tensor:
    """Every rank's rows, in rank order, with gradients flowing back to the rank that made them."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return tensor
    return _GatherWithGrad.apply(tensor)


def local_part(index: torch.Tensor, world: World) -> torch.Tensor:
    """This rank's equal slice of a global batch of indices."""
    if world.size == 1:
        return index
    if len(index) % world.size:
        raise ConfigError(f"a batch of {len(index)} pairs (all the training pairs there are) does not split evenly "
                          f"over runtime.processes={world.size}; use fewer processes")
    return index.tensor_split(world.size)[world.rank]


def own_rows(local: int, world: World, device: torch.device) -> torch.Tensor | None:
    """This rank's rows in a gathered batch of `local` rows per rank; None with one process."""
    if world.size == 1:
        return None
    return torch.arange(world.rank * local, (world.rank + 1) * local, device=device)


def mean_over_ranks(value: torch.Tensor) -> torch.Tensor:
    """A loss as the whole batch's: the mean of the ranks' losses (each the mean over its queries)."""
    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    value = value.clone()
    dist.all_reduce(value)
    return value / dist.get_world_size()


class StepLoss(nn.Module):
    """The batch loss as a module's forward: DistributedDataParallel synchronises the gradients of
    what its wrapped module's forward uses, so the loss is computed through one."""

    def __init__(self, loss: Callable[[Any], torch.Tensor], parts: Sequence[nn.Module]) -> None:
        super().__init__()
        self.parts = nn.ModuleList(parts)
        self.loss = loss

    def forward(self, batch: object) -> torch.Tensor:
        return self.loss(batch)


def synchronised(step: StepLoss, world: World, runtime: Runtime) -> nn.Module:
    """The step wrapped in DistributedDataParallel when there is more than one rank."""
    if world.size == 1:
        return step
    devices = [runtime.device] if runtime.device.type == "cuda" else None
    return nn.parallel.DistributedDataParallel(step, device_ids=devices)
