"""Token-level re-ranking: CLIP's token states, the token scorer (`xattn.features: tokens`) and late interaction."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from conftest import TINY_MODEL
from fashion_search import embedding
from fashion_search.config import ConfigError, XattnSettings
from fashion_search.device import CPU
from fashion_search.embedding import embed_images, embed_texts, encode_images, encode_texts
from fashion_search.evaluate.retrieval import Retriever, candidate_scores, query_first, search
from fashion_search.evaluate.strict import strict_ranks
from fashion_search.models.clip import (Encoded, build_tiny, image_embeddings, image_states, text_embeddings,
                                        text_states)
from fashion_search.models.late_interaction import LateInteraction
from fashion_search.models.xattn import SCORER_CONFIG, ScorerConfig, XattnModel, XattnScorer, load_xattn, new_scorer
from fashion_search.text import build_tokenizer, pad_batch
from fashion_search.train.resume import TrainingState
from fashion_search.train.session import SCRATCH_DIR, Session
from fashion_search.train.xattn import check_processes, train_xattn

DIM = 32
TOKENS = ScorerConfig(dim=DIM, layers=2, heads=4, dropout=0.0, features="tokens")


def random_rows(rows: int, lengths: list[int] | None, seed: int, width: int = 5) -> Encoded:
    """Rows with token states: `lengths` real tokens each (None: images, no padding), the rest zeros."""
    generator = torch.Generator().manual_seed(seed)
    pooled = F.normalize(torch.randn(rows, DIM, generator=generator), dim=-1)
    tokens = torch.randn(rows, width, DIM, generator=generator)
    if lengths is None:
        return Encoded(pooled, tokens)
    mask = torch.arange(width).unsqueeze(0) < torch.tensor(lengths).unsqueeze(1)
    return Encoded(pooled, tokens * mask.unsqueeze(-1), mask)


def perturbed(scorer: XattnScorer) -> XattnScorer:
    generator = torch.Generator().manual_seed(7)
    with torch.no_grad():
        for parameter in scorer.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return scorer.eval()


@pytest.fixture
def token_scorer() -> XattnScorer:
    return perturbed(new_scorer(DIM, 2, 4, 0.0, seed=0, features="tokens"))


def test_a_token_pairs_score_depends_on_that_pair_alone_and_not_on_its_padding(token_scorer: XattnScorer) -> None:
    images, texts = random_rows(6, None, seed=1), random_rows(6, [5, 2, 3, 4, 1, 5], seed=2)
    with torch.no_grad():
        batch = token_scorer(images, texts)
        alone = torch.cat([token_scorer(images[[i]], texts[[i]]) for i in range(6)])
        narrow = texts[[1]]  # two real tokens: cut the padding off, then pad it wider
        cut = Encoded(narrow.pooled, narrow.tokens[:, :2], narrow.mask[:, :2])
        wide = Encoded(narrow.pooled, F.pad(narrow.tokens, (0, 0, 0, 4), value=3.0), F.pad(narrow.mask, (0, 4)))
        padded = [token_scorer(images[[1]], rows) for rows in (cut, wide)]
    torch.testing.assert_close(batch, alone, rtol=0, atol=1e-6)
    for score in padded:
        torch.testing.assert_close(score, batch[1:2], rtol=0, atol=1e-6)


def test_the_token_scorer_reads_the_tokens() -> None:
    scorer = perturbed(new_scorer(DIM, 2, 4, 0.0, seed=0, features="tokens"))
    images, texts = random_rows(4, None, seed=3), random_rows(4, [5, 5, 5, 5], seed=4)
    other_tokens = Encoded(images.pooled, images.tokens.flip(1))
    with torch.no_grad():
        assert not torch.allclose(scorer(images, texts), scorer(other_tokens, texts), atol=1e-4)


def test_an_untrained_token_scorer_equals_the_cosine_of_the_pooled_embeddings() -> None:
    scorer = new_scorer(DIM, 2, 4, 0.0, seed=0, features="tokens").eval()
    images, texts = random_rows(5, None, seed=5), random_rows(5, [1, 2, 3, 4, 5], seed=6)
    with torch.no_grad():
        torch.testing.assert_close(scorer(images, texts), (images.pooled * texts.pooled).sum(-1), rtol=0, atol=1e-6)


def test_the_token_scorer_refuses_rows_without_token_states(token_scorer: XattnScorer) -> None:
    with pytest.raises(ValueError, match="token states"):
        token_scorer(torch.randn(2, DIM), torch.randn(2, DIM))


def test_the_pooled_scorer_scores_encoded_rows_as_their_pooled_embeddings() -> None:
    scorer = perturbed(new_scorer(DIM, 2, 4, 0.0, seed=0))
    images, texts = random_rows(4, None, seed=7), random_rows(4, [2, 3, 4, 5], seed=8)
    with torch.no_grad():
        assert torch.equal(scorer(images, texts), scorer(images.pooled, texts.pooled))


def test_a_token_scorer_matrix_entry_is_the_score_of_that_pair(token_scorer: XattnScorer) -> None:
    images, texts = random_rows(3, None, seed=9), random_rows(4, [5, 1, 3, 2], seed=10)
    with torch.no_grad():
        matrix = token_scorer.score_matrix(images, texts)
        for i in range(3):
            for t in range(4):
                torch.testing.assert_close(matrix[i, t:t + 1], token_scorer(images[[i]], texts[[t]]), rtol=0, atol=1e-6)


def test_features_and_token_weights_survive_save_and_load(tmp_path: Path, token_scorer: XattnScorer) -> None:
    tokenizer = build_tokenizer(["a red dress", "blue jeans"], 300, 77)
    XattnModel(build_tiny(TINY_MODEL, tokenizer, 77, seed=0), token_scorer).save(tmp_path)
    loaded = load_xattn(tmp_path).scorer
    assert loaded.config == TOKENS
    images, texts = random_rows(3, None, seed=11), random_rows(3, [5, 2, 4], seed=12)
    with torch.no_grad():
        assert torch.equal(loaded(images, texts), token_scorer(images, texts))


def test_a_scorer_saved_before_token_features_existed_loads_as_the_pooled_scorer(tmp_path: Path) -> None:
    tokenizer = build_tokenizer(["a red dress", "blue jeans"], 300, 77)
    XattnModel(build_tiny(TINY_MODEL, tokenizer, 77, seed=0), new_scorer(DIM, 2, 4, 0.0, seed=0)).save(tmp_path)
    config = json.loads((tmp_path / SCORER_CONFIG).read_text())
    del config["features"]
    (tmp_path / SCORER_CONFIG).write_text(json.dumps(config))
    assert load_xattn(tmp_path).scorer.config.features == "pooled"


def test_an_unknown_feature_kind_is_refused_naming_the_key() -> None:
    with pytest.raises(ConfigError, match="xattn.features"):
        XattnScorer(dataclasses.replace(TOKENS, features="patches"))


def test_token_features_train_in_one_process_only() -> None:
    check_processes("pooled", 4)
    check_processes("tokens", 1)
    with pytest.raises(ConfigError, match="runtime.processes"):
        check_processes("tokens", 2)


def maxsim_reference(image: torch.Tensor, text: torch.Tensor, real: int) -> float:
    """One pair by loops: each real text token after the start token, its best cosine over the image tokens."""
    best = []
    for t in range(1, real):
        best.append(max(float(F.cosine_similarity(text[t], image[i], dim=0)) for i in range(len(image))))
    return sum(best) / len(best)


def test_late_interaction_is_maxsim_over_the_real_text_tokens_after_the_start_token() -> None:
    images, texts = random_rows(4, None, seed=13), random_rows(4, [5, 2, 3, 4], seed=14)
    got = LateInteraction()(images, texts)
    for row, real in enumerate([5, 2, 3, 4]):
        assert got[row].item() == pytest.approx(maxsim_reference(images.tokens[row], texts.tokens[row], real), abs=1e-6)


def test_late_interaction_scores_one_for_a_text_whose_tokens_are_among_the_image_tokens() -> None:
    images = random_rows(1, None, seed=15)
    texts = Encoded(images.pooled, torch.cat([torch.randn(1, 1, DIM), 2.0 * images.tokens[:, [3, 0, 3]]], dim=1),
                    torch.ones(1, 4, dtype=torch.bool))
    assert LateInteraction()(images, texts).item() == pytest.approx(1.0, abs=1e-6)


def test_reranking_encoded_rows_with_the_pooled_scorer_gives_the_tensor_ranks() -> None:
    scorer = perturbed(new_scorer(DIM, 1, 4, 0.0, seed=0))
    images, texts = random_rows(12, None, seed=16), random_rows(12, [3] * 12, seed=17)
    retriever = Retriever(chunk_size=5, scorer=scorer, rerank_k=4)
    captions = [f"caption {i % 9}" for i in range(12)]  # some shared: image to text ranks the distinct ones
    encoded = strict_ranks(images, texts, captions, retriever)
    plain = strict_ranks(images.pooled, texts.pooled, captions, retriever)
    assert plain["t2i"].tolist() != strict_ranks(images.pooled, texts.pooled, captions, Retriever(5))["t2i"].tolist()
    assert {d: r.tolist() for d, r in encoded.items()} == {d: r.tolist() for d, r in plain.items()}


def test_candidate_scores_of_encoded_rows_are_the_scores_of_each_pair_alone(token_scorer: XattnScorer) -> None:
    images, texts = random_rows(10, None, seed=18), random_rows(7, [5, 1, 2, 3, 4, 5, 2], seed=19)
    candidates, scores = candidate_scores(texts, images, 4, 6, query_first(token_scorer, "t2i"))
    for q in range(7):
        for column, image in enumerate(candidates[q].tolist()):
            with torch.no_grad():
                alone = token_scorer(images[[image]], texts[[q]])
            torch.testing.assert_close(scores[q, column:column + 1], alone, rtol=0, atol=1e-6)


def test_search_re_ranks_one_encoded_query_row_by_its_pair_scores(token_scorer: XattnScorer) -> None:
    images, texts = random_rows(10, None, seed=20), random_rows(1, [4], seed=21)
    hits, scores = search(texts, images, 3, query_first(token_scorer, "t2i"), rerank_k=6)
    candidates = (images.pooled @ texts.pooled[0]).topk(6).indices
    with torch.no_grad():
        expected = token_scorer(images[candidates], texts.repeat_interleave(6))
    best = expected.sort(descending=True, stable=True)
    assert hits.tolist() == candidates[best.indices[:3]].tolist()
    torch.testing.assert_close(scores, best.values[:3], rtol=0, atol=1e-6)


def tiny_clip() -> tuple:
    captions = [f"a {colour} shirt with {pattern} patterns" for colour in ("red", "blue", "green")
                for pattern in ("striped", "floral", "plain")]
    tokenizer = build_tokenizer(captions, 300, 77)
    ids = tokenizer(captions)["input_ids"]
    pixels = torch.randint(0, 256, (len(captions), 3, 32, 32), dtype=torch.uint8,
                           generator=torch.Generator().manual_seed(0))
    return build_tiny(TINY_MODEL, tokenizer, 77, seed=1), ids, pixels


def test_token_states_hold_the_pooled_embeddings_at_the_cls_and_end_tokens() -> None:
    checkpoint, ids, pixels = tiny_clip()
    model = checkpoint.model.eval()
    values = checkpoint.pixel_spec.normalise(pixels)
    input_ids, mask = pad_batch(ids, checkpoint.pad_id)
    with torch.no_grad():
        pooled_image, image_tokens = image_states(model, values)
        pooled_text, text_tokens = text_states(model, input_ids, mask)
        assert torch.equal(pooled_image, image_embeddings(model, values))
        assert torch.equal(pooled_text, text_embeddings(model, input_ids, mask))
    patches = (TINY_MODEL.image_size // TINY_MODEL.patch_size) ** 2
    assert image_tokens.shape == (len(ids), 1 + patches, pooled_image.shape[1])
    torch.testing.assert_close(image_tokens[:, 0], pooled_image, rtol=1e-5, atol=1e-5)
    ends = mask.sum(dim=1) - 1
    torch.testing.assert_close(text_tokens[torch.arange(len(ids)), ends], pooled_text, rtol=1e-5, atol=1e-5)


def test_encoding_gives_the_embeddings_to_the_bit_and_joins_a_captions_pieces() -> None:
    checkpoint, ids, pixels = tiny_clip()
    captions = [[row, row[:4]] if i % 3 == 0 else [row] for i, row in enumerate(ids)]
    images, texts = encode_images(checkpoint, pixels, 4, CPU), encode_texts(checkpoint, captions, 4, CPU)
    assert torch.equal(images.pooled, embed_images(checkpoint, pixels, 4, CPU))
    assert torch.equal(texts.pooled, embed_texts(checkpoint, captions, 4, CPU))
    assert texts.mask.sum(dim=1).tolist() == [sum(len(piece) for piece in caption) for caption in captions]
    alone = encode_texts(checkpoint, [[ids[0]], [ids[0][:4]]], 4, CPU)
    joined = torch.cat([alone.tokens[0][alone.mask[0]], alone.tokens[1][alone.mask[1]]])
    torch.testing.assert_close(texts.tokens[0][texts.mask[0]], joined, rtol=0, atol=1e-6)
    assert not texts.tokens[~texts.mask].any()


def token_settings(**changes: object) -> XattnSettings:
    base = XattnSettings(layers=1, heads=4, dropout=0.1, epochs=2, lr=1e-5, lock_image=False, lock_text=False,
                         head_lr=1e-3, batch_size=4, temperature=0.1, weight_decay=0.01, warmup_steps=1,
                         grad_clip=1.0, workers=0, checkpoint_every=0, negatives=2, features="tokens")
    return dataclasses.replace(base, **changes)


def train_tokens(settings: XattnSettings, session: Session | None = None) -> tuple[list[float], XattnModel]:
    checkpoint, ids, pixels = tiny_clip()
    captions = [[row, row[:4]] if i % 3 == 0 else [row] for i, row in enumerate(ids)]
    xattn = XattnModel(checkpoint, new_scorer(DIM, settings.layers, settings.heads, settings.dropout, seed=1,
                                              features=settings.features))
    return train_xattn(xattn, pixels, captions, list(range(len(ids))), settings, seed=1, session=session), xattn


@pytest.mark.parametrize("locked,negatives", [(False, 2), (True, 2), (True, 0)])
def test_token_scorer_training_moves_the_token_weights_and_reruns_bit_identically(locked: bool,
                                                                                  negatives: int) -> None:
    settings = token_settings(lock_image=locked, lock_text=locked, negatives=negatives)
    (losses, first), (again, second) = train_tokens(settings), train_tokens(settings)
    assert losses == again and all(torch.isfinite(torch.tensor(losses)))
    trained, rerun = first.scorer.state_dict(), second.scorer.state_dict()
    assert all(torch.equal(trained[name], rerun[name]) for name in trained)
    start = new_scorer(DIM, 1, 4, 0.1, seed=1, features="tokens").state_dict()
    assert not torch.equal(trained["image_in.weight"], start["image_in.weight"])
    assert not torch.equal(trained["text_in.weight"], start["text_in.weight"])


def table_files(monkeypatch: pytest.MonkeyPatch) -> list[Path]:
    """From now on every token table goes to a file (the size limit lowered to 0): the files, as created."""
    monkeypatch.setattr(embedding, "IN_MEMORY_TOKEN_BYTES", 0)
    files, open_memmap = [], np.lib.format.open_memmap

    def spy(path, mode="r+", *args, **kwargs):
        if mode == "w+":
            files.append(Path(path))
        return open_memmap(path, mode, *args, **kwargs)

    monkeypatch.setattr(np.lib.format, "open_memmap", spy)
    return files


@pytest.mark.parametrize("several_pieces", [False, True])
def test_token_tables_past_the_size_limit_are_memory_mapped_files_with_the_same_values(
        monkeypatch: pytest.MonkeyPatch, tmp_path: Path, several_pieces: bool) -> None:
    checkpoint, ids, pixels = tiny_clip()
    captions = [[row, row[:4]] if several_pieces and i % 3 == 0 else [row] for i, row in enumerate(ids)]
    in_memory = encode_images(checkpoint, pixels, 4, CPU), encode_texts(checkpoint, captions, 4, CPU)
    files = table_files(monkeypatch)
    spilled = (encode_images(checkpoint, pixels, 4, CPU, tmp_path / "spill"),
               encode_texts(checkpoint, captions, 4, CPU, tmp_path / "spill"))
    assert [path.parent for path in files] == [tmp_path / "spill"] * 2
    assert not any(path.exists() for path in files)  # unlinked once mapped
    for expected, got in zip(in_memory, spilled):
        assert torch.equal(got.pooled, expected.pooled) and torch.equal(got.tokens, expected.tokens)
    assert spilled[0].mask is None and torch.equal(spilled[1].mask, in_memory[1].mask)


def test_locked_token_tables_in_files_train_bit_identically(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    settings = token_settings(lock_image=True, lock_text=True)
    losses, first = train_tokens(settings)
    files = table_files(monkeypatch)
    session = Session(state=TrainingState(tmp_path / "state", "fingerprint", every=0))
    again, second = train_tokens(settings, session)
    assert [path.parent for path in files] == [tmp_path / "state" / SCRATCH_DIR] * 2
    assert not any(path.exists() for path in files)
    assert again == losses
    trained, rerun = first.scorer.state_dict(), second.scorer.state_dict()
    assert all(torch.equal(trained[name], rerun[name]) for name in trained)
