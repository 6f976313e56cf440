"""Recall by the query's labelled attributes, with an 'unlabelled' bucket for images the files lack."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from fashion_search.data.labels import GARMENTS, SHAPE_COLUMNS, ImageLabels, write_labels
from fashion_search.evaluate.attributes import (
    ATTRIBUTES,
    UNLABELLED,
    query_attributes,
    recall_by_attribute,
    unlabelled_queries,
)
from fashion_search.evaluate.pipeline import flat_metric_names


def labels(sleeve: int, pattern: int) -> ImageLabels:
    """Sleeve-length code (3: long-sleeve, 0: sleeveless) and upper pattern code (2: striped, 3: pure color)."""
    shape = [0] * len(SHAPE_COLUMNS)
    shape[0] = sleeve
    return ImageLabels(shape=tuple(shape), fabric=(1,) * len(GARMENTS), pattern=(pattern,) * len(GARMENTS))


@pytest.fixture
def raw(tmp_path: Path) -> Path:
    write_labels(tmp_path, {"a.jpg": labels(3, 2), "b.jpg": labels(3, 3), "c.jpg": labels(0, 2)})
    return tmp_path


def test_query_attributes_read_the_label_files(raw: Path) -> None:
    frame = query_attributes(["c.jpg", "a.jpg", "nolabel.jpg", "b.jpg"], raw)
    assert list(frame.columns) == list(ATTRIBUTES)
    assert frame["sleeve_length"].tolist() == ["sleeveless", "long-sleeve", UNLABELLED, "long-sleeve"]
    assert frame["upper_pattern"].tolist() == ["striped", "striped", UNLABELLED, "pure color"]
    assert frame["upper_fabric"].tolist() == ["cotton", "cotton", UNLABELLED, "cotton"]
    assert unlabelled_queries(frame) == 1


def test_query_attributes_without_label_files_are_all_unlabelled(tmp_path: Path) -> None:
    frame = query_attributes(["a.jpg", "b.jpg"], tmp_path)
    assert unlabelled_queries(frame) == 2


def test_recall_by_attribute_hand_case(raw: Path) -> None:
    frame = query_attributes(["a.jpg", "b.jpg", "c.jpg", "nolabel.jpg"], raw)
    ranks = {"strict": torch.tensor([1, 7, 2, 3]), "item": torch.tensor([1, 1, 1, 3])}
    breakdown = recall_by_attribute(frame, ranks, [1, 5])
    long_sleeve = breakdown["sleeve_length"]["long-sleeve"]
    assert long_sleeve == {"queries": 2, "strict_recall_at_1": 0.5, "strict_recall_at_5": 0.5,
                           "item_recall_at_1": 1.0, "item_recall_at_5": 1.0}
    assert breakdown["sleeve_length"]["sleeveless"]["strict_recall_at_5"] == 1.0
    assert breakdown["upper_pattern"]["striped"]["queries"] == 2
    assert breakdown["sleeve_length"][UNLABELLED] == {"queries": 1, "strict_recall_at_1": 0.0,
                                                      "strict_recall_at_5": 1.0, "item_recall_at_1": 0.0,
                                                      "item_recall_at_5": 1.0}
    assert set(breakdown) == set(ATTRIBUTES)


def test_flat_metric_names_are_names_mlflow_accepts() -> None:
    flat = flat_metric_names({"by_attribute": {"xattn": {"upper_pattern": {"pure color": {"queries": 3},
                                                                           "a+b(c)": {"queries": 1}}}}})
    assert flat == {"by_attribute/xattn/upper_pattern/pure color/queries": 3.0,
                    "by_attribute/xattn/upper_pattern/a_b_c_/queries": 1.0}
