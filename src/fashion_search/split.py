"""Train/test split, grouped by product so that no item has views on both sides.

Several views of one product share a caption; an ungrouped split would put the
same outfit in training and in the test gallery and inflate Recall@K.
"""

from __future__ import annotations

import pandas as pd
from sklearn.model_selection import GroupShuffleSplit, train_test_split

from fashion_search.config import SplitSettings
from fashion_search.config import ConfigError


def split_pairs(pairs: pd.DataFrame, settings: SplitSettings, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """80/20 by default; with group_by: item the test share is over items, so the image share is close to it."""
    if settings.group_by == "item":
        if pairs["item_id"].nunique() < 2:
            raise ConfigError("split.group_by=item needs at least two items; the data has "
                              f"{pairs['item_id'].nunique()}")
        splitter = GroupShuffleSplit(n_splits=1, test_size=settings.test_size, random_state=seed)
        train_index, test_index = next(splitter.split(pairs, groups=pairs["item_id"]))
    else:
        train_index, test_index = train_test_split(range(len(pairs)), test_size=settings.test_size,
                                                   random_state=seed)
    train, test = pairs.iloc[sorted(train_index)], pairs.iloc[sorted(test_index)]
    if train.empty or test.empty:
        raise ConfigError(f"split.test_size={settings.test_size} leaves an empty side "
                          f"({len(train)} train, {len(test)} test pairs)")
    return train.reset_index(drop=True), test.reset_index(drop=True)
