"""The training loop shared by train_baseline (tiny model), finetune and train_xattn."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from typing import TypeVar

import torch
from tqdm.auto import tqdm
from transformers import CLIPModel, get_scheduler

from fashion_search.config import TrainSettings
from fashion_search.device import Runtime, pick_runtime
from fashion_search.image_cache import PixelView
from fashion_search.images import PixelSpec
from fashion_search.models.clip import Checkpoint, image_embeddings, mean_of_segments, text_embeddings
from fashion_search.text import flatten_segments, pad_batch
from fashion_search.train.loss import ContrastiveLoss

EpochCallback = Callable[[int, list[float]], None]
Pixels = torch.Tensor | PixelView
Segments = Sequence[Sequence[int]]  # one caption: its token id pieces
CPU = pick_runtime("cpu")
Batch = TypeVar("Batch")
BatchLoss = Callable[[Batch], torch.Tensor]


@dataclass(frozen=True)
class Schedule:
    """How long and how hard to train: the part of the settings every loop shares."""

    epochs: int
    batch_size: int
    warmup_steps: int
    schedule: str
    weight_decay: float
    grad_clip: float
    workers: int


def batches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Shuffled index batches; the last partial batch is dropped when there is more than one,
    because a contrastive batch of a few pairs has almost no negatives."""
    order = torch.randperm(n, generator=generator)
    full = n // batch_size
    if full == 0:
        yield order
        return
    for start in range(0, full * batch_size, batch_size):
        yield order[start:start + batch_size]


def steps_per_epoch(n: int, batch_size: int) -> int:
    return max(1, n // batch_size)


def prefetched(indices: Iterator[torch.Tensor], prepare: Callable[[torch.Tensor], Batch],
               workers: int) -> Iterator[Batch]:
    """Batches prepared by `workers` threads ahead of the step that uses them, in order.

    Gathering pixels from the memory-mapped cache, padding text and the pinned
    copy to the GPU then overlap with the model's work; 0 prepares each batch inline.
    """
    if workers == 0:
        yield from map(prepare, indices)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        for index in indices:
            pending.append(pool.submit(prepare, index))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def optimise(prepare: Callable[[torch.Tensor], Batch], batch_loss: BatchLoss, groups: list[dict], n: int,
             plan: Schedule, seed: int, desc: str, on_epoch: EpochCallback | None = None,
             runtime: Runtime = CPU) -> list[float]:
    """AdamW (the report's optimiser) with linear warm-up then constant or cosine decay,
    gradient clipping, mixed precision on GPU, batches prepared ahead, and one host
    synchronisation per epoch; returns every step's loss."""
    if runtime.device.type == "cpu":
        # With two or more threads some backward passes (the gradient of a gather with repeated
        # indices) add in a varying order; the deterministic kernels make CPU reruns bit-identical.
        torch.use_deterministic_algorithms(True)
    total = plan.epochs * steps_per_epoch(n, plan.batch_size)
    fused = runtime.device.type == "cuda"  # one kernel for the whole update
    optimizer = torch.optim.AdamW(groups, weight_decay=plan.weight_decay, fused=fused or None)
    scaler = runtime.scaler()
    name = "cosine" if plan.schedule == "cosine" else "constant_with_warmup"
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=plan.warmup_steps, num_training_steps=max(total, 1))
    parameters = [p for group in groups for p in group["params"]]
    generator = torch.Generator().manual_seed(seed)
    losses: list[float] = []
    with tqdm(total=total, desc=desc, unit="step", mininterval=1.0, disable=None) as progress:
        for epoch in range(plan.epochs):
            epoch_losses = []
            for batch in prefetched(batches(n, plan.batch_size, generator), prepare, plan.workers):
                with runtime.autocast():
                    loss = batch_loss(batch)
                scaler.scale(loss).backward()
                if plan.grad_clip > 0:
                    scaler.unscale_(optimizer)
                    torch.nn.utils.clip_grad_norm_(parameters, plan.grad_clip)
                scaler.step(optimizer)
                scaler.update()
                scheduler.step()
                optimizer.zero_grad(set_to_none=True)
                epoch_losses.append(loss.detach())
                progress.update()
            values = torch.stack(epoch_losses).tolist()
            losses.extend(values)
            if on_epoch is not None:
                on_epoch(epoch, values)
    return losses


@dataclass(frozen=True)
class DeviceBatch:
    """One batch on the runtime's device: normalised pixels, and every caption piece with its caption."""

    pixels: torch.Tensor
    ids: torch.Tensor
    mask: torch.Tensor
    owner: torch.Tensor

    def text_embeds(self, model: CLIPModel) -> torch.Tensor:
        """One embedding per caption, averaged over its pieces."""
        pieces = text_embeddings(model, self.ids, self.mask)
        return mean_of_segments(pieces, self.owner, len(self.pixels))


def device_batch(pixels: Pixels, captions: Sequence[Segments], index: torch.Tensor, pad_id: int,
                 spec: PixelSpec, runtime: Runtime) -> DeviceBatch:
    """Gather a batch and move it to the device, through pinned memory on CUDA."""
    pieces, owner = flatten_segments([captions[i] for i in index.tolist()])
    ids, mask = pad_batch(pieces, pad_id)
    tensors = [pixels[index], ids, mask, owner]
    if runtime.device.type == "cuda":
        tensors = [t.pin_memory() for t in tensors]
    raw, ids, mask, owner = (runtime.to_device(t) for t in tensors)
    return DeviceBatch(spec.normalise(raw), ids, mask, owner)


def train_contrastive(checkpoint: Checkpoint, pixels: Pixels, captions: Sequence[Segments],
                      settings: TrainSettings, seed: int, on_epoch: EpochCallback | None = None,
                      runtime: Runtime = CPU) -> list[float]:
    """Train both CLIP towers with symmetric InfoNCE at a fixed temperature."""
    torch.manual_seed(seed)
    model, spec = checkpoint.model.to(runtime.device).train(), checkpoint.pixel_spec
    loss_fn = ContrastiveLoss(settings.temperature)

    def prepare(index: torch.Tensor) -> DeviceBatch:
        return device_batch(pixels, captions, index, checkpoint.pad_id, spec, runtime)

    def batch_loss(batch: DeviceBatch) -> torch.Tensor:
        # The loss in fp32: similarities / 0.1 overflow fp16 and lose bf16's few mantissa bits.
        return loss_fn(image_embeddings(model, batch.pixels).float(), batch.text_embeds(model).float())

    plan = Schedule(settings.epochs, settings.batch_size, settings.warmup_steps, settings.schedule,
                    settings.weight_decay, settings.grad_clip, settings.workers)
    groups = [{"params": list(model.parameters()), "lr": settings.lr}]
    losses = optimise(prepare, batch_loss, groups, len(captions), plan, seed, "train", on_epoch, runtime)
    model.cpu().eval()
    return losses
