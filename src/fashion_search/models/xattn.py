"""The xattn model: the report's cross-modal attention, built as an honest pair scorer.

In code and docs the model is `xattn` (its stage, params and directory); `XattnScorer` is its
transformer head, which scores one (image, text) pair; `XattnModel` is that head beside the dual
encoder whose embeddings it reads.

Each (image, text) pair becomes one sequence [CLS_img, image, CLS_txt, text] of
L2-normalised CLIP embeddings, with zero-initialised CLS tokens and positional
encodings, through a 6-layer, 8-head transformer encoder. The two output CLS
tokens go through a feed-forward network and the score is the cosine of the two
resulting representations. A pair's score depends on that pair alone, so it can
only be used to re-rank candidates that the dual encoder retrieved.

One change from the report, for stability: the feed-forward output is added to
the modality's own embedding and its last layer starts at zero, so an untrained
scorer equals the dual encoder's cosine and training can only move away from a
sound starting point, never from a random one.

`xattn.features: tokens` gives the same transformer what CLIP already computes instead of
the two pooled vectors: [CLS_img, image tokens (CLS and patches), CLS_txt, text tokens up
to the end token], each token L2-normalised and projected by its modality's own linear
layer, with sinusoidal positions within each modality, a learned type embedding per
modality and the text's padding masked out (as ALBEF and BLIP attend from text tokens to
image patches). The head and the residual to the pooled embeddings are the pooled
scorer's, so the untrained token scorer too equals the dual encoder's cosine.
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import nn

from fashion_search.config import ConfigError
from fashion_search.models.clip import (WEIGHTS_HASHES, Checkpoint, Encoded, ModelNotFoundError,
                                       WeightsChangedError, file_sha256, load_checkpoint, vectors, verify_weights)

SCORER_WEIGHTS = "scorer.safetensors"
SCORER_CONFIG = "scorer.json"
ENCODER_DIR = "clip"
FEATURES = ("pooled", "tokens")  # what the scorer reads of each pair: its two embeddings, or every token's state
Rows = torch.Tensor | Encoded     # pooled embeddings, or `Encoded` rows (a token scorer needs their token states)


@dataclass(frozen=True)
class ScorerConfig:
    dim: int
    layers: int
    heads: int
    dropout: float
    features: str = "pooled"  # a scorer.json written before token features existed is the pooled scorer


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    """The fixed positional encodings of 'Attention is all you need'."""
    position = torch.arange(length, dtype=torch.float32).unsqueeze(1)
    frequency = torch.exp(torch.arange(0, dim, 2, dtype=torch.float32) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * frequency)
    table[:, 1::2] = torch.cos(position * frequency[: dim // 2])
    return table


class XattnScorer(nn.Module):
    """Scores (image, text) pairs; both inputs are CLIP embeddings of the same width."""

    def __init__(self, config: ScorerConfig) -> None:
        super().__init__()
        if config.dim % config.heads:
            raise ConfigError(f"xattn.heads ({config.heads}) must divide the embedding width ({config.dim})")
        if config.features not in FEATURES:
            raise ConfigError(f"xattn.features must be one of {FEATURES}, got {config.features!r}")
        self.config = config
        self.cls_image = nn.Parameter(torch.zeros(config.dim))
        self.cls_text = nn.Parameter(torch.zeros(config.dim))
        self.register_buffer("positions", sinusoidal_positions(4, config.dim), persistent=False)
        layer = nn.TransformerEncoderLayer(config.dim, config.heads, 4 * config.dim, config.dropout,
                                           batch_first=True, norm_first=True)
        self.encoder = nn.TransformerEncoder(layer, config.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.LayerNorm(config.dim), nn.Linear(config.dim, 4 * config.dim), nn.GELU(),
                                  nn.Linear(4 * config.dim, config.dim))
        nn.init.zeros_(self.head[-1].weight)
        nn.init.zeros_(self.head[-1].bias)
        if self.needs_tokens:  # created last, so the pooled scorer's seeded weights are what they always were
            self.image_in = nn.Linear(config.dim, config.dim)
            self.text_in = nn.Linear(config.dim, config.dim)
            self.types = nn.Parameter(torch.randn(2, config.dim) * 0.02)  # image, text

    @property
    def needs_tokens(self) -> bool:
        """Whether the pairs it scores must carry their token states (`Encoded` rows)."""
        return self.config.features == "tokens"

    def forward(self, image_rows: Rows, text_rows: Rows) -> torch.Tensor:
        """Scores of aligned pairs: P images and P texts -> (P,) cosines."""
        image = F.normalize(vectors(image_rows), dim=-1)
        text = F.normalize(vectors(text_rows), dim=-1)
        if self.needs_tokens:
            hidden, text_cls = self._token_hidden(image_rows, text_rows)
        else:
            pairs = image.shape[0]
            sequence = torch.stack([self.cls_image.expand(pairs, -1), image,
                                    self.cls_text.expand(pairs, -1), text], dim=1) + self.positions
            hidden, text_cls = self.encoder(sequence), 2
        image_out = F.normalize(image + self.head(hidden[:, 0]), dim=-1)
        text_out = F.normalize(text + self.head(hidden[:, text_cls]), dim=-1)
        return (image_out * text_out).sum(dim=-1)

    def _token_hidden(self, image: Rows, text: Rows) -> tuple[torch.Tensor, int]:
        """The transformer over [CLS_img, image tokens, CLS_txt, text tokens], and the text CLS's position."""
        if not (isinstance(image, Encoded) and isinstance(text, Encoded)
                and image.tokens is not None and text.tokens is not None):
            raise ValueError("a token-level scorer (xattn.features: tokens) scores rows that carry token states")
        pairs, dim = len(image), self.config.dim
        parts, masks = [], []
        for kind, (cls, project, rows) in enumerate(((self.cls_image, self.image_in, image),
                                                     (self.cls_text, self.text_in, text))):
            tokens = torch.cat([cls.expand(pairs, 1, -1), project(F.normalize(rows.tokens, dim=-1))], dim=1)
            positions = sinusoidal_positions(tokens.shape[1], dim).to(tokens.device, tokens.dtype)
            parts.append(tokens + positions + self.types[kind])
            masks.append(F.pad(rows.token_mask, (1, 0), value=True))
        hidden = self.encoder(torch.cat(parts, dim=1), src_key_padding_mask=~torch.cat(masks, dim=1))
        return hidden, parts[0].shape[1]

    def score_matrix(self, image_embeds: Rows, text_embeds: Rows) -> torch.Tensor:
        """Every image against every text: B images, T texts -> (B, T), images as rows."""
        rows, cols = len(image_embeds), len(text_embeds)
        image = image_embeds.repeat_interleave(cols, dim=0)
        text = text_embeds[torch.arange(cols).repeat(rows)] if isinstance(text_embeds, Encoded) \
            else text_embeds.repeat(rows, 1)
        return self.forward(image, text).view(rows, cols)


def new_scorer(dim: int, layers: int, heads: int, dropout: float, seed: int, features: str = "pooled") -> XattnScorer:
    """A freshly initialised scorer; seeded so that reruns start from the same weights."""
    torch.manual_seed(seed)
    return XattnScorer(ScorerConfig(dim=dim, layers=layers, heads=heads, dropout=dropout, features=features))


@dataclass
class XattnModel:
    """The dual encoder that retrieves, and the pair scorer that re-ranks its top candidates."""

    encoder: Checkpoint
    scorer: XattnScorer

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.encoder.save(directory / ENCODER_DIR)
        save_file(self.scorer.state_dict(), str(directory / SCORER_WEIGHTS))
        weights = {SCORER_WEIGHTS: file_sha256(directory / SCORER_WEIGHTS)}
        config = {**asdict(self.scorer.config), WEIGHTS_HASHES: weights}
        (directory / SCORER_CONFIG).write_text(json.dumps(config, indent=2), encoding="utf-8")


def load_xattn(directory: str | Path) -> XattnModel:
    """Open a directory written by `XattnModel.save` (safetensors and JSON only, nothing unpickled)."""
    directory = Path(directory)
    config_path = directory / SCORER_CONFIG
    if not config_path.is_file():
        raise ModelNotFoundError(f"{directory} is not a cross-modal attention model (no {SCORER_CONFIG}); "
                                 "run `dvc repro train_xattn`")
    try:
        config = json.loads(config_path.read_text(encoding="utf-8"))
        verify_weights(directory, config.pop(WEIGHTS_HASHES, {}) if isinstance(config, dict) else {}, "train_xattn")
        scorer = XattnScorer(ScorerConfig(**config))
        scorer.load_state_dict(load_file(str(directory / SCORER_WEIGHTS)))
    except WeightsChangedError:
        raise
    except (OSError, ValueError, TypeError, RuntimeError, SafetensorError) as error:
        raise ModelNotFoundError(f"the cross-modal model in {directory} is damaged or was tampered with "
                                 f"({error.__class__.__name__}: {str(error)[:300]}); rerun `dvc repro -f train_xattn`"
                                 ) from error
    return XattnModel(load_checkpoint(directory / ENCODER_DIR, "train_xattn"), scorer.eval())
