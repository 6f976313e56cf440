"""The tokenize stage's logic: the tokenizer for the configured model, and token statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from fashion_search.config import ModelSettings, TextSettings
from fashion_search.models.clip import TINY, ModelNotFoundError
from fashion_search.text import encode, load_tokenizer


def pretrained_tokenizer(model: ModelSettings) -> PreTrainedTokenizerBase | None:
    """A pretrained CLIP's own tokenizer, checked before any work; None for the tiny model,
    whose tokenizer is trained on the captions (`build_tokenizer`)."""
    if model.name == TINY:
        return None
    try:
        return load_tokenizer(model.name)
    except (OSError, ValueError) as error:
        raise ModelNotFoundError(
            f"model.name={model.name!r}: its tokenizer could not be loaded ({error.__class__.__name__}). "
            "Offline, use a local directory saved with save_pretrained, or model.name: tiny."
        ) from error


def tokenize_pairs(pairs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase,
                   max_tokens: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Add input_ids (truncated), n_tokens (full length) and truncated; summarise the lengths."""
    ids, lengths = encode(tokenizer, pairs["caption"].tolist(), max_tokens)
    out = pairs.assign(input_ids=ids, n_tokens=lengths)
    out["truncated"] = out["n_tokens"] > max_tokens
    lengths_array = np.asarray(lengths)
    summary = {
        "pairs": int(len(out)),
        "max_tokens": max_tokens,
        "share_truncated": round(float(out["truncated"].mean()), 6),
        "tokens_p50": float(np.percentile(lengths_array, 50)),
        "tokens_p90": float(np.percentile(lengths_array, 90)),
        "tokens_p99": float(np.percentile(lengths_array, 99)),
        "tokens_max": int(lengths_array.max()),
    }
    return out, summary
