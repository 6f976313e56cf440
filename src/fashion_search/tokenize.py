"""The tokenize stage's logic: the tokenizer for the configured model, and token statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
from transformers import PreTrainedTokenizerBase

from fashion_search.config import ModelSettings
from fashion_search.models.clip import TINY, ModelNotFoundError
from fashion_search.text import encode, load_tokenizer, segment_caption


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


def tokenize_pairs(pairs: pd.DataFrame, tokenizer: PreTrainedTokenizerBase, max_tokens: int,
                   long_text: str = "truncate") -> tuple[pd.DataFrame, dict[str, float]]:
    """Add input_ids (truncated), n_tokens (full length), truncated, and segments: the token ids
    each caption is embedded from — sentence-aligned pieces under `long_text: segment`, else
    the truncated ids alone."""
    ids, lengths = encode(tokenizer, pairs["caption"].tolist(), max_tokens)
    out = pairs.assign(input_ids=ids, n_tokens=lengths)
    out["truncated"] = out["n_tokens"] > max_tokens
    if long_text == "segment":
        out["segments"] = [segment_caption(tokenizer, caption, max_tokens) if long else [kept]
                           for caption, kept, long in zip(out["caption"], ids, out["truncated"])]
    else:
        out["segments"] = [[kept] for kept in ids]
    lengths_array = np.asarray(lengths)
    summary = {
        "pairs": int(len(out)),
        "max_tokens": max_tokens,
        "share_truncated": round(float(out["truncated"].mean()), 6),
        "tokens_p50": float(np.percentile(lengths_array, 50)),
        "tokens_p90": float(np.percentile(lengths_array, 90)),
        "tokens_p99": float(np.percentile(lengths_array, 99)),
        "tokens_max": int(lengths_array.max()),
        "long_text": long_text,
        "segments_per_caption": round(float(out["segments"].map(len).mean()), 6),
    }
    return out, summary
