"""The test rankings as TREC run files and qrels, for the IR tools people already use (trec_eval, ranx).

One folder per protocol, each with the same three kinds of file:

    qrels.txt      qid 0 docid 1                      every relevant image of every query
    <model>.run.gz qid Q0 docid rank score <model>    each query's first TREC_DEPTH images, gzipped (a run
                                                      is ~10 times its compressed size; ranx reads it as it is)
    topics.tsv     qid <tab> query text

strict_t2i and item_t2i: one query per test caption (its qid is its own image's file name), ranked
against the test images; relevant is the own image (strict) or any view of its product (item).
shopper: every phrasing of every family (qid family-combination-phrasing), relevant by the labels.

Ties count against the model, as in every measure here (evaluate/retrieval.py): among equal scores the
irrelevant images are written first. A tool does not read the rank column; it sorts by score and breaks
ties its own way (trec_eval by docid, ranx as its sort falls), so the later entries of a tie are written
a few float64 steps lower. The file's order is then the only one a tool can read, and Recall@K, MRR and
nDCG@10 computed from it by any tool are ours. A re-ranking model's top rerank_k carry the pair
scorer's scores, lifted above the dual encoder's (`ranking_scores`).
"""

from __future__ import annotations

import gzip
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from fashion_search.atomic import atomic_path
from fashion_search.evaluate.retrieval import pessimistic_order
from fashion_search.evaluate.shopper import Family, relevant

TREC_DEPTH = 100  # images per query in a run file: Recall@K up to K = 100, MRR and nDCG@10 exact
CAPTION_PROTOCOLS = ("strict_t2i", "item_t2i")
SHOPPER = "shopper"


@dataclass(frozen=True)
class Judged:
    """One protocol's queries over one gallery: their ids and texts, the images' ids, what is relevant."""

    query_ids: list[str]
    texts: list[str]
    doc_ids: list[str]
    relevance: np.ndarray  # (queries, images) bool

    def __post_init__(self) -> None:
        if self.relevance.shape != (len(self.query_ids), len(self.doc_ids)):
            raise ValueError(f"relevance {self.relevance.shape} does not match "
                             f"{len(self.query_ids)} queries × {len(self.doc_ids)} images")
        for name in (*self.query_ids, *self.doc_ids):
            if not name or any(c.isspace() for c in name):
                raise ValueError(f"TREC ids cannot be empty or hold whitespace: {name!r}")


def caption_judgements(pairs: pd.DataFrame) -> dict[str, Judged]:
    """strict_t2i and item_t2i over the pairs (columns image, item_id, caption): one query per caption."""
    images = pairs["image"].tolist()
    items = pairs["item_id"].to_numpy()
    captions = pairs["caption"].tolist()
    return {"strict_t2i": Judged(images, captions, images, np.eye(len(images), dtype=bool)),
            "item_t2i": Judged(images, captions, images, items[:, None] == items[None, :])}


def shopper_judgements(families: Sequence[Family], attributes: pd.DataFrame, images: Sequence[str]) -> Judged:
    """Every phrasing of every family, in the order `evaluate_families` scores them."""
    query_ids, texts, rows = [], [], []
    for family in families:
        for index, (combination, phrasings) in enumerate(zip(family.combinations, family.texts)):
            mask = relevant(attributes, combination)
            for number, text in enumerate(phrasings):
                query_ids.append(f"{family.name}-{index:03d}-{number}")
                texts.append(text)
                rows.append(mask)
    relevance = np.array(rows, dtype=bool).reshape(len(rows), len(images))
    return Judged(query_ids, texts, list(images), relevance)


def _strictly_decreasing(scores: np.ndarray) -> np.ndarray:
    """Scores in ranking order (non-increasing), each tie's later entries nudged just below the one before."""
    out = scores.astype(np.float64)
    for i in range(1, len(out)):
        if out[i] >= out[i - 1]:
            out[i] = np.nextafter(out[i - 1], -np.inf)
    return out


def run_lines(scores: np.ndarray, judged: Judged, tag: str, depth: int = TREC_DEPTH) -> list[str]:
    """`qid Q0 docid rank score tag` for each query's first `depth` images, ties against the model."""
    if scores.shape != judged.relevance.shape:
        raise ValueError(f"scores {scores.shape} do not match the judgements {judged.relevance.shape}")
    lines = []
    for qid, row, relevance in zip(judged.query_ids, scores, judged.relevance):
        order = pessimistic_order(row, relevance)[:depth]
        for rank, (index, score) in enumerate(zip(order, _strictly_decreasing(row[order])), start=1):
            lines.append(f"{qid} Q0 {judged.doc_ids[index]} {rank} {float(score)!r} {tag}")
    return lines


def qrels_lines(judged: Judged) -> list[str]:
    """`qid 0 docid 1` for every relevant image of every query."""
    return [f"{judged.query_ids[q]} 0 {judged.doc_ids[d]} 1" for q, d in zip(*np.nonzero(judged.relevance))]


def write_trec(folder: Path, judgements: Mapping[str, Judged],
               rankings: Mapping[str, Mapping[str, torch.Tensor]], depth: int = TREC_DEPTH) -> None:
    """folder/<protocol>/{qrels.txt, topics.tsv, <model>.run.gz}; `rankings`: model -> protocol -> (Q, N) scores
    whose order is the model's ranking. Written whole or not at all."""
    with atomic_path(folder) as tmp:
        tmp.mkdir()
        for protocol, judged in judgements.items():
            out = tmp / protocol
            out.mkdir(parents=True)
            _write_lines(out / "qrels.txt", qrels_lines(judged))
            _write_lines(out / "topics.tsv", [f"{qid}\t{' '.join(text.split())}"
                                              for qid, text in zip(judged.query_ids, judged.texts)])
            for model, scores in rankings.items():
                if protocol in scores:
                    _write_lines(out / f"{model}.run.gz", run_lines(scores[protocol].cpu().numpy(), judged, model,
                                                                    depth))


def _write_lines(path: Path, lines: list[str]) -> None:
    """Text, or gzip for a .gz name: without a timestamp, so a rerun writes the same bytes (DVC's hash)."""
    data = "".join(f"{line}\n" for line in lines).encode("utf-8")
    path.write_bytes(gzip.compress(data, mtime=0) if path.suffix == ".gz" else data)
