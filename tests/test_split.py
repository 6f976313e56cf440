"""The grouped train/test split: no product on both sides, every pair on exactly one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fashion_search.config import SplitSettings
from fashion_search.split import split_pairs

BY_ITEM = SplitSettings(test_size=0.2, val_size=0.1, group_by="item")
BY_ROW = SplitSettings(test_size=0.2, val_size=0.1, group_by="none")


@pytest.fixture
def pairs() -> pd.DataFrame:
    """50 items with 1 to 5 views each; every image name is unique."""
    rng = np.random.default_rng(0)
    rows = []
    for item in range(50):
        for view in range(int(rng.integers(1, 6))):
            rows.append({"image": f"item{item:02d}_view{view}.jpg", "item_id": f"item{item:02d}",
                         "caption": f"caption of item {item}"})
    frame = pd.DataFrame(rows)
    assert frame["item_id"].value_counts().nunique() > 1  # views per item vary
    return frame


def test_no_item_on_both_sides(pairs: pd.DataFrame) -> None:
    train, validation, test = split_pairs(pairs, BY_ITEM, seed=42)
    assert set(train["item_id"]).isdisjoint(test["item_id"])
    assert set(train["item_id"]) | set(validation["item_id"]) | set(test["item_id"]) == set(pairs["item_id"])


def test_every_row_on_exactly_one_side(pairs: pd.DataFrame) -> None:
    train, validation, test = split_pairs(pairs, BY_ITEM, seed=42)
    assert len(train) + len(validation) + len(test) == len(pairs)
    assert sorted(train["image"].tolist() + validation["image"].tolist() + test["image"].tolist()) == sorted(
        pairs["image"])
    # Whole rows come back, with a fresh index.
    assert list(train.columns) == list(pairs.columns)
    assert train.index.tolist() == list(range(len(train)))
    assert test.index.tolist() == list(range(len(test)))
    merged = pd.concat([train, validation, test]).sort_values("image").reset_index(drop=True)
    pd.testing.assert_frame_equal(merged, pairs.sort_values("image").reset_index(drop=True))


def test_about_a_fifth_of_the_items_in_test(pairs: pd.DataFrame) -> None:
    train, _, test = split_pairs(pairs, BY_ITEM, seed=42)
    assert test["item_id"].nunique() == 10  # 20% of 50 items
    assert train["item_id"].nunique() == 35  # 70%: 10% went to validation


def test_rows_keep_their_original_order(pairs: pd.DataFrame) -> None:
    train, _, test = split_pairs(pairs, BY_ITEM, seed=42)
    order = {image: i for i, image in enumerate(pairs["image"])}
    for side in (train, test):
        positions = [order[image] for image in side["image"]]
        assert positions == sorted(positions)


def test_deterministic_for_a_seed_and_different_for_another(pairs: pd.DataFrame) -> None:
    first_train, _, first_test = split_pairs(pairs, BY_ITEM, seed=42)
    again_train, _, again_test = split_pairs(pairs, BY_ITEM, seed=42)
    pd.testing.assert_frame_equal(first_train, again_train)
    pd.testing.assert_frame_equal(first_test, again_test)
    _, _, other_test = split_pairs(pairs, BY_ITEM, seed=7)
    assert set(other_test["item_id"]) != set(first_test["item_id"])


def test_group_by_none_splits_rows(pairs: pd.DataFrame) -> None:
    train, validation, test = split_pairs(pairs, BY_ROW, seed=42)
    assert len(train) + len(validation) + len(test) == len(pairs)
    assert set(train["image"]).isdisjoint(test["image"])
    assert len(test) == int(np.ceil(0.2 * len(pairs)))
    # Split by rows, some product has views on both sides (this is what group_by: item prevents).
    assert not set(train["item_id"]).isdisjoint(test["item_id"])


def test_a_single_item_cannot_be_split_by_item() -> None:
    one_item = pd.DataFrame({"image": ["a.jpg", "b.jpg", "c.jpg"], "item_id": ["x", "x", "x"],
                             "caption": ["c", "c", "c"]})
    with pytest.raises(ValueError, match="two items"):
        split_pairs(one_item, BY_ITEM, seed=42)


def test_no_item_in_two_of_train_validation_and_test(pairs: pd.DataFrame) -> None:
    train, validation, test = split_pairs(pairs, BY_ITEM, seed=42)
    sides = [set(side["item_id"]) for side in (train, validation, test)]
    assert all(a.isdisjoint(b) for i, a in enumerate(sides) for b in sides[i + 1:])
    assert validation["item_id"].nunique() == 5  # 10% of 50 items


def test_the_test_side_does_not_depend_on_the_validation_share(pairs: pd.DataFrame) -> None:
    _, _, test = split_pairs(pairs, BY_ITEM, seed=42)
    _, _, same = split_pairs(pairs, SplitSettings(test_size=0.2, val_size=0.25, group_by="item"), seed=42)
    pd.testing.assert_frame_equal(test, same)


def test_shares_that_leave_nothing_to_train_on_are_refused() -> None:
    from fashion_search.config import ConfigError

    with pytest.raises(ConfigError, match="split.val_size"):
        SplitSettings(test_size=0.5, val_size=0.5, group_by="item")
