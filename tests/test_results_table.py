"""The README's results tables are generated from metrics/evaluate.json and kept in sync with it."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from fashion_search.evaluate.published import PUBLISHED_MARQO
from fashion_search.results_table import END, START, render_table, update_readme

REPO = Path(__file__).resolve().parents[1]


def _metrics() -> dict:
    row = {f"{d}_recall_at_{k}": k / 20 for d in ("t2i", "i2t") for k in (1, 5, 10)}
    row.update(t2i_median_rank=7.0, i2t_median_rank=8.0)
    marqo = {"recall_at_1": 0.25, "recall_at_10": 0.75, "mrr_at_10": 0.4, "avg_recall": 0.5, "queries": 40}

    def model(**strict_changes: float) -> dict:
        return {"strict": {**row, **strict_changes}, "item": {**row, "t2i_recall_at_1": 0.5},
                "gallery_32": {**row, "t2i_recall_at_5": 0.59}, "marqo": marqo}

    gallery = {"size": 99, "items": 30, "marqo_queries": 40, "small_gallery_size": 32, "small_gallery_draws": 10,
               **{f"chance_recall_at_{k}": k / 99 for k in (1, 5, 10)},
               **{f"small_gallery_chance_recall_at_{k}": k / 32 for k in (1, 5, 10)}}
    return {"baseline": model(), "finetuned": model(), "xattn": model(t2i_recall_at_1=0.125), "gallery": gallery}


def _table_after(lines: list[str], title: str) -> list[str]:
    start = next(i for i, line in enumerate(lines) if line.startswith(title)) + 2
    end = next((i for i in range(start, len(lines)) if not lines[i].startswith("|")), len(lines))
    return lines[start:end]


def test_strict_table_shows_each_model_and_chance() -> None:
    lines = render_table(_metrics()).splitlines()
    strict = _table_after(lines, "**Strict**")
    assert "T→I R@1 | T→I R@5 | T→I R@10" in strict[0]
    assert strict[4].startswith("| Cross-modal attention") and "| 0.125 |" in strict[4]
    assert strict[5] == "| Chance | 0.010 | 0.051 | 0.101 | 0.010 | 0.051 | 0.101 | 50 |"
    assert "99 test images" in lines[0]


def test_item_and_small_gallery_tables() -> None:
    lines = render_table(_metrics()).splitlines()
    item = _table_after(lines, "**Item level**")
    assert len(item) == 5 and item[2].startswith("| Baseline") and "| 0.500 |" in item[2]
    small = _table_after(lines, "**Small galleries**")
    assert "| 0.590 |" in small[2]
    assert small[5] == "| Chance | 0.031 | 0.156 | 0.312 | 0.031 | 0.156 | 0.312 | 16.5 |"


def test_marqo_table_puts_published_rows_beside_ours() -> None:
    lines = render_table(_metrics()).splitlines()
    marqo = _table_after(lines, "**Marqo protocol**")
    assert marqo[0] == "| Model | Images | R@1 | R@10 | MRR@10 | AvgRecall |"
    assert marqo[2] == ("| Baseline (zero-shot; tiny: trained here from scratch) | 99 (test split) | 0.250 | 0.750 "
                        "| 0.400 | 0.500 |")
    assert len(marqo) == 2 + 3 + len(PUBLISHED_MARQO)
    assert "| Marqo-FashionSigLIP (published, zero-shot) | 42,537 | 0.007 | 0.031 | 0.015 | 0.019 |" in marqo


def test_update_replaces_only_the_marked_block(tmp_path: Path) -> None:
    readme, metrics = tmp_path / "README.md", tmp_path / "evaluate.json"
    readme.write_text(f"intro\n{START}\nold\n{END}\noutro\n")
    metrics.write_text(json.dumps(_metrics()))
    assert update_readme(readme, metrics)
    text = readme.read_text()
    assert text.startswith("intro\n") and text.endswith("outro\n") and "old" not in text
    assert not update_readme(readme, metrics)


def test_readme_without_markers_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "README.md").write_text("no block\n")
    (tmp_path / "m.json").write_text(json.dumps(_metrics()))
    with pytest.raises(ValueError, match="results:start"):
        update_readme(tmp_path / "README.md", tmp_path / "m.json")


def test_committed_readme_matches_committed_metrics(tmp_path: Path) -> None:
    """The numbers in README.md are the ones in metrics/evaluate.json, not typed by hand."""
    metrics = REPO / "metrics" / "evaluate.json"
    if not metrics.exists():
        pytest.fail("metrics/evaluate.json is not committed: run `make repro` and commit metrics/")
    copy = tmp_path / "README.md"
    shutil.copy(REPO / "README.md", copy)
    assert not update_readme(copy, metrics), "README is stale: run `fashion-search results-table`"
