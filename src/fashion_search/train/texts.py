"""What a contrastive stage trains on: the captions, optionally label-written alt texts, and targets.

`train.positives: pair` is CLIP's and the report's loss: a text's only positive is its own
image. `labels` lets every image of the batch that a text fits count as a positive: a
caption fits the views of its product, an alt text ("male model in navy jeans") every
image whose labels show what it says. Without it, each batch teaches the model that the
other pair of navy jeans is *not* navy jeans.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch
from transformers import PreTrainedTokenizerBase

from fashion_search.config import ConfigError, TrainSettings
from fashion_search.data.alt_text import alt_texts
from fashion_search.data.attributes import image_attributes
from fashion_search.inputs import pair_segments
from fashion_search.text import encode
from fashion_search.text import Segments
from fashion_search.train.loop import TextTargets

ITEM = "item"
NOT_STATED, NOT_LABELLED = -1, -2


def _codes(attributes: pd.DataFrame, items: pd.Series) -> tuple[list[str], dict[str, dict[str, int]], torch.Tensor]:
    """Columns, each column's value -> code, and the images' codes (NOT_LABELLED where None)."""
    frame = attributes.assign(**{ITEM: items.to_numpy()})
    columns = list(frame.columns)
    vocab = {column: {value: code for code, value in enumerate(sorted(frame[column].dropna().unique()))}
             for column in columns}
    codes = torch.tensor([[vocab[c].get(v, NOT_LABELLED) if isinstance(v, str) else NOT_LABELLED
                           for c, v in zip(columns, row)] for row in frame.itertuples(index=False)],
                         dtype=torch.long).reshape(len(frame), len(columns))
    return columns, vocab, codes


def contrastive_texts(pairs: pd.DataFrame, raw: Path | None, tokenizer: PreTrainedTokenizerBase, max_tokens: int,
                      settings: TrainSettings, seed: int) -> tuple[list[Segments], TextTargets | None, dict[str, int]]:
    """What `train_contrastive` trains on under `settings.alt_texts` and `settings.positives`: the
    captions alone with one positive each (the report's setting), or with alt texts and/or
    label-aware positives, which read the images' attributes from data/raw."""
    captions = pair_segments(pairs)
    if settings.alt_texts == 0 and settings.positives == "pair":
        return captions, None, {"captions": len(captions), "alt_texts": 0}
    if raw is None:
        raise ConfigError("alt_texts > 0 or positives: labels needs the images' labels: pass --raw data/raw")
    attributes = image_attributes(raw, pairs["image"].tolist())
    texts, targets, counts = training_texts(pairs, captions, attributes, tokenizer, max_tokens, settings.alt_texts,
                                            seed)
    if settings.positives == "pair" and targets is not None:
        own = targets.image_rows.unsqueeze(1)
        targets = TextTargets(targets.image_rows, own, torch.arange(len(pairs)).unsqueeze(1), targets.buckets)
        # (no attribute heads: the codes are image identities, not labels)
    return texts, targets, counts


def training_texts(pairs: pd.DataFrame, captions: list[Segments], attributes: pd.DataFrame | None,
                   tokenizer: PreTrainedTokenizerBase, max_tokens: int, alt_texts_per_image: int,
                   seed: int) -> tuple[list[Segments], TextTargets | None, dict[str, int]]:
    """The captions followed by `alt_texts_per_image` alt texts for each image, with their targets
    (None: the report's one positive per caption) and counts for the stage's metrics."""
    if attributes is None:
        return captions, None, {"captions": len(captions), "alt_texts": 0}
    columns, vocab, image_codes = _codes(attributes, pairs["item_id"])
    item = columns.index(ITEM)
    caption_codes = torch.full((len(captions), len(columns)), NOT_STATED, dtype=torch.long)
    caption_codes[:, item] = image_codes[:, item]
    texts, rows, codes = list(captions), [torch.arange(len(captions))], [caption_codes]
    if alt_texts_per_image > 0:
        owners, written = alt_texts(attributes, alt_texts_per_image, seed)
        if written:
            ids, _ = encode(tokenizer, [t.text for t in written], max_tokens)
            texts += [[piece] for piece in ids]
            rows.append(torch.tensor(owners, dtype=torch.long))
            stated = torch.full((len(written), len(columns)), NOT_STATED, dtype=torch.long)
            for row, text in enumerate(written):
                for column, value in text.stated.items():
                    stated[row, columns.index(column)] = vocab[column][value]
            codes.append(stated)
    buckets = torch.cat([torch.full((len(r),), i, dtype=torch.long) for i, r in enumerate(rows)])
    sizes = tuple(0 if column == ITEM else len(vocab[column]) for column in columns)
    targets = TextTargets(torch.cat(rows), torch.cat(codes), image_codes, buckets, sizes)
    return texts, targets, {"captions": len(captions), "alt_texts": len(texts) - len(captions)}
