"""Train / validation / test split, grouped by product so that no item has views on two sides.

Several views of one product share a caption; an ungrouped split would put the
same outfit in training and in the test gallery and inflate Recall@K. The test side
is drawn first, so it does not depend on `val_size`; validation is then drawn from
the rest. Every choice (the served model, `rerank_k`) is made on validation; the test
side is only reported.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from fashion_search.config import ConfigError, SplitSettings


def split_pairs(pairs: pd.DataFrame, settings: SplitSettings,
                seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(train, validation, test): 70/10/20 by default; with group_by: item the shares are over items."""
    rest, test = _two_way(pairs, settings.test_size, settings.group_by, seed, "split.test_size")
    train, validation = _two_way(rest, settings.val_size / (1 - settings.test_size), settings.group_by, seed,
                                 "split.val_size")
    return train, validation, test


def _two_way(pairs: pd.DataFrame, share: float, group_by: str, seed: int,
             key: str) -> tuple[pd.DataFrame, pd.DataFrame]:
    """`share` of the pairs (of their items with group_by: item) on the second side, seeded."""
    if group_by == "item":
        if pairs["item_id"].nunique() < 2:
            raise ConfigError("split.group_by=item needs at least two items; the data has "
                              f"{pairs['item_id'].nunique()}")
        splitter = GroupShuffleSplit(n_splits=1, test_size=share, random_state=seed)
        first_index, second_index = next(splitter.split(pairs, groups=pairs["item_id"]))
    else:
        first_index, second_index = train_test_split(range(len(pairs)), test_size=share, random_state=seed)
    first, second = pairs.iloc[sorted(first_index)], pairs.iloc[sorted(second_index)]
    if first.empty or second.empty:
        raise ConfigError(f"{key} leaves an empty side ({len(first)} and {len(second)} pairs)")
    return first.reset_index(drop=True), second.reset_index(drop=True)
