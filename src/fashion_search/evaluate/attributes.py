"""Recall broken down by what the query asks for, so a reader sees what each model misses.

A text-to-image query carries the attributes of the image its caption describes,
read from the DeepFashion-MultiModal label files. Images the files do not label
(the labels are optional in the layout) go to an 'unlabelled' bucket.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from pathlib import Path

import pandas as pd
import torch

from fashion_search.data.labels import attribute_names, read_labels
from fashion_search.evaluate.retrieval import recall_at_k

ATTRIBUTES = ("sleeve_length", "lower_length", "upper_pattern", "upper_fabric")
UNLABELLED = "unlabelled"


def query_attributes(images: Sequence[str], raw: Path) -> pd.DataFrame:
    """One row per query (its image file name), one column per attribute, in query order."""
    labels = read_labels(raw).labels
    rows = [attribute_names(labels[name]) if name in labels else {} for name in images]
    return pd.DataFrame(rows, columns=list(ATTRIBUTES), index=range(len(rows))).fillna(UNLABELLED)


def recall_by_attribute(attributes: pd.DataFrame, ranks: dict[str, torch.Tensor],
                        ks: Iterable[int]) -> dict[str, dict[str, dict[str, float | int]]]:
    """{attribute: {value: {"queries": n, "<measure>_recall_at_<k>": r}}} for each measure's ranks."""
    ks = list(ks)
    breakdown: dict[str, dict[str, dict[str, float | int]]] = {}
    for attribute in ATTRIBUTES:
        breakdown[attribute] = {}
        for value, rows in sorted(attributes.groupby(attribute).indices.items()):
            members = torch.as_tensor(rows)
            entry: dict[str, float | int] = {"queries": len(rows)}
            for measure, measure_ranks in ranks.items():
                entry.update({f"{measure}_recall_at_{k}": recall_at_k(measure_ranks[members], k) for k in ks})
            breakdown[attribute][str(value)] = entry
    return breakdown


def unlabelled_queries(attributes: pd.DataFrame) -> int:
    """Queries whose image the label files do not describe (in every attribute's 'unlabelled' bucket)."""
    return int((attributes == UNLABELLED).all(axis=1).sum())
