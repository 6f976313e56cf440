"""The project's tokenizer, truncation at 77 tokens, padding, and the tokenize stage's statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

from fashion_search.text import BOS, EOS, PAD, build_tokenizer, encode, pad_batch
from fashion_search.tokenize import tokenize_pairs

CAPTIONS = [
    "a red dress with short sleeves", "a long blue skirt", "black trousers and a white shirt",
    "a striped cotton tee", "a green jacket with a hood", "denim shorts with pockets",
    "a yellow tank top", "a grey wool sweater", "a floral summer dress", "white sneakers with laces",
    "the shirt is long and the dress is red", "blue and red and green",
]
HELD_OUT = "a striped blue dress with long sleeves and a hooded green jacket"
WORDS = ["a", "red", "blue", "dress", "shirt", "long", "with", "and"]  # each one token after training


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(CAPTIONS, vocab_size=300, max_tokens=77)


def caption_of(n_words: int) -> str:
    return " ".join(WORDS[i % len(WORDS)] for i in range(n_words))


def test_build_is_deterministic() -> None:
    first = build_tokenizer(CAPTIONS, vocab_size=300, max_tokens=77)
    second = build_tokenizer(CAPTIONS, vocab_size=300, max_tokens=77)
    reordered = build_tokenizer(list(reversed(CAPTIONS)), vocab_size=300, max_tokens=77)
    ids = first(HELD_OUT)["input_ids"]
    assert second(HELD_OUT)["input_ids"] == ids
    assert reordered(HELD_OUT)["input_ids"] == ids
    assert first.get_vocab() == second.get_vocab() == reordered.get_vocab()
    # A tokenizer trained on other captions splits the sentence differently (the test can fail).
    other = build_tokenizer(["zebra print jumpsuit", "quilted puffer vest"], vocab_size=300, max_tokens=77)
    assert other(HELD_OUT)["input_ids"] != ids


def test_special_tokens(tokenizer) -> None:
    eos = tokenizer.convert_tokens_to_ids(EOS)
    assert tokenizer.eos_token_id == eos
    assert eos != 2  # CLIP's legacy pooling path triggers on eos_token_id == 2
    assert tokenizer.bos_token_id == tokenizer.convert_tokens_to_ids(BOS)
    assert tokenizer.pad_token_id == tokenizer.convert_tokens_to_ids(PAD)
    assert len({tokenizer.eos_token_id, tokenizer.bos_token_id, tokenizer.pad_token_id}) == 3
    ids = tokenizer("a red dress")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id and ids[-1] == eos


def test_lower_cased(tokenizer) -> None:
    assert tokenizer("A RED Dress")["input_ids"] == tokenizer("a red dress")["input_ids"]


def test_the_test_words_are_single_tokens(tokenizer) -> None:
    # The length arithmetic below relies on it: n words -> n + 2 ids.
    for word in WORDS:
        assert tokenizer.tokenize(word) == [word]


def test_long_caption_is_truncated_to_max_tokens_keeping_the_end_token(tokenizer) -> None:
    long_caption = caption_of(120)
    kept, lengths = encode(tokenizer, [long_caption], max_tokens=77)
    assert lengths == [122]  # 120 words + start and end tokens
    assert len(kept[0]) == 77
    assert kept[0][0] == tokenizer.bos_token_id
    assert kept[0][-1] == tokenizer.eos_token_id
    # What is kept is the beginning of the caption.
    full = tokenizer(long_caption, truncation=False, verbose=False)["input_ids"]
    assert kept[0][:76] == full[:76]


def test_short_captions_are_unchanged(tokenizer) -> None:
    captions = ["a red dress", caption_of(75), "blue shirt with long sleeves"]
    kept, lengths = encode(tokenizer, captions, max_tokens=77)
    full = [tokenizer(c)["input_ids"] for c in captions]
    assert kept == full
    assert lengths == [len(ids) for ids in full]
    assert lengths[1] == 77  # exactly at the limit: nothing cut


def test_encode_with_a_smaller_limit(tokenizer) -> None:
    kept, lengths = encode(tokenizer, [caption_of(10)], max_tokens=8)
    assert lengths == [12]
    assert len(kept[0]) == 8 and kept[0][-1] == tokenizer.eos_token_id


def test_pad_batch_shapes_and_masks() -> None:
    ids, mask = pad_batch([[5, 6, 7], [8], [9, 10]], pad_id=0)
    assert ids.shape == mask.shape == (3, 3)
    assert ids.dtype == mask.dtype == torch.long
    assert ids.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert mask.tolist() == [[1, 1, 1], [1, 0, 0], [1, 1, 0]]


def test_pad_batch_uses_the_given_pad_id() -> None:
    ids, mask = pad_batch([[1], [2, 3, 4, 5]], pad_id=99)
    assert ids.tolist() == [[1, 99, 99, 99], [2, 3, 4, 5]]
    assert mask.sum(dim=1).tolist() == [1, 4]


def test_tokenize_pairs_flags_and_summary(tokenizer) -> None:
    # Lengths 5, 7, 10, 102 (words + 2): only the last one exceeds 77.
    pairs = pd.DataFrame({
        "image": ["a.jpg", "b.jpg", "c.jpg", "d.jpg"],
        "item_id": ["i1", "i1", "i2", "i3"],
        "caption": [caption_of(3), caption_of(5), caption_of(8), caption_of(100)],
    })
    out, summary = tokenize_pairs(pairs, tokenizer, max_tokens=77)
    assert list(out.columns[:3]) == ["image", "item_id", "caption"]
    assert out["n_tokens"].tolist() == [5, 7, 10, 102]
    assert out["truncated"].tolist() == [False, False, False, True]
    assert [len(ids) for ids in out["input_ids"]] == [5, 7, 10, 77]
    assert summary["pairs"] == 4
    assert summary["max_tokens"] == 77
    assert summary["share_truncated"] == pytest.approx(0.25)
    assert summary["tokens_p50"] == pytest.approx(8.5)     # between 7 and 10
    assert summary["tokens_p90"] == pytest.approx(74.4)    # 10 + 0.7 * 92
    assert summary["tokens_p99"] == pytest.approx(99.24)   # 10 + 0.97 * 92
    assert summary["tokens_max"] == 102
    assert "input_ids" not in pairs.columns  # the input frame is left alone


def test_tokenize_pairs_nothing_truncated(tokenizer) -> None:
    pairs = pd.DataFrame({"image": ["a.jpg", "b.jpg"], "item_id": ["i1", "i2"],
                          "caption": ["a red dress", "a long blue shirt"]})
    out, summary = tokenize_pairs(pairs, tokenizer, max_tokens=77)
    assert not out["truncated"].any()
    assert summary["share_truncated"] == 0.0
    assert summary["tokens_max"] == int(np.max(out["n_tokens"])) == 6


def test_segments_are_sentence_aligned_within_the_limit_and_short_captions_stay_whole() -> None:
    from fashion_search.text import flatten_segments, segment_caption

    sentences = [f"The lady wears item number {i} with a striped pattern and cotton fabric." for i in range(12)]
    tokenizer = build_tokenizer(sentences, vocab_size=300, max_tokens=77)
    long_caption = " ".join(sentences)
    pieces = segment_caption(tokenizer, long_caption, 30)
    assert len(pieces) > 1 and all(len(p) <= 30 for p in pieces)
    decoded = [tokenizer.decode(p, skip_special_tokens=True) for p in pieces]
    assert all(text.rstrip().endswith(".") for text in decoded)  # cut at sentence ends
    assert sum(text.count(".") for text in decoded) == 12  # nothing lost
    short = sentences[0]
    assert segment_caption(tokenizer, short, 77) == [tokenizer(short)["input_ids"]]
    flat, owner = flatten_segments([pieces, [pieces[0]]])
    assert len(flat) == len(pieces) + 1 and owner.tolist() == [0] * len(pieces) + [1]


def test_mean_of_segments_is_the_mean_of_the_pieces_unit_embeddings() -> None:
    import torch

    from fashion_search.models.clip import mean_of_segments

    pieces = torch.tensor([[3.0, 4.0], [0.0, 2.0], [1.0, 0.0], [0.0, -5.0]])
    owner = torch.tensor([0, 0, 1, 2])
    means = mean_of_segments(pieces, owner, 3)
    assert torch.allclose(means, torch.tensor([[0.3, 0.9], [1.0, 0.0], [0.0, -1.0]]))
    # One piece: its own unit vector, bit for bit.
    assert torch.equal(mean_of_segments(pieces[2:3] * 7, torch.tensor([0]), 1), torch.tensor([[1.0, 0.0]]))
