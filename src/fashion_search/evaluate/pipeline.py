"""The evaluate stage's logic: every model on the same test gallery, the same way."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from fashion_search.config import EvaluateSettings, TextSettings
from fashion_search.data.alt_text import alt_texts, stated_attributes
from fashion_search.data.attributes import image_attributes
from fashion_search.data.layout import IMAGES_DIR
from fashion_search.device import CPU, Runtime
from fashion_search.embedding import encode_images, encode_texts, tokenize_queries
from fashion_search.evaluate.attributes import recall_by_attribute
from fashion_search.evaluate.grid import GridRow
from fashion_search.evaluate.measures import Measured, measure
from fashion_search.evaluate.retrieval import (PairScorer, Retriever, Rows, needs_tokens, query_first, ranking_scores,
                                               search)
from fashion_search.evaluate.intervals import bootstrap_mean, paired_difference
from fashion_search.evaluate.shopper import (HEADLINE_FAMILIES, Family, ScoreFn, ShopperResult, build_families, evaluate_families,
                                             parse_query, relevant)
from fashion_search.evaluate.trec import CAPTION_PROTOCOLS, SHOPPER, Judged, caption_judgements, shopper_judgements
from fashion_search.image_cache import Pixels
from fashion_search.inputs import pair_pixels, pair_segments
from fashion_search.models import MADE_BY
from fashion_search.models.clip import Checkpoint
from fashion_search.models.loader import model_digest
from fashion_search.tracking import RunLogger, dvc_lock_hashes
from fashion_search.models.late_interaction import LateInteraction

GRID_COLUMNS = 5
MRR_CUTOFF = 10
BY_ATTRIBUTE_MEASURES = ("strict", "item")  # text-to-image: the query's attributes are its image's


@dataclass
class ModelResult:
    measured: Measured
    by_attribute: dict[str, Any]
    grid: list[GridRow] = field(default_factory=list)
    shopper: ShopperResult | None = None
    item_hits: dict[str, float] = field(default_factory=dict)  # product -> its captions' item-level t2i hit@10
    item_reciprocal: dict[str, float] = field(default_factory=dict)  # product -> item-level t2i reciprocal rank@10
    strict_hits: dict[str, dict[str, float]] = field(default_factory=dict)  # direction -> product -> strict hit@10
    # a model that re-ranks: the same figures from its own dual encoder alone, to show what re-ranking adds,
    # and re-ranked by late interaction over the same encoder's token states, the training-free alternative
    dual_encoder: ModelResult | None = None
    rankings: dict[str, torch.Tensor] = field(default_factory=dict)  # TREC protocol -> (queries, images) scores
    late_interaction: ModelResult | None = None


@dataclass
class TestGallery:
    pairs: pd.DataFrame
    raw: Path
    fit: str
    cache: Path | None = None  # the cache_images stage's output; None decodes data/raw

    def pixels(self, checkpoint: Checkpoint) -> Pixels:
        return pair_pixels(self.pairs, self.raw, checkpoint.pixel_spec, self.fit, self.cache)

    def image_path(self, index: int) -> Path:
        return self.raw / IMAGES_DIR / self.pairs["image"].iloc[index]


@dataclass
class ShopperGallery:
    """A gallery's attributes and the shopper queries built from them; `training` (the train split's
    attributes) tells which combinations no training image shows, `stated` (what each short training text
    states) which no short text says together."""

    attributes: pd.DataFrame
    families: list[Family]
    training: pd.DataFrame | None = None
    stated: pd.DataFrame | None = None

    @classmethod
    def build(cls, images: list[str], raw: Path, settings: EvaluateSettings, seed: int,
              training_images: list[str] | None = None, alt_texts_per_image: int = 0) -> ShopperGallery:
        """`alt_texts_per_image`: the training's alt texts per image (the same seed gives the same texts)."""
        attributes = image_attributes(raw, images)
        families = build_families(attributes, settings.shopper.min_relevant, settings.shopper.max_queries, seed)
        training = image_attributes(raw, training_images) if training_images is not None else None
        stated = None
        if training is not None and alt_texts_per_image > 0:
            stated = stated_attributes(alt_texts(training, alt_texts_per_image, seed)[1], training.columns)
        return cls(attributes, families, training, stated)


def encode_queries(checkpoint: Checkpoint, queries: list[str], settings: EvaluateSettings, text: TextSettings,
                   tokens: bool, runtime: Runtime = CPU) -> Rows:
    """Free-text queries as rows for retrieval: unit embeddings, with their token states when `tokens`."""
    ids = tokenize_queries(checkpoint, queries, text.max_tokens, text.long_text)
    encoded = encode_texts(checkpoint, ids, settings.batch_size, runtime)
    return encoded if tokens else encoded.pooled


def encode_gallery(checkpoint: Checkpoint, gallery: TestGallery, settings: EvaluateSettings, tokens: bool,
                   runtime: Runtime = CPU) -> tuple[Rows, Rows]:
    """The gallery's images and captions as rows, with their token states when `tokens`."""
    images = encode_images(checkpoint, gallery.pixels(checkpoint), settings.batch_size, runtime)
    texts = encode_texts(checkpoint, pair_segments(gallery.pairs), settings.batch_size, runtime)
    return (images, texts) if tokens else (images.pooled, texts.pooled)


def shopper_scores(checkpoint: Checkpoint, scorer: Any, images: Rows, settings: EvaluateSettings,
                   text: TextSettings, rerank_k: int, runtime: Runtime = CPU) -> ScoreFn:
    """Query texts -> the model's (queries × gallery) ranking scores, re-ranked when it has a pair scorer."""
    def scores_for(queries: list[str]) -> torch.Tensor:
        embeds = encode_queries(checkpoint, queries, settings, text, needs_tokens(scorer), runtime)
        pairs = query_first(scorer) if scorer is not None else None
        return ranking_scores(embeds, images, settings.chunk_size, pairs, rerank_k)
    return scores_for


def item_hits_by_product(ranks: torch.Tensor, items: pd.Series, k: int = 10) -> dict[str, float]:
    """Each product's share of its caption queries with an item-level hit in the top k: the independent
    unit for intervals (the views of a product share a caption)."""
    hits = pd.Series((ranks <= k).float().numpy(), index=items.to_numpy())
    return {str(item): float(value) for item, value in hits.groupby(level=0).mean().items()}


def reciprocal_ranks(ranks: torch.Tensor, k: int = MRR_CUTOFF) -> torch.Tensor:
    """1 / rank within the top k, 0 beyond: MRR@k is their mean."""
    return torch.where(ranks <= k, 1.0 / ranks.double(), torch.zeros((), dtype=torch.float64))


def item_reciprocal_by_product(ranks: torch.Tensor, items: pd.Series, k: int = MRR_CUTOFF) -> dict[str, float]:
    """Each product's mean reciprocal rank@k of its caption queries (the unit of the paired interval)."""
    values = pd.Series(reciprocal_ranks(ranks, k).numpy(), index=items.to_numpy())
    return {str(item): float(value) for item, value in values.groupby(level=0).mean().items()}


def reranking_result(checkpoint: Checkpoint, scorer: Any, images: Rows, texts: Rows, gallery: TestGallery,
                     settings: EvaluateSettings, seed: int, text: TextSettings, rerank_k: int,
                     runtime: Runtime = CPU, shopper: ShopperGallery | None = None) -> ModelResult:
    """Item-level t2i and the shopper families for one way of ranking (the dual encoder alone with no
    scorer, or its top `rerank_k` re-ordered by `scorer`): what re-rankers are compared on."""
    measured = measure(images, texts, gallery.pairs, Retriever(settings.chunk_size, scorer, rerank_k), settings,
                       seed, ("item",))
    ranks, items = measured.ranks["item"]["t2i"], gallery.pairs["item_id"]
    score_pairs = query_first(scorer) if scorer is not None else None
    result = ModelResult(measured, {}, item_hits=item_hits_by_product(ranks, items),
                         item_reciprocal=item_reciprocal_by_product(ranks, items),
                         rankings=caption_rankings(texts, images, settings.chunk_size, score_pairs, rerank_k))
    if shopper is not None:
        result.shopper = evaluate_families(shopper.families, shopper.attributes,
                                           shopper_scores(checkpoint, scorer, images, settings, text, rerank_k,
                                                          runtime), seed)
        result.rankings[SHOPPER] = result.shopper.scores
    return result


def reranking_figures(result: ModelResult) -> dict[str, float]:
    """The figures re-rankers are compared by: item t2i R@10 and MRR@10, shopper headline P@10 and nDCG@10."""
    figures = {"item_t2i_recall_at_10": float(result.measured.metrics["item"]["t2i_recall_at_10"]),
               f"item_t2i_mrr_at_{MRR_CUTOFF}": float(reciprocal_ranks(result.measured.ranks["item"]["t2i"]).mean())}
    if result.shopper is not None and "headline" in result.shopper.metrics:
        headline = result.shopper.metrics["headline"]
        figures.update(shopper_precision_at_10=headline["precision_at_10"], shopper_ndcg_at_10=headline["ndcg_at_10"])
    return figures


LoadedModel = tuple[Checkpoint, Any]  # models.loader.load_model's answer: the dual encoder and its pair scorer


def validate_model(name: str, model: LoadedModel, gallery: TestGallery, shopper: ShopperGallery,
                   settings: EvaluateSettings, seed: int, text: TextSettings, rerank_k: int,
                   runtime: Runtime = CPU) -> dict[str, dict[str, float]]:
    """The figures `serve.select_by` chooses by, on the validation split: {name: figures}. For a model
    that re-ranks, also `<name>_dual_encoder` (its retriever alone) and `<name>_late_interaction` (its
    retriever re-ranked by late interaction), with MRR@10 beside them: the choice between re-rankers."""
    checkpoint, scorer = model
    images, texts = encode_gallery(checkpoint, gallery, settings, scorer is not None, runtime)
    ranked = reranking_result(checkpoint, scorer, images, texts, gallery, settings, seed, text, rerank_k, runtime,
                              shopper)
    figures = reranking_figures(ranked)
    validated = {name: {key: value for key, value in figures.items() if not key.startswith("item_t2i_mrr")}}
    if scorer is not None:
        validated[f"{name}_reranked"] = figures
        for kind, other in (("dual_encoder", None), ("late_interaction", LateInteraction())):
            validated[f"{name}_{kind}"] = reranking_figures(reranking_result(
                checkpoint, other, images, texts, gallery, settings, seed, text, rerank_k, runtime, shopper))
    return validated


def evaluate_model(name: str, model: LoadedModel, gallery: TestGallery, attributes: pd.DataFrame,
                   settings: EvaluateSettings, seed: int, queries: list[str], text: TextSettings,
                   rerank_k: int, runtime: Runtime = CPU, shopper: ShopperGallery | None = None) -> ModelResult:
    """Every measure, the by-attribute breakdown and the grid rows for one model (`load_model`'s answer)."""
    checkpoint, scorer = model
    images, texts = encode_gallery(checkpoint, gallery, settings, scorer is not None, runtime)
    measured = measure(images, texts, gallery.pairs, Retriever(settings.chunk_size, scorer, rerank_k), settings, seed)
    t2i_ranks = {protocol: measured.ranks[protocol]["t2i"] for protocol in BY_ATTRIBUTE_MEASURES}
    by_attribute = recall_by_attribute(attributes, t2i_ranks, settings.ks)
    query_rows = encode_queries(checkpoint, queries, settings, text, needs_tokens(scorer), runtime)
    grid = []
    score_pairs = query_first(scorer) if scorer is not None else None
    for row, query in enumerate(queries):
        hits, scores = search(query_rows[row:row + 1], images, GRID_COLUMNS, score_pairs, rerank_k)
        marks = result_marks(query, [int(i) for i in hits], shopper.attributes if shopper is not None else None)
        grid.append((name, query, [(gallery.image_path(int(i)), float(s), mark)
                                   for i, s, mark in zip(hits, scores, marks)]))
    item_ranks = measured.ranks["item"]["t2i"]
    result = ModelResult(measured, by_attribute, grid,
                         item_hits=item_hits_by_product(item_ranks, gallery.pairs["item_id"]),
                         strict_hits={direction: item_hits_by_product(ranks, gallery.pairs["item_id"])
                                      for direction, ranks in measured.ranks["strict"].items()},
                         item_reciprocal=item_reciprocal_by_product(item_ranks, gallery.pairs["item_id"]),
                         rankings=caption_rankings(texts, images, settings.chunk_size, score_pairs, rerank_k))
    if shopper is not None:
        result.shopper = evaluate_families(shopper.families, shopper.attributes,
                                           shopper_scores(checkpoint, scorer, images, settings, text, rerank_k,
                                                          runtime), seed, shopper.training, shopper.stated)
        result.rankings[SHOPPER] = result.shopper.scores
    if scorer is not None:
        result.dual_encoder = reranking_result(checkpoint, None, images, texts, gallery, settings, seed, text,
                                               rerank_k, runtime, shopper)
        result.late_interaction = reranking_result(checkpoint, LateInteraction(), images, texts, gallery, settings,
                                                   seed, text, rerank_k, runtime, shopper)
    return result


def caption_rankings(texts: Rows, images: Rows, chunk_size: int,
                     score_pairs: PairScorer | None = None, rerank_k: int = 0) -> dict[str, torch.Tensor]:
    """Each test caption's ranking of the test images, for the strict and item-level TREC runs (one ranking,
    two judgements)."""
    scores = ranking_scores(texts, images, chunk_size, score_pairs, rerank_k)
    return {protocol: scores for protocol in CAPTION_PROTOCOLS}


def trec_rankings(results: dict[str, ModelResult]) -> dict[str, dict[str, torch.Tensor]]:
    """Run tag -> protocol -> scores: every model, and a re-ranking model's own dual encoder beside it."""
    rankings = {name: result.rankings for name, result in results.items()}
    rankings.update({f"{name}_dual_encoder": result.dual_encoder.rankings for name, result in results.items()
                     if result.dual_encoder is not None})
    rankings.update({f"{name}_late_interaction": result.late_interaction.rankings for name, result in results.items()
                     if result.late_interaction is not None})
    return rankings


def trec_judgements(gallery: TestGallery, shopper: ShopperGallery | None) -> dict[str, Judged]:
    """What is relevant to each TREC query: strict and item level per caption, and the shopper queries."""
    judgements = caption_judgements(gallery.pairs)
    if shopper is not None and shopper.families:
        images = gallery.pairs["image"].tolist()
        judgements[SHOPPER] = shopper_judgements(shopper.families, shopper.attributes, images)
    return judgements


def result_marks(query: str, hits: list[int], attributes: pd.DataFrame | None) -> list[bool | None]:
    """Whether each result shows what the query names, by the labels (None: the query names nothing the
    labels know, or the gallery has no labels)."""
    combination = parse_query(query) if attributes is not None else None
    if combination is None:
        return [None] * len(hits)
    fits = relevant(attributes, combination)
    return [bool(fits[i]) for i in hits]


_NOT_ALLOWED_IN_MLFLOW_NAMES = re.compile(r"[^A-Za-z0-9_\-. /]")


def flat_metric_names(nested: dict[str, Any], prefix: str = "") -> dict[str, float]:
    """{"finetuned": {"strict": {"t2i_recall_at_1": x}}} -> {"finetuned/strict/t2i_recall_at_1": x}.

    MLflow's metrics are flat and their names allow letters, digits, `_ - . /` and spaces.
    """
    flat: dict[str, float] = {}
    for key, value in nested.items():
        name = prefix + _NOT_ALLOWED_IN_MLFLOW_NAMES.sub("_", str(key))
        if isinstance(value, dict):
            flat.update(flat_metric_names(value, f"{name}/"))
        else:
            flat[name] = float(value)
    return flat


def test_metrics(result: ModelResult, seed: int) -> dict[str, Any]:
    """One model's test figures for metrics/evaluate.json: every protocol, the shopper families, and the
    item-level text-to-image Recall@10 with its interval over products."""
    metrics: dict[str, Any] = dict(result.measured.metrics)
    # intervals over products: the views of a product share a caption
    for protocol, direction, hits in [("item", "t2i", result.item_hits),
                                      *(("strict", d, h) for d, h in result.strict_hits.items())]:
        metrics[protocol] = {**metrics[protocol], **{f"{direction}_recall_at_10_{end}": value for end, value in
                                                     bootstrap_mean(list(hits.values()), seed).items() if end != "mean"}}
    if result.shopper is not None:
        metrics["shopper"] = result.shopper.metrics
    if result.dual_encoder is not None:
        metrics["reranked"] = reranking_figures(result)
        metrics["dual_encoder"] = reranking_figures(result.dual_encoder)
    if result.late_interaction is not None:
        metrics["late_interaction"] = reranking_figures(result.late_interaction)
    return metrics


def paired_differences(results: dict[str, ModelResult], seed: int) -> dict[str, dict[str, Any]]:
    """Each model against the one before it (finetuned - baseline, xattn - finetuned), and for a re-ranking
    model what its pair scorer adds over its own dual encoder, what late interaction over the same token
    states adds, and the scorer against late interaction, paired over the same products and the same
    shopper combinations: the mean difference, its interval, and whether it excludes 0. Re-rankers are
    also compared by item MRR@10 and shopper nDCG@10, which see the order within the top 10."""
    names = list(results)
    pairs = [(f"{after}_vs_{before}", results[after], results[before], False)
             for before, after in zip(names, names[1:])]
    for name, result in results.items():
        if result.dual_encoder is not None:
            pairs.append((f"{name}_reranked_vs_its_dual_encoder", result, result.dual_encoder, True))
        if result.late_interaction is not None:
            pairs += [(f"{name}_late_interaction_vs_its_dual_encoder", result.late_interaction, result.dual_encoder,
                       True),
                      (f"{name}_reranked_vs_{name}_late_interaction", result, result.late_interaction, True)]
    return {key: _paired(a, b, seed, order) for key, a, b, order in pairs}


def _paired(a: ModelResult, b: ModelResult, seed: int, order: bool = False) -> dict[str, Any]:
    """Paired differences of a - b; with `order`, MRR@10 and nDCG@10 too."""
    products = sorted(a.item_hits)
    entry = {"item_t2i_recall_at_10": paired_difference([a.item_hits[p] for p in products],
                                                        [b.item_hits[p] for p in products], seed)}
    if order:
        entry[f"item_t2i_mrr_at_{MRR_CUTOFF}"] = paired_difference([a.item_reciprocal[p] for p in products],
                                                                   [b.item_reciprocal[p] for p in products], seed)
    if a.shopper is not None and b.shopper is not None:
        families = [f for f in HEADLINE_FAMILIES if f in a.shopper.per_combination]
        for measure in ("precision_at_10", "ndcg_at_10") if order else ("precision_at_10",):
            if families:
                entry[f"shopper_{measure}"] = paired_difference(
                    [v for f in families for v in a.shopper.per_combination[f][measure]],
                    [v for f in families for v in b.shopper.per_combination[f][measure]], seed)
    return entry


def record_models(logger: RunLogger, directories: dict[str, Path]) -> dict[str, str]:
    """Tie the evaluate run (and its pipeline's parent) to exactly the models it scored: each model's
    weights digest, the hash dvc.lock records for its directory, and the run that trained it (found by
    the digest: a run of an earlier pipeline when DVC took the model from its cache). Returns the tags."""
    digests = {name: model_digest(path) for name, path in directories.items()}
    sources = logger.source_runs({name: (digest, MADE_BY[name]) for name, digest in digests.items() if digest})
    locked = dvc_lock_hashes([path.as_posix() for path in directories.values()])
    tags = {}
    for name, path in directories.items():
        for key, value in (("model_digest", digests[name]), ("dvc_lock", locked.get(path.as_posix())),
                           ("source_run", sources.get(name))):
            if value:
                tags[f"{key}.{name}"] = value
    logger.set_tags(tags, on_parent=True)
    return tags
