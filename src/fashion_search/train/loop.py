"""The training loop shared by train_baseline (tiny model), finetune and train_xattn."""

from __future__ import annotations

import itertools
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, replace
from typing import TypeVar

import torch
from torch import nn
from tqdm.auto import tqdm
from transformers import CLIPModel, get_scheduler

from fashion_search.config import ConfigError, TrainSettings
from fashion_search.device import Runtime
from fashion_search.image_cache import Pixels
from fashion_search.images import PixelSpec
from fashion_search.models.clip import (Checkpoint, Encoded, image_embeddings, mean_of_segments, text_embeddings,
                                       text_states, tokens_of_segments)
from fashion_search.text import Segments, flatten_segments, pad_batch
from fashion_search.train.augment import augment, batch_generator
from fashion_search.train.distributed import StepLoss, gather, local_part, mean_over_ranks, synchronised
from fashion_search.train.heads import AttributeHeads
from fashion_search.train.loss import ContrastiveLoss, positives_from_codes
from fashion_search.train.resume import Progress, Trainer
from fashion_search.train.session import EpochCallback, Session

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


def batches(n: int, batch_size: int, generator: torch.Generator,
            buckets: torch.Tensor | None = None) -> Iterator[torch.Tensor]:
    """Shuffled index batches; the last partial batch is dropped when there is more than one,
    because a contrastive batch of a few pairs has almost no negatives.

    With `buckets` (a bucket id per index) every batch is drawn from one bucket and the batches
    of all buckets are shuffled together: short texts are then padded to short lengths, not to the
    longest caption of a mixed batch.
    """
    if buckets is not None:
        parts = []
        for bucket in torch.unique(buckets).tolist():
            members = torch.nonzero(buckets == bucket).flatten()
            order = members[torch.randperm(len(members), generator=generator)]
            parts += list(_cut(order, batch_size))
        for i in torch.randperm(len(parts), generator=generator).tolist():
            yield parts[i]
        return
    yield from _cut(torch.randperm(n, generator=generator), batch_size)


def _cut(order: torch.Tensor, batch_size: int) -> Iterator[torch.Tensor]:
    full = len(order) // batch_size
    if full == 0:
        yield order
        return
    for start in range(0, full * batch_size, batch_size):
        yield order[start:start + batch_size]


def steps_per_epoch(n: int, batch_size: int, buckets: torch.Tensor | None = None) -> int:
    if buckets is None:
        return max(1, n // batch_size)
    return sum(max(1, int((buckets == b).sum()) // batch_size) for b in torch.unique(buckets).tolist())


def prefetched(indices: Iterator[torch.Tensor], make_batch: Callable[[torch.Tensor], Batch],
               workers: int) -> Iterator[Batch]:
    """Batches made by `workers` threads ahead of the step that uses them, in order.

    Gathering pixels from the memory-mapped cache, padding text and the pinned
    copy to the GPU then overlap with the model's work; 0 makes each batch inline.
    """
    if workers == 0:
        yield from map(make_batch, indices)
        return
    with ThreadPoolExecutor(workers) as pool:
        pending: deque[Future] = deque()
        for index in indices:
            pending.append(pool.submit(make_batch, index))
            if len(pending) > workers:
                yield pending.popleft().result()
        while pending:
            yield pending.popleft().result()


def remaining_epochs(n: int, plan: Schedule, generator: torch.Generator, steps_done: int,
                     buckets: torch.Tensor | None = None) -> Iterator[tuple[int, torch.Tensor, Iterator[torch.Tensor]]]:
    """Each epoch still to run: its number, the shuffling generator as the epoch began, and its index
    batches. A resumed run starts in the epoch it stopped in, replays that epoch's shuffle and skips
    the batches it had done; every later epoch runs whole. Nothing else in the loop knows about resuming."""
    per_epoch = steps_per_epoch(n, plan.batch_size, buckets)
    for epoch in range(steps_done // per_epoch, plan.epochs):
        epoch_start = generator.get_state()
        done_in_epoch = max(0, steps_done - epoch * per_epoch)
        yield epoch, epoch_start, itertools.islice(batches(n, plan.batch_size, generator, buckets), done_in_epoch, None)


def optimise(make_batch: Callable[[torch.Tensor], Batch], batch_loss: BatchLoss, param_groups: list[dict], n: int,
             plan: Schedule, seed: int, desc: str, session: Session, parts: Sequence[nn.Module] = (),
             buckets: torch.Tensor | None = None) -> list[float]:
    """AdamW (the report's optimiser) with linear warm-up then constant or cosine decay,
    gradient clipping, mixed precision on GPU, batches prepared ahead, and one host
    synchronisation per epoch; returns every step's loss.

    `parts` are the modules `batch_loss` runs; with several ranks (`session.world`) their gradients
    are synchronised by DistributedDataParallel and each rank makes its slice of the batch.
    With `session.state`, the training state is saved every few steps and a matching saved
    state is resumed from.
    """
    runtime, world, state = session.runtime, session.world, session.state
    if runtime.device.type == "cpu":
        # With two or more threads some backward passes (the gradient of a gather with repeated
        # indices) add in a varying order; the deterministic kernels make CPU reruns bit-identical.
        torch.use_deterministic_algorithms(True)
    if plan.batch_size % world.size:
        raise ConfigError(f"batch_size {plan.batch_size} does not split evenly over runtime.processes={world.size}; "
                          "use a batch_size divisible by the number of processes")
    per_epoch = steps_per_epoch(n, plan.batch_size, buckets)
    total = plan.epochs * per_epoch
    fused = runtime.device.type == "cuda"  # one kernel for the whole update
    optimizer = torch.optim.AdamW(param_groups, weight_decay=plan.weight_decay, fused=fused or None)
    name = "cosine" if plan.schedule == "cosine" else "constant_with_warmup"
    scheduler = get_scheduler(name, optimizer, num_warmup_steps=plan.warmup_steps, num_training_steps=max(total, 1))
    parameters = [p for group in param_groups for p in group["params"]]
    trainer = Trainer(parameters, optimizer, scheduler, runtime.scaler(), runtime.device)
    step_loss = synchronised(StepLoss(batch_loss, parts), world, runtime)

    def step(batch: Batch) -> torch.Tensor:
        """Forward, backward, update; the loss (averaged over ranks) stays on the device."""
        with runtime.autocast():
            loss = step_loss(batch)
        _update(trainer, loss, plan.grad_clip)
        return mean_over_ranks(loss.detach())

    generator = torch.Generator().manual_seed(seed)
    resumed = state.restore(trainer) if state is not None else None
    losses: list[float] = []
    if resumed is not None:
        losses = resumed.losses
        generator.set_state(resumed.epoch_generator)
        _replay_epochs(losses, per_epoch, session.on_epoch)
    with tqdm(total=total, initial=len(losses), desc=desc, unit="step", mininterval=1.0,
              disable=None if world.main else True) as bar:
        for epoch, epoch_start, indices in remaining_epochs(n, plan, generator, len(losses), buckets):
            done = losses[epoch * per_epoch:]
            epoch_losses: list[torch.Tensor] = []
            for batch in prefetched((local_part(index, world) for index in indices), make_batch, plan.workers):
                epoch_losses.append(step(batch))
                bar.update()
                steps = len(losses) + len(epoch_losses)
                if state is not None and world.main and state.due(steps, total):
                    # At an epoch's end the next epoch starts from the generator as it is now.
                    start = generator.get_state() if steps % per_epoch == 0 else epoch_start
                    state.save(trainer, Progress(steps, losses + torch.stack(epoch_losses).tolist(), start))
            new = torch.stack(epoch_losses).tolist() if epoch_losses else []
            losses.extend(new)
            if session.on_epoch is not None:
                session.on_epoch(epoch, done + new)
    return losses


def _update(trainer: Trainer, loss: torch.Tensor, grad_clip: float) -> None:
    """Backward, clip, step: through the gradient scaler, which passes through unless fp16."""
    scaler, optimizer = trainer.scaler, trainer.optimizer
    scaler.scale(loss).backward()
    if grad_clip > 0:
        scaler.unscale_(optimizer)
        torch.nn.utils.clip_grad_norm_(trainer.parameters, grad_clip)
    scaler.step(optimizer)
    scaler.update()
    trainer.scheduler.step()
    optimizer.zero_grad(set_to_none=True)


def _replay_epochs(losses: list[float], per_epoch: int, on_epoch: EpochCallback | None) -> None:
    """Hand the resumed run's finished epochs to the callback, so its MLflow run shows the whole curve."""
    if on_epoch is None:
        return
    for epoch in range(len(losses) // per_epoch):
        on_epoch(epoch, losses[epoch * per_epoch:(epoch + 1) * per_epoch])


@dataclass(frozen=True)
class TextTargets:
    """Which image each training text belongs to and which batch images it fits (see train.texts)."""

    image_rows: torch.Tensor   # (T,) the pixel row of text t's own image
    text_codes: torch.Tensor   # (T, C) the attribute codes text t states, -1 where it states nothing
    image_codes: torch.Tensor  # (images, C) every image's codes, -2 where its labels say nothing
    buckets: torch.Tensor | None = None  # (T,) batches are drawn from one bucket each (captions, alt texts)
    sizes: tuple[int, ...] = ()  # values per attribute column, for the attribute heads (0: not classified)


@dataclass(frozen=True)
class DeviceBatch:
    """One batch on the runtime's device: normalised pixels, and every caption piece with its caption;
    with text targets, the images each text fits."""

    pixels: torch.Tensor
    ids: torch.Tensor
    mask: torch.Tensor
    owner: torch.Tensor
    image_codes: torch.Tensor | None = None
    text_codes: torch.Tensor | None = None

    def text_embeds(self, model: CLIPModel) -> torch.Tensor:
        """One embedding per caption, averaged over its pieces."""
        pieces = text_embeddings(model, self.ids, self.mask)
        return mean_of_segments(pieces, self.owner, len(self.pixels))

    def text_encoded(self, model: CLIPModel) -> Encoded:
        """`text_embeds` with every caption's token states (its pieces' real tokens one after another)."""
        pieces, states = text_states(model, self.ids, self.mask)
        tokens, mask = tokens_of_segments(states, self.mask, self.owner, len(self.pixels))
        return Encoded(mean_of_segments(pieces, self.owner, len(self.pixels)), tokens, mask)


def device_batch(pixels: Pixels, captions: Sequence[Segments], index: torch.Tensor, pad_id: int,
                 spec: PixelSpec, runtime: Runtime, targets: TextTargets | None = None) -> DeviceBatch:
    """Gather a batch of texts (and their images) and move it to the device, through pinned memory on CUDA."""
    pieces, owner = flatten_segments([captions[i] for i in index.tolist()])
    ids, mask = pad_batch(pieces, pad_id)
    rows = index if targets is None else targets.image_rows[index]
    tensors = [pixels[rows], ids, mask, owner]
    if targets is not None:
        tensors += [targets.image_codes[rows], targets.text_codes[index]]
    if runtime.device.type == "cuda":
        tensors = [t.pin_memory() for t in tensors]
    raw, ids, mask, owner, *codes = (runtime.to_device(t) for t in tensors)
    return DeviceBatch(spec.normalise(raw), ids, mask, owner, *codes)


def train_contrastive(checkpoint: Checkpoint, pixels: Pixels, captions: Sequence[Segments],
                      settings: TrainSettings, seed: int, session: Session | None = None,
                      targets: TextTargets | None = None) -> list[float]:
    """Train both CLIP towers with symmetric InfoNCE at a fixed temperature; with several ranks
    each embeds its slice of the batch and the loss sees every rank's embeddings.

    Without `targets` the texts are the images' captions, one each, and a text's only positive
    is its own image. With them, `captions` may hold several texts per image (`targets.image_rows`)
    and every image of the batch a text fits is a positive; with `settings.label_weight` > 0 the
    attribute heads (train.heads) add their labelled loss, and are dropped after training.
    With `settings.augment: flip_crop` every batch's pictures are mirrored and cropped (train.augment).
    """
    session = session or Session()
    runtime = session.runtime
    torch.manual_seed(seed)
    model, spec = runtime.compiled(checkpoint.model.to(runtime.device).train()), checkpoint.pixel_spec
    model.logit_scale.requires_grad_(False)  # the temperature is a setting, not learned
    loss_fn = ContrastiveLoss(settings.temperature)
    heads = None
    if targets is not None and targets.sizes and settings.label_weight > 0:
        heads = AttributeHeads(targets.sizes, model.config.projection_dim).to(runtime.device).train()

    def make_batch(index: torch.Tensor) -> DeviceBatch:
        batch = device_batch(pixels, captions, index, checkpoint.pad_id, spec, runtime, targets)
        if settings.augment == "none":
            return batch
        return replace(batch, pixels=augment(batch.pixels, batch_generator(seed, index)))

    def batch_loss(batch: DeviceBatch) -> torch.Tensor:
        # The loss in fp32: similarities / 0.1 overflow fp16 and lose bf16's few mantissa bits.
        image, text = image_embeddings(model, batch.pixels).float(), batch.text_embeds(model).float()
        positives = None
        if batch.image_codes is not None:
            positives = positives_from_codes(gather(batch.image_codes), gather(batch.text_codes))
        loss = loss_fn(gather(image), gather(text), positives)
        if heads is not None:
            labelled = (heads(image, batch.image_codes) + heads(text, batch.text_codes)) / 2
            loss = loss + settings.label_weight * labelled
        return loss

    plan = Schedule(settings.epochs, settings.batch_size, settings.warmup_steps, settings.schedule,
                    settings.weight_decay, settings.grad_clip, settings.workers)
    trained = [model] if heads is None else [model, heads]
    param_groups = [{"params": [p for part in trained for p in part.parameters() if p.requires_grad],
                     "lr": settings.lr}]
    losses = optimise(make_batch, batch_loss, param_groups, len(captions), plan, seed, "train", session,
                      parts=trained, buckets=None if targets is None else targets.buckets)
    model.cpu().eval().requires_grad_(True)
    return losses
