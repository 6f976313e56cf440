"""Late interaction: a training-free pair score over the token states the token-level scorer reads.

FILIP's and ColBERT's MaxSim: each text token finds its most similar image token (the CLS and
the patches), and the pair's score is the mean of those best cosines over the text's tokens.
Nothing is learned, so it is the cheap alternative a trained token scorer has to beat, not
only the pooled one. The start token is left out: in CLIP's causal text tower it sees only
itself, so its state is the same for every text and would add a per-image constant that
says nothing about the query. Padding is left out by the mask. A pair's score depends on
that pair alone, so, like the trained scorer, it re-ranks the dual encoder's candidates.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from fashion_search.models.clip import Encoded


class LateInteraction:
    """MaxSim of each text token against the image tokens, averaged over the text's real tokens."""

    needs_tokens = True

    def __call__(self, image: Encoded, text: Encoded) -> torch.Tensor:
        """Scores of aligned pairs: P images and P texts (with token states) -> (P,)."""
        if image.tokens is None or text.tokens is None:
            raise ValueError("late interaction scores rows that carry token states")
        image_tokens = F.normalize(image.tokens.float(), dim=-1)
        text_tokens = F.normalize(text.tokens.float(), dim=-1)
        best = torch.bmm(text_tokens, image_tokens.transpose(1, 2)).amax(dim=2)  # (P, text tokens)
        counted = text.token_mask.clone()
        counted[:, 0] = False  # the start token
        weights = counted.float()
        return (best * weights).sum(dim=1) / weights.sum(dim=1).clamp(min=1.0)
