"""Embedding a gallery of images and a list of texts with a checkpoint, in batches.

Training (locked towers), evaluation and the search index all embed through here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import torch
import torch.nn.functional as F

from fashion_search.device import CPU, Runtime
from fashion_search.image_cache import Pixels
from fashion_search.images import load_pixels
from fashion_search.models.clip import (Checkpoint, Encoded, image_embeddings, image_states, mean_of_segments,
                                       text_embeddings, text_states, tokens_of_segments)
from fashion_search.text import Segments, flatten_segments, pad_batch, segment_caption


@torch.inference_mode()
def embed_images(checkpoint: Checkpoint, pixels: Pixels, batch_size: int, runtime: Runtime = CPU) -> torch.Tensor:
    """L2-normalised image embeddings (fp32, on the CPU) of uint8 pixels (N, 3, S, S)."""
    spec, model = checkpoint.pixel_spec, runtime.compiled(checkpoint.model.to(runtime.device).eval())
    parts = []
    for start in range(0, len(pixels), batch_size):
        batch = runtime.to_device(pixels[start:start + batch_size])
        with runtime.autocast():
            parts.append(image_embeddings(model, spec.normalise(batch)).float().cpu())
    return F.normalize(torch.cat(parts), dim=-1)


@torch.inference_mode()
def encode_images(checkpoint: Checkpoint, pixels: Pixels, batch_size: int, runtime: Runtime = CPU) -> Encoded:
    """`embed_images` (the same pooled embeddings, to the bit) with every token's state beside them (fp32, CPU)."""
    spec, model = checkpoint.pixel_spec, runtime.compiled(checkpoint.model.to(runtime.device).eval())
    pooled, tokens = [], []
    for start in range(0, len(pixels), batch_size):
        batch = runtime.to_device(pixels[start:start + batch_size])
        with runtime.autocast():
            embeds, states = image_states(model, spec.normalise(batch))
        pooled.append(embeds.float().cpu())
        tokens.append(states.float().cpu())
    return Encoded(F.normalize(torch.cat(pooled), dim=-1), torch.cat(tokens))


def embed_image_files(checkpoint: Checkpoint, paths: Sequence[Path], fit: str, batch_size: int,
                      decode_batch: int = 1024) -> torch.Tensor:
    """Images decoded a batch at a time: the full 42,537-image set never sits in memory as pixels."""
    spec = checkpoint.pixel_spec
    parts = [embed_images(checkpoint, load_pixels(paths[start:start + decode_batch], spec, fit), batch_size)
             for start in range(0, len(paths), decode_batch)]
    return torch.cat(parts)


@torch.inference_mode()
def embed_texts(checkpoint: Checkpoint, captions: Sequence[Segments], batch_size: int,
                runtime: Runtime = CPU) -> torch.Tensor:
    """L2-normalised text embeddings of tokenized texts, each given as its pieces (usually one)."""
    model, parts = runtime.compiled(checkpoint.model.to(runtime.device).eval()), []
    for start in range(0, len(captions), batch_size):
        chunk = captions[start:start + batch_size]
        pieces, owner = flatten_segments(chunk)
        ids, mask = pad_batch(pieces, checkpoint.pad_id)
        with runtime.autocast():
            embeds = text_embeddings(model, runtime.to_device(ids), runtime.to_device(mask)).float().cpu()
        parts.append(mean_of_segments(embeds, owner, len(chunk)))
    return F.normalize(torch.cat(parts), dim=-1)


@torch.inference_mode()
def encode_texts(checkpoint: Checkpoint, captions: Sequence[Segments], batch_size: int,
                 runtime: Runtime = CPU) -> Encoded:
    """`embed_texts` (the same pooled embeddings, to the bit) with each text's token states beside them: a
    caption of several pieces has its pieces' real tokens one after another; padded with zeros (fp32, CPU)."""
    model, pooled, tokens, masks = runtime.compiled(checkpoint.model.to(runtime.device).eval()), [], [], []
    for start in range(0, len(captions), batch_size):
        chunk = captions[start:start + batch_size]
        pieces, owner = flatten_segments(chunk)
        ids, mask = pad_batch(pieces, checkpoint.pad_id)
        with runtime.autocast():
            embeds, states = text_states(model, runtime.to_device(ids), runtime.to_device(mask))
        pooled.append(mean_of_segments(embeds.float().cpu(), owner, len(chunk)))
        states, real = tokens_of_segments(states.float().cpu(), mask, owner, len(chunk))
        tokens.append(states)
        masks.append(real)
    width = max(part.shape[1] for part in tokens)
    return Encoded(F.normalize(torch.cat(pooled), dim=-1),
                   torch.cat([F.pad(part, (0, 0, 0, width - part.shape[1])) for part in tokens]),
                   torch.cat([F.pad(part, (0, width - part.shape[1])) for part in masks]))


def tokenize_queries(checkpoint: Checkpoint, queries: Sequence[str], max_tokens: int,
                     long_text: str = "truncate") -> list[list[list[int]]]:
    """Free-text queries through the checkpoint's own tokenizer, truncated or segmented like the captions."""
    if long_text == "segment":
        return [segment_caption(checkpoint.tokenizer, query, max_tokens) for query in queries]
    return [[ids] for ids in checkpoint.tokenizer(list(queries), truncation=True, max_length=max_tokens)["input_ids"]]
