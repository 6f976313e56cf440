"""Tokenizers: the small model's own BPE, or a pretrained CLIP's; truncation at 77 tokens.

The tokenizer is saved once by the tokenize stage and then travels with every
checkpoint, so training, evaluation and search always split text the same way.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoTokenizer, PreTrainedTokenizerBase, PreTrainedTokenizerFast

PAD, UNK, BOS, EOS = "<|pad|>", "<|unk|>", "<|startoftext|>", "<|endoftext|>"
# Ids follow list order. EOS must not be 2: CLIP's text pooling takes a legacy
# argmax path when eos_token_id == 2, which is wrong for a home-made vocabulary.
SPECIAL_TOKENS = [PAD, UNK, BOS, EOS]
PAD_ID, EOS_ID, BOS_ID = (SPECIAL_TOKENS.index(t) for t in (PAD, EOS, BOS))

Segments = Sequence[Sequence[int]]  # one caption: its token id pieces (one unless segmented)


def build_tokenizer(captions: Iterable[str], vocab_size: int, max_tokens: int) -> PreTrainedTokenizerFast:
    """Train a lower-cased byte-pair tokenizer on the captions, deterministically and offline."""
    bpe = Tokenizer(models.BPE(unk_token=UNK))
    bpe.normalizer = normalizers.Sequence([normalizers.NFKC(), normalizers.Lowercase()])
    bpe.pre_tokenizer = pre_tokenizers.Whitespace()
    bpe.decoder = decoders.BPEDecoder()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=SPECIAL_TOKENS, show_progress=False)
    bpe.train_from_iterator(sorted(captions), trainer=trainer)
    bpe.post_processor = processors.TemplateProcessing(
        single=f"{BOS} $A {EOS}", special_tokens=[(BOS, BOS_ID), (EOS, EOS_ID)]
    )
    return PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token=BOS, eos_token=EOS, pad_token=PAD, unk_token=UNK,
        model_max_length=max_tokens,
    )


def load_tokenizer(name_or_dir: str | Path) -> PreTrainedTokenizerBase:
    """A saved tokenizer directory or a Hugging Face model id (cached or downloadable)."""
    return AutoTokenizer.from_pretrained(str(name_or_dir))


def encode(tokenizer: PreTrainedTokenizerBase, captions: Sequence[str],
           max_tokens: int) -> tuple[list[list[int]], list[int]]:
    """Token ids truncated to max_tokens (end token kept), and each caption's full length."""
    full = tokenizer(list(captions), add_special_tokens=True, truncation=False, verbose=False)["input_ids"]
    kept = tokenizer(list(captions), add_special_tokens=True, truncation=True, max_length=max_tokens)["input_ids"]
    return kept, [len(ids) for ids in full]


_SENTENCE_END = re.compile(r"(?<=[.!?])\s+")


def segment_caption(tokenizer: PreTrainedTokenizerBase, caption: str, max_tokens: int) -> list[list[int]]:
    """Sentence-aligned pieces of at most max_tokens tokens each (the report's future work).

    Sentences are packed greedily; a single sentence longer than the limit is a
    piece of its own and is truncated. A short caption is one piece, equal to
    its plain tokenization.
    """
    pieces: list[str] = []
    current: list[str] = []
    for sentence in _SENTENCE_END.split(caption.strip()):
        candidate = " ".join([*current, sentence])
        if current and len(tokenizer(candidate, verbose=False)["input_ids"]) > max_tokens:
            pieces.append(" ".join(current))
            current = [sentence]
        else:
            current.append(sentence)
    pieces.append(" ".join(current))
    return tokenizer(pieces, truncation=True, max_length=max_tokens)["input_ids"]


def pad_batch(sequences: Sequence[Sequence[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad token id lists into (input_ids, attention_mask)."""
    width = max(len(s) for s in sequences)
    ids = torch.full((len(sequences), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(sequences), width), dtype=torch.long)
    for row, seq in enumerate(sequences):
        ids[row, : len(seq)] = torch.as_tensor(seq, dtype=torch.long)
        mask[row, : len(seq)] = 1
    return ids, mask


def flatten_segments(captions: Sequence[Sequence[Sequence[int]]]) -> tuple[list[Sequence[int]], torch.Tensor]:
    """All pieces of a batch of captions in one list, and the caption each piece belongs to."""
    pieces = [piece for caption in captions for piece in caption]
    owner = torch.tensor([row for row, caption in enumerate(captions) for _ in caption], dtype=torch.long)
    return pieces, owner
