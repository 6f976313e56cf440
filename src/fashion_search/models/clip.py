"""CLIP checkpoints: the small default built here, pretrained ones, and one directory format.

A checkpoint directory holds the model (safetensors), its tokenizer, its image
processor and `fashion_search.json` saying what it was made from; `load_checkpoint`
is the only way any stage or the search service opens one.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
# The PIL image processor: the default one needs torchvision, which this project does not depend on.
from transformers import CLIPConfig, CLIPModel, PreTrainedTokenizerBase
from transformers import CLIPImageProcessorPil as CLIPImageProcessor
from transformers.utils import logging as hf_logging

from fashion_search.config import ModelSettings, TinyModelSettings
from fashion_search.config import ConfigError
from fashion_search.errors import UserError
from fashion_search.images import PixelSpec
from fashion_search.text import load_tokenizer

# Loading a small checkpoint is instant; per-file progress bars in stage logs are noise.
hf_logging.disable_progress_bar()

INFO_FILE = "fashion_search.json"
WEIGHTS_HASHES = "weights_sha256"  # in INFO_FILE: {weights file name: SHA-256}, checked on every load
TINY = "tiny"
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class ModelNotFoundError(UserError, RuntimeError):
    """A model that cannot be loaded; the message says what to do."""


class WeightsChangedError(ModelNotFoundError):
    """A weights file whose bytes differ from those its stage wrote (flipped bits, a partial copy, an edit)."""


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in chunks (0.32 s for ViT-B/32's 605 MB on this 2-core AMD EPYC: bench/RESULTS.md)."""
    with path.open("rb") as stream:
        return hashlib.file_digest(stream, "sha256").hexdigest()


def weights_hashes(directory: Path) -> dict[str, str]:
    """The SHA-256 of every safetensors file in a directory (one, or the shards of a large model)."""
    return {path.name: file_sha256(path) for path in sorted(directory.glob("*.safetensors"))}


# What opening a saved model raises when one of its files is damaged: bytes that are not UTF-8 or JSON,
# safetensors' own errors, a config that does not fit the weights (torch's size mismatch, a RuntimeError).
LOAD_ERRORS = (OSError, ValueError, TypeError, KeyError, AttributeError, RuntimeError, SafetensorError)


def rerun_hint(stage: str | None) -> str:
    """What to do about a project model's damaged file: rerun the stage that wrote it, by name when known."""
    return f"rerun `dvc repro -f {stage}`" if stage else "rerun the stage that wrote it (dvc repro -f <stage>)"


def error_text(error: Exception) -> str:
    """An exception as one short line: its class and the start of its message."""
    return f"{error.__class__.__name__}: {' '.join(str(error).split())[:300]}"


def verify_weights(directory: Path, recorded: dict[str, str], stage: str | None) -> None:
    """Refuse weights whose bytes are not those recorded when they were saved, naming the file and the stage."""
    rerun = rerun_hint(stage)
    for name, expected in sorted(recorded.items()):
        path = directory / name
        if not path.is_file():
            raise WeightsChangedError(f"{path} is missing; {rerun}")
        if file_sha256(path) != expected:
            raise WeightsChangedError(f"{path} is damaged or was tampered with: its SHA-256 differs from the one "
                                      f"recorded when it was saved; {rerun}")


@dataclass
class Checkpoint:
    model: CLIPModel
    tokenizer: PreTrainedTokenizerBase
    processor: CLIPImageProcessor
    info: dict[str, Any] = field(default_factory=dict)

    @property
    def pixel_spec(self) -> PixelSpec:
        return PixelSpec.from_processor(self.processor)

    @property
    def pad_id(self) -> int:
        pad = self.tokenizer.pad_token_id
        return self.tokenizer.eos_token_id if pad is None else pad

    def save(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        self.model.save_pretrained(directory)
        self.tokenizer.save_pretrained(directory)
        self.processor.save_pretrained(directory)
        info = {**self.info, WEIGHTS_HASHES: weights_hashes(directory)}
        (directory / INFO_FILE).write_text(json.dumps(info, indent=2, sort_keys=True), encoding="utf-8")


def tiny_config(settings: TinyModelSettings, tokenizer: PreTrainedTokenizerBase, max_tokens: int) -> CLIPConfig:
    """A small CLIP for CPU: same architecture family as ViT-B/32, a fraction of its width and depth."""
    width = settings.embed_dim
    text = dict(
        vocab_size=len(tokenizer), hidden_size=width, intermediate_size=4 * width,
        num_hidden_layers=settings.layers, num_attention_heads=settings.heads,
        max_position_embeddings=max_tokens, projection_dim=width,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    vision = dict(
        hidden_size=width, intermediate_size=4 * width, num_hidden_layers=settings.layers,
        num_attention_heads=settings.heads, image_size=settings.image_size,
        patch_size=settings.patch_size, projection_dim=width,
    )
    return CLIPConfig(text_config=text, vision_config=vision, projection_dim=width)


def tiny_processor(image_size: int) -> CLIPImageProcessor:
    return CLIPImageProcessor(
        size={"shortest_edge": image_size}, crop_size={"height": image_size, "width": image_size},
        image_mean=list(CLIP_MEAN), image_std=list(CLIP_STD),
    )


def build_tiny(settings: TinyModelSettings, tokenizer: PreTrainedTokenizerBase, max_tokens: int,
               seed: int) -> Checkpoint:
    """A randomly initialised small CLIP (seeded), with the project's own tokenizer."""
    if settings.embed_dim % settings.heads:
        raise ConfigError(f"model.tiny.embed_dim ({settings.embed_dim}) must be divisible by "
                          f"model.tiny.heads ({settings.heads})")
    if settings.image_size % settings.patch_size:
        raise ConfigError(f"model.tiny.image_size ({settings.image_size}) must be divisible by "
                          f"model.tiny.patch_size ({settings.patch_size})")
    torch.manual_seed(seed)
    model = CLIPModel(tiny_config(settings, tokenizer, max_tokens))
    return Checkpoint(model, tokenizer, tiny_processor(settings.image_size), {"trained_from": "scratch"})


def processor_for(model: ModelSettings) -> CLIPImageProcessor:
    """The image processor of the configured model, without loading its weights."""
    if model.name == TINY:
        return tiny_processor(model.tiny.image_size)
    try:
        return CLIPImageProcessor.from_pretrained(model.name)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(_not_found(model.name, error)) from error


def _not_found(name: str, error: Exception) -> str:
    return (f"model.name={name!r} could not be loaded ({error.__class__.__name__}). Without network access "
            "(or with HF_HUB_OFFLINE=1) a model must already be in the Hugging Face cache: set model.name to a "
            "local directory saved with save_pretrained, or to 'tiny' for the small model built here.")


def _unreadable(name: str, error: Exception) -> str:
    """Why a model from outside the project did not open, and what to do: a local directory's damaged
    file (its weights named), a Hugging Face id's damaged cached weights, or an id that is not cached."""
    directory = Path(name)
    if directory.is_dir():
        weights = sorted(directory.glob("*.safetensors"))
        if isinstance(error, SafetensorError) and weights:
            what = (f"{weights[0]} is damaged" if len(weights) == 1 else
                    f"one of {', '.join(str(path) for path in weights)} is damaged")
        else:
            what = f"the model in {directory} cannot be read"
        return (f"{what} ({error_text(error)}); save the model there again with save_pretrained, "
                "or copy it again from where it was saved")
    if isinstance(error, (SafetensorError, RuntimeError)):
        return (f"the weights of {name!r} in the Hugging Face cache are damaged ({error_text(error)}); "
                f"remove them (`hf cache rm model/{name}`) and download the model again")
    return _not_found(name, error)


def load_pretrained(name: str, tokenizer_dir: Path | None = None) -> Checkpoint:
    """A Hugging Face CLIP id or a save_pretrained directory, as it is."""
    try:
        model = CLIPModel.from_pretrained(name, use_safetensors=True)
        processor = CLIPImageProcessor.from_pretrained(name)
        tokenizer = load_tokenizer(tokenizer_dir or name)
    except LOAD_ERRORS as error:
        raise ModelNotFoundError(_unreadable(name, error)) from error
    return Checkpoint(model, tokenizer, processor, {"trained_from": name})


def load_checkpoint(directory: str | Path, made_by: str | None = None) -> Checkpoint:
    """Open a checkpoint directory written by `Checkpoint.save`.

    A damaged file is reported against the stage its manifest records, else `made_by` (the stage
    expected to have written it), else any stage."""
    directory = Path(directory)
    info_path = directory / INFO_FILE
    if not info_path.is_file():
        raise ModelNotFoundError(f"{directory} is not a fashion-search checkpoint (no {INFO_FILE}); "
                                 "run the stage that writes it (dvc repro)")
    stage = made_by
    try:
        info = json.loads(info_path.read_text(encoding="utf-8"))
        stage = info.get("stage") or made_by
        # Checkpoints saved before the hashes were recorded load unchecked.
        verify_weights(directory, info.pop(WEIGHTS_HASHES, {}), stage)
        # safetensors only: a pickled checkpoint could run code when loaded.
        model = CLIPModel.from_pretrained(directory, use_safetensors=True)
        processor = CLIPImageProcessor.from_pretrained(directory)
        tokenizer = load_tokenizer(directory)
    except WeightsChangedError:
        raise
    except LOAD_ERRORS as error:
        raise ModelNotFoundError(f"the checkpoint in {directory} is damaged or was tampered with "
                                 f"({error_text(error)}); {rerun_hint(stage)}") from error
    return Checkpoint(model.eval(), tokenizer, processor, info)


def image_embeddings(model: CLIPModel, pixel_values: torch.Tensor) -> torch.Tensor:
    """Projected image embeddings (not normalised)."""
    return model.get_image_features(pixel_values=pixel_values).pooler_output


def text_embeddings(model: CLIPModel, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
    """Projected text embeddings (not normalised)."""
    return model.get_text_features(input_ids=input_ids, attention_mask=attention_mask).pooler_output


@dataclass(frozen=True)
class Encoded:
    """Rows of a tower's output: the pooled embedding that retrieves, and for a token-level scorer every
    token's state in the same joint space with a mask of the real ones (images have no padding: None).

    Retrieval and re-ranking take rows of it as they take rows of a tensor (indexing, `len`,
    `repeat_interleave`), so one re-ranking function serves pooled and token-level pair scorers."""

    pooled: torch.Tensor                # (N, D)
    tokens: torch.Tensor | None = None  # (N, L, D)
    mask: torch.Tensor | None = None    # (N, L) bool, True for a real token

    def __len__(self) -> int:
        return len(self.pooled)

    def __getitem__(self, rows: Any) -> Encoded:
        return Encoded(*(None if part is None else part[rows] for part in (self.pooled, self.tokens, self.mask)))

    def repeat_interleave(self, repeats: int, dim: int = 0) -> Encoded:
        if dim != 0:
            raise ValueError("Encoded repeats rows only (dim=0)")
        return Encoded(*(None if part is None else part.repeat_interleave(repeats, dim=0)
                         for part in (self.pooled, self.tokens, self.mask)))

    def to(self, device: torch.device | str) -> Encoded:
        return Encoded(*(None if part is None else part.to(device) for part in (self.pooled, self.tokens, self.mask)))

    @property
    def token_mask(self) -> torch.Tensor:
        """The mask of real tokens, all True where none was given."""
        if self.tokens is None:
            raise ValueError("these rows carry no token states")
        if self.mask is None:
            return torch.ones(self.tokens.shape[:2], dtype=torch.bool, device=self.tokens.device)
        return self.mask


def vectors(rows: torch.Tensor | Encoded) -> torch.Tensor:
    """The pooled embeddings of rows given as a tensor or as `Encoded`."""
    return rows.pooled if isinstance(rows, Encoded) else rows


def image_states(model: CLIPModel, pixel_values: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected image embeddings (N, D), as `image_embeddings`, and every token's state (N, 1 + patches, D):
    the vision tower's last hidden states through the same layer norm and projection, so the first
    (CLS) token's state is the pooled embedding. One forward pass gives both."""
    output = model.get_image_features(pixel_values=pixel_values)
    tokens = model.visual_projection(model.vision_model.post_layernorm(output.last_hidden_state))
    return output.pooler_output, tokens


def text_states(model: CLIPModel, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Projected text embeddings (N, D), as `text_embeddings`, and every position's state (N, L, D) through
    the text projection; the end token's state is the pooled embedding. Positions the attention mask marks
    as padding carry nothing: the caller keeps the mask beside the states. One forward pass gives both."""
    output = model.get_text_features(input_ids=input_ids, attention_mask=attention_mask)
    return output.pooler_output, model.text_projection(output.last_hidden_state)


def tokens_of_segments(tokens: torch.Tensor, mask: torch.Tensor, owner: torch.Tensor,
                       captions: int) -> tuple[torch.Tensor, torch.Tensor]:
    """One token sequence per caption: the real tokens of its pieces one after another, right-padded with
    zeros, and the mask of real tokens (bool). A caption of one piece keeps its piece's states."""
    mask = mask.bool()
    if len(owner) == captions:  # one piece each, in order
        return tokens, mask
    rows = [torch.cat([tokens[piece][mask[piece]] for piece in torch.nonzero(owner == caption).flatten().tolist()])
            for caption in range(captions)]
    return pad_token_rows(rows)


def pad_token_rows(rows: list[torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
    """Sequences of token states (L_i, D) right-padded with zeros into (N, max L_i, D), and the mask of real tokens."""
    width = max(len(row) for row in rows)
    tokens = rows[0].new_zeros(len(rows), width, rows[0].shape[-1])
    mask = torch.zeros(len(rows), width, dtype=torch.bool, device=rows[0].device)
    for index, row in enumerate(rows):
        tokens[index, :len(row)] = row
        mask[index, :len(row)] = True
    return tokens, mask


def mean_of_segments(segment_embeds: torch.Tensor, owner: torch.Tensor, captions: int) -> torch.Tensor:
    """One embedding per caption: the mean of its pieces' unit embeddings (a caption of one piece
    keeps its own direction; the mean of several is shorter than 1). `owner[i]` is the caption of piece i."""
    unit = torch.nn.functional.normalize(segment_embeds, dim=-1)
    total = torch.zeros(captions, unit.shape[1], dtype=unit.dtype, device=unit.device).index_add_(0, owner, unit)
    pieces = torch.bincount(owner, minlength=captions).clamp(min=1).to(unit.dtype).unsqueeze(1)
    return total / pieces
