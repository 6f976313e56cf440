"""The README's results tables, generated from metrics/evaluate.json so they never drift from the run."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from pathlib import Path

from fashion_search.errors import DataError, UsageError
from fashion_search.evaluate.published import (PUBLISHED_GALLERY_SIZE, PUBLISHED_MARQO, PUBLISHED_REPORT,
                                               REPORT_LABELS, REPORT_TEST_PAIRS)
from fashion_search.models import MODELS

START, END = "<!-- results:start -->", "<!-- results:end -->"
REPORT_START, REPORT_END = "<!-- report:start -->", "<!-- report:end -->"
LABELS = {"baseline": "Baseline (pretrained: zero-shot; tiny: trained here from scratch)",
          "finetuned": "Fine-tuned (symmetric InfoNCE, T=0.1)",
          "xattn": "Cross-modal attention (re-ranks the dual encoder's top k)"}


def _ks(protocol_metrics: dict) -> list[int]:
    return sorted(int(match.group(1)) for key in protocol_metrics
                  if (match := re.fullmatch(r"t2i_recall_at_(\d+)", key)))


def _recall_table(metrics: dict, protocol: str, chance: dict | None = None, ceiling: dict | None = None) -> list[str]:
    """Recall@K both ways and the T→I median rank, one row per model (and chance and the ceiling, when given:
    the ceiling's {direction: {k: value}}, a direction it lacks shown as —)."""
    ks = _ks(metrics["baseline"][protocol])
    head = ["Model", *[f"T→I R@{k}" for k in ks], *[f"I→T R@{k}" for k in ks], "T→I median rank"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, label in ((name, LABELS[name]) for name in MODELS):
        row = metrics[name][protocol]
        cells = [f"{row[f'{d}_recall_at_{k}']:.3f}" for d in ("t2i", "i2t") for k in ks]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {row['t2i_median_rank']:g} |")
    if chance is not None:  # image to text ranks the distinct captions: its own chance, where recorded
        cells = [f"{chance[d][k]:.3f}" if d in chance else "—" for d in ("t2i", "i2t") for k in ks]
        median = f"{chance['median_rank']:g}" if "median_rank" in chance else "—"
        lines.append("| Chance | " + " | ".join(cells) + f" | {median} |")
    if ceiling is not None:
        cells = [f"{ceiling[d][k]:.3f}" if d in ceiling else "—" for d in ("t2i", "i2t") for k in ks]
        lines.append("| Ceiling (a perfect ranker) | " + " | ".join(cells) + " | |")
    return lines


def _ceiling(gallery: dict, prefix: str, ks: list[int]) -> dict | None:
    """{direction: {k: value}} from the gallery's `<prefix>ceiling_<direction>_recall_at_<k>` keys."""
    found = {d: {k: gallery[f"{prefix}ceiling_{d}_recall_at_{k}"] for k in ks}
             for d in ("t2i", "i2t") if all(f"{prefix}ceiling_{d}_recall_at_{k}" in gallery for k in ks)}
    return found or None


def render_report_table(metrics: dict) -> str:
    """The report's Table 2 (strict text-to-image Recall@1/5/10) with ours beside it, chance and the ceiling."""
    gallery = metrics["gallery"]
    ks = [1, 5, 10]
    ceiling = _ceiling(gallery, "", ks)
    lines = [f"| Model | ours R@1 | ours R@5 | ours R@10 | report R@1 | report R@5 | report R@10 |",
             "|---|---|---|---|---|---|---|"]
    for name in MODELS:
        ours = metrics[name]["strict"]
        lines.append(f"| {name} ({REPORT_LABELS[name]}) | " + " | ".join(f"{ours[f't2i_recall_at_{k}']:.4f}" for k in ks)
                     + " | " + " | ".join(f"{PUBLISHED_REPORT[name][f'recall_at_{k}']:.4f}" for k in ks) + " |")
    lines.append("| Chance | " + " | ".join(f"{min(1.0, k / gallery['size']):.4f}" for k in ks) + " | "
                 + " | ".join(f"{min(1.0, k / REPORT_TEST_PAIRS):.4f}" for k in ks) + " |")
    if ceiling is not None:
        lines.append("| Ceiling (a perfect ranker) | " + " | ".join(f"{ceiling['t2i'][k]:.4f}" for k in ks)
                     + " | — | — | — |")
    return "\n".join([f"Strict text→image Recall@K: ours on {gallery['size']:,} test images, the report's on "
                      f"{REPORT_TEST_PAIRS:,} (its Table 2). Chance is K / gallery size; the ceiling is what a "
                      "perfect ranker reaches when the images that share a caption share its ranking (the report's "
                      "data was not published per pair, so its ceiling is unknown).", "", *lines])


def _chance(gallery: dict, prefix: str, ks: list[int]) -> dict[str, dict[int, float]]:
    """Chance Recall@K both ways; metrics written before image to text ranked distinct captions have one."""
    t2i = {k: gallery[f"{prefix}chance_recall_at_{k}"] for k in ks}
    return {"t2i": t2i, "i2t": {k: gallery.get(f"{prefix}i2t_chance_recall_at_{k}", t2i[k]) for k in ks}}


def _item_chance(gallery: dict, ks: list[int]) -> dict | None:
    """Item level text to image in a random order (a product with more views is hit more often than K / N);
    image to text is not computed (identical caption texts share one random score): shown as —."""
    if not all(f"item_chance_t2i_recall_at_{k}" in gallery for k in ks):
        return None
    return {"t2i": {k: gallery[f"item_chance_t2i_recall_at_{k}"] for k in ks}}


def _marqo_table(metrics: dict) -> list[str]:
    """Ours on the test split beside the published zero-shot figures on the full set."""
    gallery = metrics["gallery"]
    lines = ["| Model | Images | R@1 | R@10 | MRR@10 | AvgRecall |", "|---|---|---|---|---|---|"]
    for name, label in ((name, LABELS[name]) for name in MODELS):
        row = metrics[name]["marqo"]
        lines.append(f"| {label} | {gallery['size']:,} (test split) | {row['recall_at_1']:.3f} | "
                     f"{row['recall_at_10']:.3f} | {row['mrr_at_10']:.3f} | {row['avg_recall']:.3f} |")
    if "marqo_chance_mrr_at_10" in gallery:
        top1, top10 = gallery["marqo_chance_recall_at_1"], gallery["marqo_chance_recall_at_10"]
        lines.append(f"| Chance | {gallery['size']:,} (test split) | {top1:.3f} | {top10:.3f} | "
                     f"{gallery['marqo_chance_mrr_at_10']:.3f} | {(top1 + top10) / 2:.3f} |")
    if "marqo_ceiling_recall_at_1" in gallery:
        top1, top10 = gallery["marqo_ceiling_recall_at_1"], gallery["marqo_ceiling_recall_at_10"]
        lines.append(f"| Ceiling (a perfect ranker) | {gallery['size']:,} (test split) | {top1:.3f} | {top10:.3f} | "
                     f"| {(top1 + top10) / 2:.3f} |")
    for label, row in PUBLISHED_MARQO.items():
        average = (row["recall_at_1"] + row["recall_at_10"]) / 2
        lines.append(f"| {label} (published, zero-shot) | {PUBLISHED_GALLERY_SIZE:,} | {row['recall_at_1']:.3f} | "
                     f"{row['recall_at_10']:.3f} | {row['mrr_at_10']:.3f} | {average:.3f} |")
    return lines


FAMILY_LABELS = {"1_attribute": "1 attribute (garment)", "2_attributes": "2 attributes", "3_attributes": "3 attributes",
                 "synonyms": "synonyms", "unseen_words": "unseen words", "negation": "negation"}


def _interval(row: dict, name: str) -> str:
    return f"{row[name]:.3f} [{row[f'{name}_low']:.3f}–{row[f'{name}_high']:.3f}]"


def _shopper_tables(metrics: dict) -> list[str]:
    """The shopper protocol: the headline with intervals and chance, then each family per model."""
    if not all("headline" in metrics[name].get("shopper", {}) for name in MODELS):
        return []
    lines = ["| Model | P@10 [95% CI] | nDCG@10 [95% CI] | R@50 | binding errors@10 |", "|---|---|---|---|---|"]
    for name in MODELS:
        row = metrics[name]["shopper"]["headline"]
        lines.append(f"| {LABELS[name]} | {_interval(row, 'precision_at_10')} | {_interval(row, 'ndcg_at_10')} "
                     f"| {row['recall_at_50']:.3f} | {row['binding_errors_at_10']:.3f} |")
    head = metrics[MODELS[0]]["shopper"]["headline"]
    lines.append(f"| Chance (base rate) | {head['chance_precision_at_10']:.3f} | {head['chance_precision_at_10']:.3f} "
                 f"| | |")
    if "ceiling_precision_at_10" in head:
        lines.append(f"| Ceiling (a perfect ranker) | {head['ceiling_precision_at_10']:.3f} | | | |")
    families = metrics[MODELS[0]]["shopper"]["families"]
    lines += ["", "| Family | Combinations | Base rate | " + " | ".join(f"{name} P@10" for name in MODELS)
              + f" | unseen in training: combinations, P@10 ({MODELS[0]}) | never said together in a short "
              f"training text: combinations, P@10 ({MODELS[0]}) | said together: P@10 ({MODELS[0]}) |",
              "|---|---|---|" + "---|" * len(MODELS) + "---|---|---|"]
    for family, row in families.items():
        cells = [f"{metrics[name]['shopper']['families'][family]['precision_at_10']:.3f}" for name in MODELS]
        subsets = []
        for key in ("unseen_in_training", "unstated_in_short_texts"):
            subset = row.get(key)
            subsets.append(f"{subset['combinations']}, {subset['precision_at_10']:.3f}" if subset else "0")
        stated = row.get("stated_in_short_texts")
        subsets.append(f"{stated['precision_at_10']:.3f}" if stated else "—")
        lines.append(f"| {FAMILY_LABELS.get(family, family)} | {row['combinations']} | {row['base_rate']:.3f} | "
                     + " | ".join(cells + subsets) + " |")
    lines += ["", "| Family | " + " | ".join(f"{name} nDCG@10 | {name} R@50 | {name} binding errors@10"
                                              for name in MODELS) + " | chance nDCG@10 | chance R@50 |",
              "|---|" + "---|---|---|" * len(MODELS) + "---|---|"]
    for family, row in families.items():
        cells = []
        for name in MODELS:
            entry = metrics[name]["shopper"]["families"][family]
            cells += [f"{entry['ndcg_at_10']:.3f}", f"{entry['recall_at_50']:.3f}",
                      f"{entry['binding_errors_at_10']:.3f}"]
        chance = [f"{row[key]:.3f}" if key in row else "—" for key in ("chance_ndcg_at_10", "chance_recall_at_50")]
        lines.append(f"| {FAMILY_LABELS.get(family, family)} | " + " | ".join(cells + chance) + " |")
    return lines


def _interval_note(metrics: dict, protocol: str, keys: dict[str, str], unit: str = "products") -> str:
    """The models' 95% intervals over `unit` of each {label: metric key} the metrics have them for."""
    rows = [metrics[name][protocol] for name in MODELS]
    notes = []
    for label, key in keys.items():
        if all(f"{key}_low" in row for row in rows):
            spans = ", ".join(f"{name} [{row[f'{key}_low']:.3f}–{row[f'{key}_high']:.3f}]" for name, row in zip(MODELS, rows))
            notes.append(f" {label} 95% intervals over {unit}: {spans}.")
    return "".join(notes)


def _difference_table(metrics: dict) -> list[str]:
    differences = metrics.get("differences")
    if not differences:
        return []
    lines = ["| Comparison | Measure | Difference [95% CI] | Excludes 0 |", "|---|---|---|---|"]
    for comparison, measures in differences.items():
        after, before = (part.replace("_", " ") for part in comparison.split("_vs_"))
        for measure, row in measures.items():
            lines.append(f"| {after} − {before} | {measure.replace('_', ' ')} | "
                         f"{row['mean']:+.3f} [{row['low']:+.3f}, {row['high']:+.3f}] | "
                         f"{'yes' if row['excludes_0'] else 'no'} |")
    return lines


def _validation_table(metrics: dict) -> list[str]:
    validation = metrics.get("validation")
    if not validation:
        return []
    names = sorted({key for name in MODELS for key in validation.get(name, {})})
    lines = ["| Model | " + " | ".join(n.replace("_", " ") for n in names) + " |", "|---|" + "---|" * len(names)]
    for name in MODELS:
        row = validation.get(name, {})
        lines.append(f"| {LABELS[name]} | " + " | ".join(f"{row[n]:.3f}" if n in row else "" for n in names) + " |")
    return lines


def render_table(metrics: dict) -> str:
    """Markdown: strict (the headline), item level, small galleries, and the Marqo protocol beside published rows."""
    gallery = metrics["gallery"]
    ks = _ks(metrics["baseline"]["strict"])
    small = gallery["small_gallery_size"]
    small_key = next(key for key in metrics["baseline"] if key.startswith("gallery_"))
    shopper, differences, validation = _shopper_tables(metrics), _difference_table(metrics), _validation_table(metrics)
    sections = []
    if shopper:
        sections += [
            f"**Shopper protocol** (test split, {gallery['size']} images): short queries from the labels, 2-3 "
            "phrasings per attribute combination, relevance bound to the garment. Headline: the mean over the 2- "
            "and 3-attribute families, with a bootstrap 95% interval over combinations; chance is the families' "
            "mean base rate. Binding errors: results that show every attribute, but on the wrong garment.",
            "", *shopper, ""]
    if differences:
        sections += ["**Paired differences** (test split): each model against the one before it on the same units, "
                     "resampled by the bootstrap (products for item recall, attribute combinations for shopper "
                     "P@10). The primary comparison is shopper P@10; the others are secondary.", "", *differences, ""]
    if validation:
        sections += [f"**Validation split** ({gallery.get('validation_size', '?')} images): what `serve.select_by` "
                     "chooses the served model by; the test split is never used to choose.", "", *validation, ""]
    sections += [
        f"**Strict** (the report's protocol): one query per test caption, the hit is its own image; "
        f"{gallery['size']} test images; image to text ranks the {gallery['unique_captions']} distinct captions, "
        "the hit is the image's own caption; ties count against the query." + _interval_note(metrics, "strict", {
            "T→I R@10": "t2i_recall_at_10", "I→T R@10": "i2t_recall_at_10"}),
        "", *_recall_table(metrics, "strict", {**_chance(gallery, "", ks), "median_rank": (gallery["size"] + 1) / 2},
                           _ceiling(gallery, "", ks)),
        "", f"**Item level**: any view of the same product is a hit ({gallery['items']} products)."
            + _interval_note(metrics, "item", {"T→I R@10": "t2i_recall_at_10"}),
        "", *_recall_table(metrics, "item", _item_chance(gallery, ks), _ceiling(gallery, "item_", ks)),
        "", f"**Small galleries**: strict recall within random galleries of {small} test pairs, "
            f"{gallery['small_gallery_draws']} draws (the report's batches of 32).",
        "", *_recall_table(metrics, small_key, {**_chance(gallery, "small_gallery_", ks),
                                                "median_rank": (small + 1) / 2},
                           _ceiling(gallery, "small_gallery_", ks)),
        "", f"**Marqo protocol** (text→image): {gallery['marqo_queries']} unique captions as queries, every image "
            "with exactly that caption relevant, recall = relevant retrieved / all relevant. Published rows are "
            "zero-shot on all 42,537 images, so a larger gallery than ours."
            + _interval_note(metrics, "marqo", {"R@10": "recall_at_10"}, "the queries"),
        "", *_marqo_table(metrics),
    ]
    return "\n".join(sections)


def read_metrics(metrics_file: Path) -> dict:
    """metrics/evaluate.json, or a message naming --metrics and the stage that writes it."""
    if not metrics_file.is_file():
        raise UsageError(f"--metrics {metrics_file}: no such file; it is written by the evaluate stage "
                         "(run `dvc repro evaluate`)")
    try:
        metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    except (OSError, ValueError) as error:
        raise DataError(f"--metrics {metrics_file} is not JSON ({error.__class__.__name__}: {error}); it is written "
                        "by the evaluate stage (rerun `dvc repro evaluate`)") from None
    if not isinstance(metrics, dict):
        raise DataError(f"--metrics {metrics_file} is not what the evaluate stage writes (a JSON object); "
                        "rerun `dvc repro evaluate`")
    return metrics


def rendered(render: Callable[[dict], str], metrics: dict, metrics_file: Path) -> str:
    """`render(metrics)`; metrics without the keys or values a table reads are one message naming the file."""
    try:
        return render(metrics)
    except (KeyError, TypeError, ValueError, AttributeError, StopIteration) as error:
        raise DataError(f"--metrics {metrics_file} is not what the evaluate stage writes "
                        f"({error.__class__.__name__}: {error}); rerun `dvc repro evaluate`") from None


def report_table(metrics_file: Path) -> str:
    """The report's Table 2 beside ours, from a metrics file (`results-table --report`)."""
    return rendered(render_report_table, read_metrics(metrics_file), metrics_file)


def read_readme(readme: Path) -> str:
    """The README a command fills in, or a message naming --readme."""
    if not readme.is_file():
        raise UsageError(f"--readme {readme}: no such file; give the README that holds the block to fill")
    try:
        return readme.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UsageError(f"--readme {readme}: not UTF-8 text") from None
    except OSError as error:
        raise UsageError(f"--readme {readme}: cannot read it ({error.strerror or error})") from None


def write_readme(readme: Path, text: str) -> None:
    try:
        readme.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"--readme {readme}: cannot write it ({error.strerror or error})") from None


def update_readme(readme: Path, metrics_file: Path) -> bool:
    """Replace the block between the results markers; True if the README changed."""
    text = read_readme(readme)
    metrics = read_metrics(metrics_file)
    updated = fill_block(text, START, END, rendered(render_table, metrics, metrics_file), readme)
    if REPORT_START in updated:  # the report's Table 2 beside ours, where the README shows it
        updated = fill_block(updated, REPORT_START, REPORT_END,
                             rendered(render_report_table, metrics, metrics_file), readme)
    write_readme(readme, updated)
    return updated != text


def fill_block(text: str, start: str, end: str, content: str, where: Path) -> str:
    """`text` with what lies between the markers `start` and `end` replaced by `content`."""
    pattern = re.compile(re.escape(start) + ".*?" + re.escape(end), re.S)
    if not pattern.search(text):
        raise DataError(f"{where} has no {start} ... {end} block to fill")
    return pattern.sub(lambda _: f"{start}\n{content}\n{end}", text)
