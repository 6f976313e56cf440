"""Symmetric InfoNCE: the contrastive loss of CLIP, at a fixed temperature (0.1 in the report)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def symmetric_cross_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Mean of text->image and image->text cross-entropy; row i's positive is column i."""
    targets = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, targets) + F.cross_entropy(logits.T, targets)) / 2


class ContrastiveLoss(nn.Module):
    """CLIP's loss over cosine similarities: each image against every text of the batch and back."""

    def __init__(self, temperature: float) -> None:
        super().__init__()
        if temperature <= 0:
            raise ValueError(f"temperature must be > 0, got {temperature}")
        self.temperature = temperature

    def get_logits(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        """Cosine similarity / temperature, images as rows."""
        image_embeds = F.normalize(image_embeds, dim=-1)
        text_embeds = F.normalize(text_embeds, dim=-1)
        return image_embeds @ text_embeds.T / self.temperature

    def forward(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
        return symmetric_cross_entropy(self.get_logits(image_embeds, text_embeds))
