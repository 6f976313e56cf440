"""Embedding a gallery of images and a list of texts with a checkpoint, in batches.

Training (locked towers), evaluation and the search index all embed through here.

Token states are large (ViT-B/32: 50 × 512 fp32, 100 KB an image; a 77-token caption 158 KB), so a
table of them past IN_MEMORY_TOKEN_BYTES is written to a temporary .npy file as it is computed and
memory-mapped: only the rows in use take memory.
"""

from __future__ import annotations

import math
import os
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from fashion_search.device import CPU, Runtime
from fashion_search.image_cache import Pixels
from fashion_search.models.clip import (Checkpoint, Encoded, image_embeddings, image_states, mean_of_segments,
                                       text_embeddings, text_states, tokens_of_segments)
from fashion_search.text import Segments, flatten_segments, pad_batch, segment_caption


IN_MEMORY_TOKEN_BYTES = 512 * 2**20  # a larger table of token states goes to a memory-mapped file


class TokenTable:
    """Token states (N, L, D) in fp32, zeros where nothing is written, filled a batch at a time: in memory
    up to IN_MEMORY_TOKEN_BYTES; beyond, in a temporary .npy in `spill_dir` (the system's temporary folder
    when None), memory-mapped, and unlinked once mapped, so that nothing is left behind."""

    def __init__(self, shape: tuple[int, int, int], spill_dir: Path | None = None) -> None:
        self._path: Path | None = None
        if 4 * math.prod(shape) <= IN_MEMORY_TOKEN_BYTES:
            self._rows = np.zeros(shape, dtype=np.float32)
            return
        if spill_dir is not None:
            spill_dir.mkdir(parents=True, exist_ok=True)
        handle, name = tempfile.mkstemp(prefix=".tokens-", suffix=".npy", dir=spill_dir)
        os.close(handle)
        self._path = Path(name)
        self._rows = np.lib.format.open_memmap(self._path, mode="w+", dtype=np.float32, shape=shape)

    def write(self, start: int, states: torch.Tensor) -> None:
        """Rows from `start` on; states narrower than the table (a batch of shorter texts) leave zeros beyond."""
        self._rows[start:start + len(states), :states.shape[1]] = states.numpy()

    def tensor(self) -> torch.Tensor:
        """The table, once every row is written."""
        if self._path is None:
            return torch.from_numpy(self._rows)
        self._rows.flush()
        del self._rows
        try:
            # Copy-on-write: torch wants a writable array, and nothing written through it reaches the file.
            mapped = np.load(self._path, mmap_mode="c")
        finally:
            self._path.unlink()
        return torch.from_numpy(mapped)


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
def encode_images(checkpoint: Checkpoint, pixels: Pixels, batch_size: int, runtime: Runtime = CPU,
                  spill_dir: Path | None = None) -> Encoded:
    """`embed_images` (the same pooled embeddings, to the bit) with every token's state beside them (fp32, CPU;
    a large table memory-mapped from a file in `spill_dir`: TokenTable)."""
    spec, model = checkpoint.pixel_spec, runtime.compiled(checkpoint.model.to(runtime.device).eval())
    pooled, tokens = [], None
    for start in range(0, len(pixels), batch_size):
        batch = runtime.to_device(pixels[start:start + batch_size])
        with runtime.autocast():
            embeds, states = image_states(model, spec.normalise(batch))
        pooled.append(embeds.float().cpu())
        if tokens is None:
            tokens = TokenTable((len(pixels), *states.shape[1:]), spill_dir)
        tokens.write(start, states.float().cpu())
    return Encoded(F.normalize(torch.cat(pooled), dim=-1), tokens.tensor())


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
                 runtime: Runtime = CPU, spill_dir: Path | None = None) -> Encoded:
    """`embed_texts` (the same pooled embeddings, to the bit) with each text's token states beside them: a
    caption of several pieces has its pieces' real tokens one after another; padded with zeros (fp32, CPU;
    a large table memory-mapped from a file in `spill_dir`: TokenTable)."""
    model, pooled = runtime.compiled(checkpoint.model.to(runtime.device).eval()), []
    width = max(sum(len(piece) for piece in caption) for caption in captions)  # the longest caption's real tokens
    tokens, masks = None, torch.zeros(len(captions), width, dtype=torch.bool)
    for start in range(0, len(captions), batch_size):
        chunk = captions[start:start + batch_size]
        pieces, owner = flatten_segments(chunk)
        ids, mask = pad_batch(pieces, checkpoint.pad_id)
        with runtime.autocast():
            embeds, states = text_states(model, runtime.to_device(ids), runtime.to_device(mask))
        pooled.append(mean_of_segments(embeds.float().cpu(), owner, len(chunk)))
        states, real = tokens_of_segments(states.float().cpu(), mask, owner, len(chunk))
        if tokens is None:
            tokens = TokenTable((len(captions), width, states.shape[-1]), spill_dir)
        tokens.write(start, states)
        masks[start:start + len(chunk), :real.shape[1]] = real
    return Encoded(F.normalize(torch.cat(pooled), dim=-1), tokens.tensor(), masks)


def tokenize_queries(checkpoint: Checkpoint, queries: Sequence[str], max_tokens: int,
                     long_text: str = "truncate") -> list[list[list[int]]]:
    """Free-text queries through the checkpoint's own tokenizer, truncated or segmented like the captions."""
    if long_text == "segment":
        return [segment_caption(checkpoint.tokenizer, query, max_tokens) for query in queries]
    return [[ids] for ids in checkpoint.tokenizer(list(queries), truncation=True, max_length=max_tokens)["input_ids"]]
