"""Linear probes (evaluate/probe.py): a readable attribute is read, an unreadable one scores like the majority."""

from __future__ import annotations

import math

import pandas as pd
import torch

from fashion_search.evaluate.probe import linear_probe, probe_attributes


def clusters(n: int, seed: int) -> tuple[torch.Tensor, list[str]]:
    """Three well separated classes in 16 dimensions."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.randint(0, 3, (n,), generator=g)
    centres = torch.eye(16)[:3] * 4
    return centres[labels] + 0.3 * torch.randn(n, 16, generator=g), [("red", "blue", "green")[i] for i in labels]


def test_separable_classes_are_read_almost_perfectly() -> None:
    (x, y), (tx, ty) = clusters(300, 0), clusters(200, 1)
    result = linear_probe(x, y, tx, ty)
    assert result.accuracy > 0.97 and result.images == 200 and result.values == 3
    assert result.majority < 0.5


def test_labels_unrelated_to_the_embeddings_score_about_the_majority() -> None:
    g = torch.Generator().manual_seed(3)
    x, tx = torch.randn(400, 16, generator=g), torch.randn(2000, 16, generator=g)
    y = ["a" if v < 0.7 else "b" for v in torch.rand(400, generator=g).tolist()]
    ty = ["a" if v < 0.7 else "b" for v in torch.rand(2000, generator=g).tolist()]
    result = linear_probe(x, y, tx, ty)
    assert abs(result.accuracy - result.majority) < 0.06
    assert abs(result.majority - 0.7) < 0.04


def test_unlabelled_images_are_left_out_and_unseen_values_are_errors() -> None:
    (x, y), (tx, ty) = clusters(300, 0), clusters(10, 1)
    y = [None if i % 5 == 0 else v for i, v in enumerate(y)]
    ty = [None, *ty[1:-1], "purple"]  # one unlabelled, one value the train side never shows
    result = linear_probe(x, y, tx, ty)
    assert result.images == 9
    assert result.accuracy <= 8 / 9


def test_probe_attributes_skips_columns_with_one_value_or_none() -> None:
    (x, y), (tx, ty) = clusters(120, 0), clusters(30, 1)
    train = pd.DataFrame({"colour": y, "hat": ["no hat"] * 120, "outer": [None] * 120})
    test = pd.DataFrame({"colour": ty, "hat": ["hat"] * 30, "outer": [None] * 30})
    results = probe_attributes(x, train, tx, test, ["colour", "hat", "outer"])
    assert list(results) == ["colour"]
    assert results["colour"].accuracy > 0.9


def test_no_labelled_test_image_is_not_a_number() -> None:
    (x, y), (tx, _) = clusters(50, 0), clusters(5, 1)
    result = linear_probe(x, y, tx, [None] * 5)
    assert result.images == 0 and math.isnan(result.accuracy)
