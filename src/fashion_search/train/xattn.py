"""Training the cross-modal pair scorer against every mismatched pair of its batch."""

from __future__ import annotations

from collections.abc import Sequence

import torch

from fashion_search.config import XattnSettings
from fashion_search.models.clip import image_embeddings, text_embeddings
from fashion_search.models.xattn import XattnModel
from fashion_search.device import Runtime
from fashion_search.train.loop import CPU, EpochCallback, Pixels, Schedule, device_batch, optimise
from fashion_search.train.loss import symmetric_cross_entropy


def train_xattn(xattn: XattnModel, pixels: Pixels, token_ids: Sequence[Sequence[int]],
                settings: XattnSettings, seed: int, on_epoch: EpochCallback | None = None,
                runtime: Runtime = CPU) -> list[float]:
    """Score all B×B pairs of a batch with the transformer and apply symmetric InfoNCE to that matrix.

    The encoders train at xattn.lr (the report's 1e-6; 0 freezes them), the new
    layers at xattn.head_lr.
    """
    torch.manual_seed(seed)
    clip, scorer = xattn.encoder.model.to(runtime.device), xattn.scorer.to(runtime.device).train()
    train_encoders = settings.lr > 0
    clip.train(train_encoders).requires_grad_(train_encoders)

    def batch_loss(index: torch.Tensor) -> torch.Tensor:
        images, ids, mask = device_batch(pixels, token_ids, index, xattn.encoder.pad_id,
                                         xattn.encoder.pixel_spec, runtime)
        with torch.set_grad_enabled(train_encoders):
            image = image_embeddings(clip, images)
            text = text_embeddings(clip, ids, mask)
        scores = scorer.score_matrix(image, text).float()
        return symmetric_cross_entropy(scores / settings.temperature)

    groups = [{"params": list(scorer.parameters()), "lr": settings.head_lr}]
    if train_encoders:
        groups.append({"params": list(clip.parameters()), "lr": settings.lr})
    plan = Schedule(settings.epochs, settings.batch_size, settings.warmup_steps, "cosine",
                    settings.weight_decay, settings.grad_clip)
    losses = optimise(batch_loss, groups, len(token_ids), plan, seed, "xattn", on_epoch, runtime)
    clip.cpu().eval().requires_grad_(True)
    scorer.cpu().eval()
    return losses
