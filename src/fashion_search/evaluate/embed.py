"""Embedding a gallery of images and a list of texts with a checkpoint, in batches."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from fashion_search.images import load_pixels
from fashion_search.models.clip import Checkpoint, image_embeddings, text_embeddings
from fashion_search.text import pad_batch


@torch.inference_mode()
def embed_images(checkpoint: Checkpoint, pixels: torch.Tensor, batch_size: int) -> torch.Tensor:
    """L2-normalised image embeddings of uint8 pixels (N, 3, S, S)."""
    spec, model = checkpoint.pixel_spec, checkpoint.model.eval()
    parts = [image_embeddings(model, spec.normalise(pixels[i:i + batch_size]))
             for i in range(0, len(pixels), batch_size)]
    return F.normalize(torch.cat(parts), dim=-1)


def embed_image_files(checkpoint: Checkpoint, paths: Sequence[Path], fit: str, batch_size: int,
                      decode_batch: int = 1024) -> torch.Tensor:
    """Images decoded a batch at a time: the full 42,537-image set never sits in memory as pixels."""
    spec = checkpoint.pixel_spec
    parts = [embed_images(checkpoint, load_pixels(paths[start:start + decode_batch], spec, fit), batch_size)
             for start in range(0, len(paths), decode_batch)]
    return torch.cat(parts)


@torch.inference_mode()
def embed_texts(checkpoint: Checkpoint, token_ids: Sequence[Sequence[int]], batch_size: int) -> torch.Tensor:
    """L2-normalised text embeddings of already tokenized (and truncated) texts."""
    model, parts = checkpoint.model.eval(), []
    for start in range(0, len(token_ids), batch_size):
        ids, mask = pad_batch(token_ids[start:start + batch_size], checkpoint.pad_id)
        parts.append(text_embeddings(model, ids, mask))
    return F.normalize(torch.cat(parts), dim=-1)


def tokenize_queries(checkpoint: Checkpoint, queries: Sequence[str], max_tokens: int) -> list[list[int]]:
    """Free-text queries through the checkpoint's own tokenizer, truncated like the captions."""
    return checkpoint.tokenizer(list(queries), truncation=True, max_length=max_tokens)["input_ids"]
