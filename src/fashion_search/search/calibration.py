"""When a text query has no good match: a score threshold calibrated on the validation split.

Two kinds of query are scored against the validation gallery by the number the page judges, each
query's best cosine over the gallery: the validation images' own shopper queries (evaluate/shopper.py:
the 1-, 2- and 3-attribute families, each with at least `min_relevant` relevant validation images),
and OFF_DOMAIN_QUERIES, texts about anything but clothes. A query is flagged when its best cosine is
below the threshold. The threshold is the observed score with the best balanced accuracy (the mean
of the share of off-domain queries flagged and the share of shopper queries not flagged), the
lowest on a tie, among those that flag off-domain queries more often than shopper queries beyond
both shares' 95% Wilson intervals. Where no score does (a model that maps words it never saw close
to every picture scores nonsense as high as real queries), the threshold is None and nothing is
flagged; `auc` (the chance that an off-domain query scores below a shopper query) and
`best_balanced_accuracy` (the best any score reached) say how far the model was from separating
them. `fires_on_relevant` and `fires_on_off_domain` are the shares flagged, measured on the queries
that chose the threshold and on the validation gallery (the served gallery may be larger, and a
larger gallery's best cosine is higher); the test split is never used. The score is the dual
encoder's cosine, with or without a pair scorer re-ranking, so the threshold means the same thing
for every served model. Only word queries are judged: a photo or a gallery image has no off-domain
counterpart to calibrate against.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import torch

from fashion_search.embedding import embed_texts, tokenize_queries
from fashion_search.errors import DataError
from fashion_search.evaluate.intervals import LEVEL, wilson_interval
from fashion_search.evaluate.shopper import build_families
from fashion_search.models.clip import Checkpoint

CALIBRATION_FAMILIES = ("1_attribute", "2_attributes", "3_attributes")
# Written for calibration only: no garment, no evaluation phrasing; scenes, objects, chores and noise.
OFF_DOMAIN_QUERIES = (
    "a bowl of soup", "car engine parts", "a mountain lake at dusk", "a plate of spaghetti",
    "a cat asleep on a sofa", "a laptop on a wooden desk", "a bicycle leaning against a wall",
    "a cup of coffee", "a city skyline at night", "a field of sunflowers", "a dog chasing a ball in the park",
    "a stack of old books", "a glass of orange juice", "a snowy pine forest", "a sailing boat on a calm sea",
    "a bunch of bananas", "an electric guitar", "a kitchen sink full of dishes", "sand dunes in the desert",
    "a birthday cake with candles", "a tractor ploughing a field", "a houseplant in a clay pot",
    "a chess board mid game", "fresh bread on a cutting board", "a thunderstorm over the ocean",
    "a pile of firewood", "a washing machine", "a train pulling into the station",
    "a microscope in a laboratory", "how to fix a leaking tap", "tomorrow's weather forecast",
    "the fall of the roman empire", "a recipe for lemon cake", "quarterly earnings report",
    "asdf qwerty zxcv", "lorem ipsum dolor sit amet", "12345 67890", "a screwdriver and a hammer",
    "satellite photo of a river delta", "a jar of honey",
)


def best_scores(text_embeddings: torch.Tensor, image_embeddings: torch.Tensor | np.ndarray) -> np.ndarray:
    """Per text (row), its highest cosine over the images: what the page compares with the threshold."""
    return (np.asarray(text_embeddings, dtype=np.float32) @ np.asarray(image_embeddings, dtype=np.float32).T).max(
        axis=1)


def separating_threshold(relevant: np.ndarray, off_domain: np.ndarray, relevant_units: int | None = None,
                         level: float = LEVEL) -> dict:
    """The weak-match record (see the module's docstring) from each kind's best cosines.

    A query is flagged when it scores below the threshold. Candidates are the observed scores whose
    flagged share of off-domain queries lies above that of shopper queries beyond both Wilson
    intervals at `level`, the shopper side counted in `relevant_units` independent units (its
    attribute combinations, whose phrasings share their images; default: one per query); among
    them the best balanced accuracy wins, the lowest score on a tie. No candidate: threshold None."""
    relevant, off_domain = np.asarray(relevant, dtype=np.float64), np.asarray(off_domain, dtype=np.float64)
    n_relevant, n_off = len(relevant), len(off_domain)
    candidates = np.unique(np.concatenate([relevant, off_domain]))  # ascending: argmax keeps the lowest
    fires_relevant = (relevant[None, :] < candidates[:, None]).sum(axis=1)
    fires_off = (off_domain[None, :] < candidates[:, None]).sum(axis=1)
    # balanced accuracy × 2 × n_relevant × n_off, in integers so that ties are exact
    scaled = fires_off * n_relevant + (n_relevant - fires_relevant) * n_off
    units = relevant_units or n_relevant
    relevant_high = wilson_interval(fires_relevant / n_relevant * units, units, level)[1]
    significant = wilson_interval(fires_off, n_off, level)[0] > relevant_high
    kept = np.where(significant, scaled, -1)
    best = int(np.argmax(kept))
    record = {
        "threshold": None, "fires_on_relevant": 0.0, "fires_on_off_domain": 0.0,
        "best_balanced_accuracy": float(scaled.max() / (2 * n_relevant * n_off)),
        "auc": float((off_domain[:, None] < relevant[None, :]).mean()
                     + 0.5 * (off_domain[:, None] == relevant[None, :]).mean()),
        "relevant_queries": n_relevant, "relevant_units": units, "off_domain_queries": n_off, "level": level,
    }
    if kept[best] >= 0:
        record.update(threshold=float(candidates[best]), fires_on_relevant=float(fires_relevant[best] / n_relevant),
                      fires_on_off_domain=float(fires_off[best] / n_off))
    return record


def shopper_queries(attributes: pd.DataFrame, min_relevant: int, max_queries: int,
                    seed: int) -> tuple[list[str], int]:
    """The phrasings of the calibration families' queries over these images' labels, and how many
    attribute combinations they phrase."""
    texts, combinations = [], 0
    for family in build_families(attributes, min_relevant, max_queries, seed):
        if family.name in CALIBRATION_FAMILIES:
            texts.extend(family.flat()[0])
            combinations += len(family.combinations)
    return texts, combinations


def weak_match_threshold(checkpoint: Checkpoint, attributes: pd.DataFrame, image_embeddings: torch.Tensor | np.ndarray,
                         min_relevant: int, max_queries: int, seed: int, max_tokens: int, long_text: str,
                         batch_size: int) -> dict | None:
    """separating_threshold's record for the validation images (`attributes` and `image_embeddings` in the
    same row order), or None when their labels give no shopper query to calibrate on."""
    texts, combinations = shopper_queries(attributes, min_relevant, max_queries, seed)
    if not texts:
        return None

    def scores(queries: list[str]) -> np.ndarray:
        tokens = tokenize_queries(checkpoint, queries, max_tokens, long_text)
        return best_scores(embed_texts(checkpoint, tokens, batch_size), image_embeddings)

    return separating_threshold(scores(texts), scores(list(OFF_DOMAIN_QUERIES)), combinations)


def served_threshold(reference: dict) -> float | None:
    """The threshold an index.json records (None when it has none, or when calibration found no separating
    score); one written before the off-domain queries existed holds only `threshold`, read the same way."""
    record = reference.get("weak_match")
    if record is None:
        return None
    threshold = record.get("threshold", "missing") if isinstance(record, dict) else "missing"
    if threshold is None:
        return None
    if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) or not np.isfinite(threshold):
        raise DataError(f"index.json: weak_match {record!r:.80} holds no numeric threshold; "
                        "rebuild it with `dvc repro -f index`")
    return float(threshold)
