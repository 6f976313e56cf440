"""When a text query has no good match: a score threshold calibrated on the validation split.

The validation images' own shopper queries (evaluate/shopper.py: the 1-, 2- and 3-attribute families)
are embedded with the served model, and each query's best relevant validation image is scored. The
threshold is the WEAK_MATCH_QUANTILE quantile of those scores: 95% of real shopper queries found a
relevant image scoring at least this much, so a query whose best result scores below it is further
from everything in the gallery than nearly every query that had a match, and the page says so (and
still shows the closest results). The score is the dual encoder's cosine, with or without a pair
scorer re-ranking, so the threshold means the same thing for every served model. The test split is
never used.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fashion_search.embedding import embed_texts, tokenize_queries
from fashion_search.evaluate.shopper import build_families, relevant
from fashion_search.models.clip import Checkpoint

WEAK_MATCH_QUANTILE = 0.05
CALIBRATION_FAMILIES = ("1_attribute", "2_attributes", "3_attributes")


def best_relevant_scores(text_embeddings: torch.Tensor, image_embeddings: torch.Tensor,
                         relevance: np.ndarray) -> np.ndarray:
    """Per query (row), the highest cosine of a relevant image; relevance is (queries × images) bool."""
    scores = (text_embeddings @ image_embeddings.T).numpy()
    return np.where(relevance, scores, -np.inf).max(axis=1)


def weak_match_threshold(checkpoint: Checkpoint, attributes: pd.DataFrame, image_embeddings: torch.Tensor,
                         min_relevant: int, max_queries: int, seed: int, max_tokens: int, long_text: str,
                         batch_size: int) -> dict | None:
    """{"threshold", "quantile", "queries"} from the validation images' shopper queries (`attributes` and
    `image_embeddings` in the same row order), or None when their labels give no query to calibrate on."""
    texts, relevance = [], []
    for family in build_families(attributes, min_relevant, max_queries, seed):
        if family.name not in CALIBRATION_FAMILIES:
            continue
        phrasings, owners = family.flat()
        masks = [relevant(attributes, combination) for combination in family.combinations]
        texts.extend(phrasings)
        relevance.extend(masks[owner] for owner in owners)
    if not texts:
        return None
    tokens = tokenize_queries(checkpoint, texts, max_tokens, long_text)
    best = best_relevant_scores(embed_texts(checkpoint, tokens, batch_size), image_embeddings, np.stack(relevance))
    return {"threshold": float(np.quantile(best, WEAK_MATCH_QUANTILE)), "quantile": WEAK_MATCH_QUANTILE,
            "queries": len(texts)}

