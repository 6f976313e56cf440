"""Linear probes: how much of each attribute a model's image embeddings carry, read on unseen products.

A shopper query can only find a "striped skirt" if the image embedding says "striped" and
"skirt". For each attribute, a multinomial logistic regression (L2-regularised, fitted by L-BFGS)
reads the attribute from the embeddings of the train split and is scored on another split, beside
the accuracy of always answering the train split's most frequent value. An image whose labels do
not give the attribute is left out of that attribute; a value the train split never shows is
always an error. bench/attribute_probe.py uses it to say what limits the default model.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import pandas as pd
import torch
import torch.nn.functional as F

SCALE = 10.0  # unit embeddings are scaled as CLIP's logits are, so that a small L2 penalty leaves room


@dataclass(frozen=True)
class ProbeResult:
    accuracy: float  # on the held-out images the labels describe
    majority: float  # always the train split's most frequent value, on the same images
    images: int      # held-out images with the attribute labelled
    values: int      # distinct values in the train split

    def as_dict(self) -> dict[str, float | int]:
        return {"accuracy": self.accuracy, "majority": self.majority, "images": self.images, "values": self.values}


def linear_probe(train_x: torch.Tensor, train_y: Sequence[str | None], test_x: torch.Tensor,
                 test_y: Sequence[str | None], l2: float = 1e-3, max_iter: int = 200) -> ProbeResult:
    """Fit on (train_x, train_y), score on (test_x, test_y); None labels are skipped on both sides."""
    keep_train = [i for i, y in enumerate(train_y) if isinstance(y, str)]
    keep_test = [i for i, y in enumerate(test_y) if isinstance(y, str)]
    values = sorted({train_y[i] for i in keep_train})
    if not keep_test:
        return ProbeResult(float("nan"), float("nan"), 0, len(values))
    code = {value: index for index, value in enumerate(values)}
    x = F.normalize(train_x[keep_train].double(), dim=-1) * SCALE
    y = torch.tensor([code[train_y[i]] for i in keep_train])
    test = F.normalize(test_x[keep_test].double(), dim=-1) * SCALE
    truth = torch.tensor([code.get(test_y[i], -1) for i in keep_test])  # -1: a value never seen in training
    if len(values) < 2:
        right = (truth == 0).double().mean().item()
        return ProbeResult(right, right, len(keep_test), len(values))
    weight = torch.zeros(x.shape[1], len(values), dtype=torch.float64, requires_grad=True)
    bias = torch.zeros(len(values), dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.LBFGS([weight, bias], max_iter=max_iter, line_search_fn="strong_wolfe")

    def closure() -> torch.Tensor:
        optimiser.zero_grad()
        loss = F.cross_entropy(x @ weight + bias, y) + l2 * weight.pow(2).sum()
        loss.backward()
        return loss

    optimiser.step(closure)
    with torch.no_grad():
        predicted = (test @ weight + bias).argmax(dim=1)
    majority = torch.bincount(y, minlength=len(values)).argmax()
    return ProbeResult((predicted == truth).double().mean().item(), (truth == majority).double().mean().item(),
                       len(keep_test), len(values))


def probe_attributes(train_x: torch.Tensor, train_attributes: pd.DataFrame, test_x: torch.Tensor,
                     test_attributes: pd.DataFrame, columns: Sequence[str]) -> dict[str, ProbeResult]:
    """A probe per attribute column that the train split labels with at least two values."""
    results = {}
    for column in columns:
        train_y = [v if isinstance(v, str) else None for v in train_attributes[column]]
        if len({v for v in train_y if v is not None}) < 2:
            continue
        test_y = [v if isinstance(v, str) else None for v in test_attributes[column]]
        results[column] = linear_probe(train_x, train_y, test_x, test_y)
    return results
