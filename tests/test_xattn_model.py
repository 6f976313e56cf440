"""The cross-modal pair scorer: per-pair scores, its matrix form, its starting point, and its files."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from conftest import TINY_MODEL
from fashion_search.models.clip import ModelNotFoundError, build_tiny
from fashion_search.models.xattn import (
    XattnScorer,
    ScorerConfig,
    XattnModel,
    load_xattn,
    new_scorer,
)
from fashion_search.text import build_tokenizer

CONFIG = ScorerConfig(dim=32, layers=2, heads=4, dropout=0.1)
CAPTIONS = [
    "a red dress with short sleeves", "a long blue skirt", "black trousers and a white shirt",
    "a striped cotton tee", "a green jacket with a hood", "denim shorts with pockets",
    "a yellow tank top", "a grey wool sweater", "a floral summer dress", "white sneakers with laces",
    "a leather belt", "a pink blouse with buttons", "a navy blazer", "a plaid flannel shirt",
    "a purple knit cardigan", "a beige trench coat", "an orange hoodie", "a silk scarf with dots",
    "a brown leather jacket", "a long-sleeved shirt with black and white boxes",
]


def trained_looking(scorer: XattnScorer, seed: int = 0) -> XattnScorer:
    """Perturb every parameter, so that the scorer is no longer its own zero-initialised start."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for parameter in scorer.parameters():
            parameter.add_(0.1 * torch.randn(parameter.shape, generator=generator))
    return scorer


@pytest.fixture
def scorer() -> XattnScorer:
    torch.manual_seed(0)
    return trained_looking(XattnScorer(CONFIG)).eval()


def embeddings(rows: int, seed: int) -> torch.Tensor:
    return torch.randn(rows, CONFIG.dim, generator=torch.Generator().manual_seed(seed))


def test_a_pairs_score_does_not_depend_on_the_rest_of_the_batch(scorer: XattnScorer) -> None:
    image, text = embeddings(1, seed=1), embeddings(1, seed=2)
    with torch.no_grad():
        alone = scorer(image, text)
        others_image, others_text = embeddings(9, seed=3), embeddings(9, seed=4)
        batch_image = torch.cat([others_image[:4], image, others_image[4:]])
        batch_text = torch.cat([others_text[:4], text, others_text[4:]])
        in_batch = scorer(batch_image, batch_text)
    assert alone.shape == (1,)
    assert in_batch.shape == (10,)
    assert float(in_batch[4]) == pytest.approx(float(alone[0]), abs=1e-5)
    # The scorer is not constant: the other pairs get other scores.
    assert float((in_batch - in_batch[4]).abs().max()) > 1e-3


def test_score_matrix_entry_is_the_score_of_that_pair(scorer: XattnScorer) -> None:
    images, texts = embeddings(3, seed=5), embeddings(4, seed=6)
    with torch.no_grad():
        matrix = scorer.score_matrix(images, texts)
        assert matrix.shape == (3, 4)
        for i in range(3):
            for j in range(4):
                single = scorer(images[i:i + 1], texts[j:j + 1])
                assert float(matrix[i, j]) == pytest.approx(float(single[0]), abs=1e-5)


def test_untrained_scorer_equals_the_cosine_of_its_inputs() -> None:
    torch.manual_seed(1)
    scorer = XattnScorer(CONFIG).eval()
    images, texts = embeddings(6, seed=7) * 3.0, embeddings(6, seed=8)
    with torch.no_grad():
        scores = scorer(images, texts)
    cosines = torch.nn.functional.cosine_similarity(images, texts, dim=-1)
    torch.testing.assert_close(scores, cosines, rtol=0, atol=1e-5)


def test_trained_looking_scorer_is_no_longer_the_cosine(scorer: XattnScorer) -> None:
    # Guards the two tests above: with a non-zero head the scores move away from the cosine.
    images, texts = embeddings(6, seed=7), embeddings(6, seed=8)
    with torch.no_grad():
        scores = scorer(images, texts)
    cosines = torch.nn.functional.cosine_similarity(images, texts, dim=-1)
    assert float((scores - cosines).abs().max()) > 1e-3


def test_scores_are_cosines_in_range(scorer: XattnScorer) -> None:
    with torch.no_grad():
        scores = scorer(embeddings(20, seed=9), embeddings(20, seed=10))
    assert bool(((scores >= -1 - 1e-5) & (scores <= 1 + 1e-5)).all())


def test_heads_must_divide_the_width() -> None:
    with pytest.raises(ValueError, match="heads"):
        XattnScorer(ScorerConfig(dim=32, layers=1, heads=5, dropout=0.0))


def test_new_scorer_is_seeded() -> None:
    first = new_scorer(dim=32, layers=1, heads=4, dropout=0.0, seed=3)
    second = new_scorer(dim=32, layers=1, heads=4, dropout=0.0, seed=3)
    other = new_scorer(dim=32, layers=1, heads=4, dropout=0.0, seed=4)
    a, b, c = first.state_dict(), second.state_dict(), other.state_dict()
    assert all(torch.equal(a[name], b[name]) for name in a)
    assert not all(torch.equal(a[name], c[name]) for name in a)


def test_save_and_load_round_trip(tmp_path: Path, scorer: XattnScorer) -> None:
    tokenizer = build_tokenizer(CAPTIONS, vocab_size=300, max_tokens=77)
    encoder = build_tiny(TINY_MODEL, tokenizer, max_tokens=77, seed=42)
    XattnModel(encoder, scorer).save(tmp_path / "xattn")

    loaded = load_xattn(tmp_path / "xattn")
    assert loaded.scorer.config == CONFIG
    assert not loaded.scorer.training
    images, texts = embeddings(5, seed=11), embeddings(5, seed=12)
    with torch.no_grad():
        torch.testing.assert_close(loaded.scorer(images, texts), scorer(images, texts), rtol=0, atol=0)
        torch.testing.assert_close(loaded.scorer.score_matrix(images, texts), scorer.score_matrix(images, texts),
                                   rtol=0, atol=0)
    # The encoder travels with it, weights and tokenizer alike.
    original, reloaded = encoder.model.state_dict(), loaded.encoder.model.state_dict()
    assert set(original) == set(reloaded)
    assert all(torch.equal(original[name], reloaded[name]) for name in original)
    assert loaded.encoder.tokenizer("a red dress")["input_ids"] == tokenizer("a red dress")["input_ids"]


def test_load_xattn_without_scorer_config_is_model_not_found(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(ModelNotFoundError, match="scorer.json"):
        load_xattn(tmp_path / "empty")
