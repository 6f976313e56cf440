"""Training the cross-modal pair scorer against mismatched pairs.

Two regimes (`xattn.negatives`): 0 scores every B×B pair of the batch; n > 0
scores each query against its positive and the n candidates the dual encoder
finds most similar (ALBEF/BLIP-style hard negatives) — the very candidates the
scorer re-ranks at search time, at a fraction of the B² cost. Other views of
the same item are never used as negatives: they are right answers too.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F

from fashion_search.config import XattnSettings
from fashion_search.device import Runtime
from fashion_search.models.clip import image_embeddings
from fashion_search.models.xattn import CrossModalScorer, XattnModel
from fashion_search.train.loop import (CPU, DeviceBatch, EpochCallback, Pixels, Schedule, Segments, device_batch,
                                       optimise)
from fashion_search.train.loss import symmetric_cross_entropy


def in_batch_loss(scorer: CrossModalScorer, image: torch.Tensor, text: torch.Tensor,
                  temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE over the scorer's B×B matrix: every other pair of the batch is a negative."""
    return symmetric_cross_entropy(scorer.score_matrix(image, text).float() / temperature)


def hard_negatives(image: torch.Tensor, text: torch.Tensor, groups: torch.Tensor,
                   n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each text the n most similar images of other items, and for each image the n most similar texts."""
    with torch.no_grad():
        similarity = F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
        similarity.masked_fill_(groups.unsqueeze(0) == groups.unsqueeze(1), float("-inf"))
        n = min(n, len(image) - 1)
        return similarity.topk(n, dim=0).indices.T, similarity.topk(n, dim=1).indices


def hard_negative_loss(scorer: CrossModalScorer, image: torch.Tensor, text: torch.Tensor, groups: torch.Tensor,
                       negatives: int, temperature: float) -> torch.Tensor:
    """Cross-entropy of the positive against its hard negatives, text→image and image→text."""
    images_for_text, texts_for_image = hard_negatives(image, text, groups, negatives)
    own = torch.arange(len(image), device=image.device).unsqueeze(1)
    image_candidates = torch.cat([own, images_for_text], dim=1)  # (B, 1 + n), the positive first
    text_candidates = torch.cat([own, texts_for_image], dim=1)
    width = image_candidates.shape[1]
    t2i = scorer(image[image_candidates.reshape(-1)], text.repeat_interleave(width, dim=0)).view(-1, width)
    i2t = scorer(image.repeat_interleave(width, dim=0), text[text_candidates.reshape(-1)]).view(-1, width)
    target = torch.zeros(len(image), dtype=torch.long, device=image.device)
    return (F.cross_entropy(t2i.float() / temperature, target) + F.cross_entropy(i2t.float() / temperature, target)) / 2


def train_xattn(xattn: XattnModel, pixels: Pixels, captions: Sequence[Segments], groups: Sequence[int],
                settings: XattnSettings, seed: int, on_epoch: EpochCallback | None = None,
                runtime: Runtime = CPU) -> list[float]:
    """Train the scorer (xattn.head_lr) and the encoders (xattn.lr, the report's 1e-6; 0 freezes them).

    `groups` gives each pair's item: pairs of one item are never each other's negatives.
    """
    torch.manual_seed(seed)
    clip, scorer = xattn.encoder.model.to(runtime.device), xattn.scorer.to(runtime.device).train()
    train_encoders = settings.lr > 0
    clip.train(train_encoders).requires_grad_(train_encoders)
    group_ids = torch.as_tensor(groups)

    def prepare(index: torch.Tensor) -> tuple[DeviceBatch, torch.Tensor]:
        batch = device_batch(pixels, captions, index, xattn.encoder.pad_id, xattn.encoder.pixel_spec, runtime)
        return batch, runtime.to_device(group_ids[index])

    def batch_loss(prepared: tuple[DeviceBatch, torch.Tensor]) -> torch.Tensor:
        batch, batch_groups = prepared
        with torch.set_grad_enabled(train_encoders):
            image = image_embeddings(clip, batch.pixels)
            text = batch.text_embeds(clip)
        if settings.negatives == 0:
            return in_batch_loss(scorer, image, text, settings.temperature)
        return hard_negative_loss(scorer, image, text, batch_groups, settings.negatives, settings.temperature)

    param_groups = [{"params": list(scorer.parameters()), "lr": settings.head_lr}]
    if train_encoders:
        param_groups.append({"params": list(clip.parameters()), "lr": settings.lr})
    plan = Schedule(settings.epochs, settings.batch_size, settings.warmup_steps, "cosine",
                    settings.weight_decay, settings.grad_clip, settings.workers)
    losses = optimise(prepare, batch_loss, param_groups, len(captions), plan, seed, "xattn", on_epoch, runtime)
    clip.cpu().eval().requires_grad_(True)
    scorer.cpu().eval()
    return losses
