"""The symmetric InfoNCE loss, against hand-computed numbers and an independent numpy reference."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from fashion_search.train.loss import ContrastiveLoss, symmetric_cross_entropy


def reference_symmetric_infonce(image: np.ndarray, text: np.ndarray, temperature: float) -> float:
    """Float64 numpy: cosine logits, log-softmax over rows and over columns, mean of the two."""
    image = image / np.linalg.norm(image, axis=1, keepdims=True)
    text = text / np.linalg.norm(text, axis=1, keepdims=True)
    logits = image @ text.T / temperature

    def log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
        shifted = x - x.max(axis=axis, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=axis, keepdims=True))

    image_to_text = -np.diag(log_softmax(logits, axis=1)).mean()
    text_to_image = -np.diag(log_softmax(logits, axis=0)).mean()
    return float((image_to_text + text_to_image) / 2)


def test_hand_computed_two_by_two() -> None:
    # images (1, 0), (0, 1); texts at 60 degrees and 90 degrees: cosines [[1/2, 0], [sqrt(3)/2, 1]].
    images = torch.tensor([[1.0, 0.0], [0.0, 1.0]], dtype=torch.float64)
    texts = torch.tensor([[0.5, math.sqrt(3) / 2], [0.0, 1.0]], dtype=torch.float64)
    # temperature 0.5 -> logits [[1, 0], [sqrt(3), 2]]
    s3 = math.sqrt(3)
    row_0 = -1.0 + math.log(math.exp(1.0) + math.exp(0.0))   # image 0 over texts, positive text 0
    row_1 = -2.0 + math.log(math.exp(s3) + math.exp(2.0))    # image 1 over texts, positive text 1
    col_0 = -1.0 + math.log(math.exp(1.0) + math.exp(s3))    # text 0 over images, positive image 0
    col_1 = -2.0 + math.log(math.exp(0.0) + math.exp(2.0))   # text 1 over images, positive image 1
    expected = ((row_0 + row_1) / 2 + (col_0 + col_1) / 2) / 2
    assert expected == pytest.approx(0.5332564, abs=1e-6)  # the same numbers, written out

    loss = ContrastiveLoss(temperature=0.5)(images, texts)
    assert float(loss) == pytest.approx(expected, abs=1e-6)


def test_logits_are_cosine_over_temperature_images_as_rows() -> None:
    images = torch.tensor([[2.0, 0.0], [0.0, 3.0]], dtype=torch.float64)
    texts = torch.tensor([[1.0, 1.0], [0.0, -5.0]], dtype=torch.float64)
    logits = ContrastiveLoss(temperature=0.25).get_logits(images, texts)
    r = 1 / math.sqrt(2)
    expected = torch.tensor([[r, 0.0], [r, -1.0]], dtype=torch.float64) / 0.25
    torch.testing.assert_close(logits, expected, rtol=0, atol=1e-12)


def test_matches_numpy_reference_on_random_batch_of_seven() -> None:
    generator = torch.Generator().manual_seed(0)
    images = torch.randn(7, 16, generator=generator, dtype=torch.float64)
    texts = torch.randn(7, 16, generator=generator, dtype=torch.float64)
    for temperature in (0.07, 0.1, 1.0):
        loss = ContrastiveLoss(temperature)(images, texts)
        expected = reference_symmetric_infonce(images.numpy(), texts.numpy(), temperature)
        assert float(loss) == pytest.approx(expected, abs=1e-9)


def test_symmetric_cross_entropy_uses_both_directions() -> None:
    # A non-symmetric logit matrix: the row and column losses differ, and the mean of both is taken.
    logits = torch.tensor([[2.0, 0.0, 1.0], [3.0, 1.0, 0.0], [0.0, -1.0, 4.0]], dtype=torch.float64)
    rows = np.array([[2.0, 0.0, 1.0], [3.0, 1.0, 0.0], [0.0, -1.0, 4.0]])
    row_loss = np.mean([np.log(np.exp(r).sum()) - r[i] for i, r in enumerate(rows)])
    col_loss = np.mean([np.log(np.exp(c).sum()) - c[i] for i, c in enumerate(rows.T)])
    assert row_loss != pytest.approx(col_loss, abs=1e-3)
    assert float(symmetric_cross_entropy(logits)) == pytest.approx((row_loss + col_loss) / 2, abs=1e-12)


def test_input_scale_does_not_matter() -> None:
    generator = torch.Generator().manual_seed(1)
    images = torch.randn(5, 8, generator=generator, dtype=torch.float64)
    texts = torch.randn(5, 8, generator=generator, dtype=torch.float64)
    loss = ContrastiveLoss(0.1)
    base = float(loss(images, texts))
    assert float(loss(images * 37.0, texts)) == pytest.approx(base, abs=1e-9)
    assert float(loss(images, texts * 0.01)) == pytest.approx(base, abs=1e-9)
    # Per-row scales, too: every embedding is normalised on its own.
    scales = torch.tensor([[0.5], [2.0], [10.0], [0.1], [3.0]], dtype=torch.float64)
    assert float(loss(images * scales, texts * scales.flip(0))) == pytest.approx(base, abs=1e-9)


@pytest.mark.parametrize("temperature", [0.0, -0.1, -1.0])
def test_temperature_must_be_positive(temperature: float) -> None:
    with pytest.raises(ValueError, match="temperature"):
        ContrastiveLoss(temperature)


def test_perfect_alignment_at_low_temperature_gives_loss_near_zero() -> None:
    embeddings = torch.eye(4, dtype=torch.float64) * 3.0
    assert float(ContrastiveLoss(0.01)(embeddings, embeddings)) < 1e-6
    # The same pairs at temperature 1 are far from zero: log(1 + 3 e^-1) on both sides.
    assert float(ContrastiveLoss(1.0)(embeddings, embeddings)) == pytest.approx(math.log(1 + 3 * math.exp(-1)),
                                                                                abs=1e-9)


def test_misaligned_pairs_cost_more_than_aligned_ones() -> None:
    embeddings = torch.eye(4)
    loss = ContrastiveLoss(0.1)
    assert float(loss(embeddings, embeddings.roll(1, dims=0))) > float(loss(embeddings, embeddings)) + 1.0


def test_multi_positive_loss_with_only_the_diagonal_is_symmetric_infonce() -> None:
    from fashion_search.train.loss import multi_positive_cross_entropy, symmetric_cross_entropy

    logits = torch.randn(6, 6, generator=torch.Generator().manual_seed(0))
    assert multi_positive_cross_entropy(logits, torch.eye(6, dtype=torch.bool)) == pytest.approx(
        float(symmetric_cross_entropy(logits)), abs=1e-6)


def test_multi_positive_targets_spread_over_every_fitting_pair() -> None:
    from fashion_search.train.loss import multi_positive_cross_entropy

    logits = torch.tensor([[2.0, 2.0, -1.0], [2.0, 2.0, -1.0], [-1.0, -1.0, 3.0]])
    positives = torch.tensor([[True, True, False], [True, True, False], [False, False, True]])
    # image 0 fits texts 0 and 1 equally: the target is (0.5, 0.5, 0), so its loss is the cross-entropy
    # of that target, computed here by hand
    log_p = torch.log_softmax(logits, dim=1)
    want_rows = torch.stack([-(0.5 * log_p[0, 0] + 0.5 * log_p[0, 1]), -(0.5 * log_p[1, 0] + 0.5 * log_p[1, 1]),
                             -log_p[2, 2]])
    log_q = torch.log_softmax(logits, dim=0)
    want_cols = torch.stack([-(0.5 * log_q[0, 0] + 0.5 * log_q[1, 0]), -(0.5 * log_q[0, 1] + 0.5 * log_q[1, 1]),
                             -log_q[2, 2]])
    want = (want_rows.mean() + want_cols.mean()) / 2
    assert float(multi_positive_cross_entropy(logits, positives)) == pytest.approx(float(want), abs=1e-6)


def test_positives_from_codes_fit_what_each_text_states() -> None:
    from fashion_search.train.loss import positives_from_codes

    # columns: colour, noun, item; -1 not stated, -2 not labelled
    images = torch.tensor([[0, 5, 100], [0, 5, 101], [1, 5, 102], [-2, 5, 103]])
    texts = torch.tensor([[-1, -1, 100],   # a caption: its product only
                          [0, 5, -1],      # "red dress"
                          [-1, 5, -1],     # "dress"
                          [1, -1, -1]])    # "blue ..."
    fits = positives_from_codes(images, texts)
    assert fits.tolist() == [[True, True, True, False], [False, True, True, False],
                             [False, False, True, True], [False, False, True, False]]
