"""Training the cross-modal pair scorer against mismatched pairs.

Two regimes (`xattn.negatives`): 0 scores every B×B pair of the batch; n > 0
scores each query against its positive and the n candidates the dual encoder
finds most similar (ALBEF/BLIP-style hard negatives) — the very candidates the
scorer re-ranks at search time, at a fraction of the B² cost. Other views of
the same item are never used as negatives: they are right answers too.

A locked encoder tower (`xattn.lock_image`, `xattn.lock_text`) is not run at each
step: its embeddings of every pair are computed once (train/features.py), with their
token states for a token-level scorer (`xattn.features: tokens`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from transformers import CLIPModel

from fashion_search.config import ConfigError, XattnSettings
from fashion_search.image_cache import Pixels
from fashion_search.models.clip import Encoded, image_embeddings, image_states, vectors
from fashion_search.models.xattn import Rows, XattnModel, XattnScorer
from fashion_search.text import Segments
from fashion_search.train.distributed import gather, own_rows
from fashion_search.train.features import LockedFeatures, locked_features, lock_towers
from fashion_search.train.loop import DeviceBatch, Schedule, device_batch, optimise
from fashion_search.train.loss import symmetric_cross_entropy
from fashion_search.train.session import Session


def in_batch_loss(scorer: XattnScorer, image: Rows, text: Rows, temperature: float,
                  rows: torch.Tensor | None = None) -> torch.Tensor:
    """Symmetric InfoNCE over the scorer's B×B matrix: every other pair of the batch is a negative.

    With `rows` (one rank's share of a gathered batch) only those queries are scored, against all
    candidates: the ranks' mean is the loss of the whole batch, at 2B²/ranks pairs each."""
    if rows is None:
        return symmetric_cross_entropy(scorer.score_matrix(image, text).float() / temperature)
    i2t = scorer.score_matrix(image[rows], text).float() / temperature
    t2i = scorer.score_matrix(image, text[rows]).T.float() / temperature
    return (F.cross_entropy(i2t, rows) + F.cross_entropy(t2i, rows)) / 2


def hard_negatives(image: torch.Tensor, text: torch.Tensor, items: torch.Tensor,
                   n: int) -> tuple[torch.Tensor, torch.Tensor]:
    """For each text the n most similar images of other items, and for each image the n most similar texts."""
    with torch.no_grad():
        similarity = F.normalize(image.float(), dim=-1) @ F.normalize(text.float(), dim=-1).T
        similarity.masked_fill_(items.unsqueeze(0) == items.unsqueeze(1), float("-inf"))
        n = min(n, len(image) - 1)
        return similarity.topk(n, dim=0).indices.T, similarity.topk(n, dim=1).indices


def hard_negative_loss(scorer: XattnScorer, image: Rows, text: Rows, items: torch.Tensor,
                       negatives: int, temperature: float, rows: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy of the positive against its hard negatives, text→image and image→text.

    Negatives come from the whole batch; with `rows` (one rank's share of a gathered batch) only
    those queries are scored, so the ranks split the scorer's work and their mean is the batch loss."""
    images_for_text, texts_for_image = hard_negatives(vectors(image), vectors(text), items, negatives)
    if rows is not None:
        images_for_text, texts_for_image, image_queries, text_queries = (
            images_for_text[rows], texts_for_image[rows], image[rows], text[rows])
    else:
        rows, image_queries, text_queries = torch.arange(len(image), device=items.device), image, text
    own = rows.unsqueeze(1)
    image_candidates = torch.cat([own, images_for_text], dim=1)  # (queries, 1 + n), the positive first
    text_candidates = torch.cat([own, texts_for_image], dim=1)
    width = image_candidates.shape[1]
    t2i = scorer(image[image_candidates.reshape(-1)], text_queries.repeat_interleave(width, dim=0)).view(-1, width)
    i2t = scorer(image_queries.repeat_interleave(width, dim=0), text[text_candidates.reshape(-1)]).view(-1, width)
    target = torch.zeros(len(rows), dtype=torch.long, device=items.device)
    return (F.cross_entropy(t2i.float() / temperature, target) + F.cross_entropy(i2t.float() / temperature, target)) / 2


@dataclass(frozen=True)
class PairBatch:
    """One step's pairs on the device: their rows (into the locked towers' tables), their items,
    and the pixels and tokens for the towers that train (None when both are locked)."""

    rows: torch.Tensor
    items: torch.Tensor
    inputs: DeviceBatch | None


def pair_embeddings(clip: CLIPModel, locked: LockedFeatures, batch: PairBatch,
                    tokens: bool = False) -> tuple[Rows, Rows]:
    """The batch's image and text embeddings (with their token states when `tokens`): rows of a locked
    tower's table, or a training tower's forward pass."""
    if locked.image is not None:
        image = locked.image[batch.rows]
    elif tokens:
        image = Encoded(*image_states(clip, batch.inputs.pixels))
    else:
        image = image_embeddings(clip, batch.inputs.pixels)
    if locked.text is not None:
        text = locked.text[batch.rows]
    else:
        text = batch.inputs.text_encoded(clip) if tokens else batch.inputs.text_embeds(clip)
    return image, text


def check_processes(features: str, processes: int) -> None:
    """Token sequences of different lengths are not gathered across ranks: token features train in one process."""
    if features == "tokens" and processes > 1:
        raise ConfigError(f"xattn.features: tokens trains in one process; set runtime.processes to 1 "
                          f"(it is {processes}) or xattn.features to pooled")


def train_xattn(xattn: XattnModel, pixels: Pixels, captions: Sequence[Segments], items: Sequence[int],
                settings: XattnSettings, seed: int, session: Session | None = None) -> list[float]:
    """Train the scorer (xattn.head_lr) and the unlocked encoder towers (xattn.lr, the report's 1e-6).

    Locked towers (xattn.lock_image, xattn.lock_text) embed every pair once, before the first step.
    `items` gives each pair's item id: pairs of one item are never each other's negatives. With
    several ranks each embeds its share of the batch, the embeddings are gathered, and each rank
    scores its own queries against candidates from the whole batch.
    """
    session = session or Session()
    runtime, world = session.runtime, session.world
    torch.manual_seed(seed)
    tokens = xattn.scorer.needs_tokens
    check_processes(xattn.scorer.config.features, world.size)
    clip, scorer = runtime.compiled(xattn.encoder.model.to(runtime.device)), xattn.scorer.to(runtime.device).train()
    locked = locked_features(xattn.encoder, pixels, captions, settings.lock_image, settings.lock_text, runtime, tokens,
                             session.scratch)
    encoder_parameters = lock_towers(clip, settings.lock_image, settings.lock_text)
    item_ids = torch.as_tensor(items)

    def make_batch(index: torch.Tensor) -> PairBatch:
        inputs = None if locked.complete else device_batch(pixels, captions, index, xattn.encoder.pad_id,
                                                             xattn.encoder.pixel_spec, runtime)
        return PairBatch(runtime.to_device(index), runtime.to_device(item_ids[index]), inputs)

    def batch_loss(batch: PairBatch) -> torch.Tensor:
        image, text = pair_embeddings(clip, locked, batch, tokens)
        rows = own_rows(len(batch.rows), world, batch.items.device)
        image, text, batch_items = gather(image), gather(text), gather(batch.items)
        if settings.negatives == 0:
            return in_batch_loss(scorer, image, text, settings.temperature, rows)
        return hard_negative_loss(scorer, image, text, batch_items, settings.negatives, settings.temperature, rows)

    param_groups = [{"params": list(scorer.parameters()), "lr": settings.head_lr}]
    if encoder_parameters:
        param_groups.append({"params": encoder_parameters, "lr": settings.lr})
    plan = Schedule(settings.epochs, settings.batch_size, settings.warmup_steps, settings.schedule,
                    settings.weight_decay, settings.grad_clip, settings.workers)
    losses = optimise(make_batch, batch_loss, param_groups, len(captions), plan, seed, "xattn", session,
                      parts=[scorer, clip])
    clip.cpu().eval().requires_grad_(True)
    scorer.cpu().eval()
    return losses
