"""Symmetric InfoNCE: the contrastive loss of CLIP, at a fixed temperature (0.1 in the report)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


def positives_from_codes(image_codes: torch.Tensor, text_codes: torch.Tensor) -> torch.Tensor:
    """(images, texts) bool: text t fits image i when every attribute t states (code >= 0) is i's.

    A text that states nothing but its own image's item (a caption) fits the views of that
    product; a short text that states "red dress" fits every red dress of the batch. An image
    attribute the labels do not give is coded -2 and fits nothing.
    """
    stated = text_codes >= 0
    equal = image_codes.unsqueeze(1) == text_codes.unsqueeze(0)
    return (equal | ~stated.unsqueeze(0)).all(dim=-1)


def multi_positive_cross_entropy(logits: torch.Tensor, positives: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE where each row and column may have several right answers: the target
    spreads evenly over them (images as rows). With only the diagonal it equals
    `symmetric_cross_entropy`."""
    targets = positives.to(logits.dtype)
    image_to_text = -(targets / targets.sum(dim=1, keepdim=True) * F.log_softmax(logits, dim=1)).sum(dim=1)
    text_to_image = -(targets / targets.sum(dim=0, keepdim=True) * F.log_softmax(logits, dim=0)).sum(dim=0)
    return (image_to_text.mean() + text_to_image.mean()) / 2


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

    def forward(self, image_embeds: torch.Tensor, text_embeds: torch.Tensor,
                positives: torch.Tensor | None = None) -> torch.Tensor:
        """With `positives` (images × texts, the diagonal included) every fitting pair is a target."""
        logits = self.get_logits(image_embeds, text_embeds)
        if positives is None:
            return symmetric_cross_entropy(logits)
        return multi_positive_cross_entropy(logits, positives)
