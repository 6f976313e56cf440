"""Attribute heads: a small supervised signal beside the contrastive loss, for training from scratch.

A CLIP trained from scratch on a few thousand pairs learns slowly, because neither tower
knows anything yet and each can only learn from the other. The labels already say what
each image shows, so a linear classifier per labelled attribute (colour of each garment,
pattern, fabric, sleeve, length, category, gender, hat, glasses) reads the normalised
embedding of the image *and* of every text that states that attribute. The heads are
shared by both towers: a class's weight vector is one point in the joint space that the
images and the texts of that class are both pulled towards. They are discarded after
training; retrieval uses the embeddings alone.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn


class AttributeHeads(nn.Module):
    """One linear classifier per attribute column (size 0: the column is not classified)."""

    def __init__(self, sizes: Sequence[int], dim: int, scale: float = 10.0) -> None:
        super().__init__()
        self.columns = [column for column, size in enumerate(sizes) if size > 0]
        self.heads = nn.ModuleList(nn.Linear(dim, sizes[column]) for column in self.columns)
        self.scale = scale

    def forward(self, embeds: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over the attributes that `codes` give (code >= 0) for some row."""
        unit = F.normalize(embeds, dim=-1) * self.scale
        losses = []
        for column, head in zip(self.columns, self.heads):
            known = codes[:, column] >= 0
            if known.any():
                losses.append(F.cross_entropy(head(unit[known]), codes[known, column]))
        return torch.stack(losses).mean() if losses else embeds.sum() * 0.0
