"""Locked encoder towers for the pair scorer, as open_clip's --lock-image.

A tower that does not train gives each training pair the same embedding at every
step, so it embeds every pair once, before training, and each step reads rows of
that table instead of running CLIP: with both towers locked only the scorer runs.
For a token-level scorer the table holds every pair's token states too (`Encoded`): the default's
1,800 training pairs take about 90 MB in fp32 and stay in memory; a larger table (ViT-B/32 on the full
data: several GB) is memory-mapped from a temporary file (embedding.TokenTable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn
from transformers import CLIPModel

from fashion_search.device import Runtime
from fashion_search.embedding import embed_images, embed_texts, encode_images, encode_texts
from fashion_search.image_cache import Pixels
from fashion_search.models.clip import Checkpoint, Encoded
from fashion_search.text import Segments

EMBED_BATCH_SIZE = 256  # without gradients or optimiser state far larger batches fit than in training


@dataclass(frozen=True)
class LockedFeatures:
    """Every training pair's embedding by each locked tower, on the device; None for a tower that trains."""

    image: torch.Tensor | Encoded | None
    text: torch.Tensor | Encoded | None

    @property
    def complete(self) -> bool:
        """Both towers come from the tables: the steps need no pixels and no tokens."""
        return self.image is not None and self.text is not None


def locked_features(checkpoint: Checkpoint, pixels: Pixels, captions: Sequence[Segments], lock_image: bool,
                    lock_text: bool, runtime: Runtime, tokens: bool = False,
                    spill_dir: Path | None = None) -> LockedFeatures:
    """The locked towers' embeddings, by the evaluation code (eval mode, no gradients, the runtime's
    autocast, a caption's pieces averaged as in training), with their token states when `tokens` (a
    large table memory-mapped from a file in `spill_dir`). They come L2-normalised; the scorer and the
    hard-negative search normalise their inputs, so only the direction matters."""
    if tokens:
        image = encode_images(checkpoint, pixels, EMBED_BATCH_SIZE, runtime, spill_dir) if lock_image else None
        text = encode_texts(checkpoint, captions, EMBED_BATCH_SIZE, runtime, spill_dir) if lock_text else None
    else:
        image = embed_images(checkpoint, pixels, EMBED_BATCH_SIZE, runtime) if lock_image else None
        text = embed_texts(checkpoint, captions, EMBED_BATCH_SIZE, runtime) if lock_text else None
    return LockedFeatures(*(None if table is None else table.to(runtime.device) for table in (image, text)))


def lock_towers(clip: CLIPModel, lock_image: bool, lock_text: bool) -> list[nn.Parameter]:
    """Put locked towers in eval mode without gradients and the others in training mode; return the
    parameters left to train, in the model's order. logit_scale never trains: the scorer does not use it."""
    clip.train().requires_grad_(False)
    towers = (((clip.vision_model, clip.visual_projection), lock_image),
              ((clip.text_model, clip.text_projection), lock_text))
    for modules, locked in towers:
        for module in modules:
            module.train(not locked).requires_grad_(not locked)
    return [parameter for parameter in clip.parameters() if parameter.requires_grad]
