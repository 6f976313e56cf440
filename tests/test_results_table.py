"""The README's results tables are generated from metrics/evaluate.json and kept in sync with it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import commit_all, copy_project
from fashion_search.cli import main
from fashion_search.evaluate.published import PUBLISHED_MARQO
from fashion_search.results_table import END, START, render_table, update_readme

REPO = Path(__file__).resolve().parents[1]


def _metrics() -> dict:
    row = {f"{d}_recall_at_{k}": k / 20 for d in ("t2i", "i2t") for k in (1, 5, 10)}
    row.update(t2i_median_rank=7.0, i2t_median_rank=8.0)
    marqo = {"recall_at_1": 0.25, "recall_at_10": 0.75, "mrr_at_10": 0.4, "avg_recall": 0.5, "queries": 40}

    def model(**strict_changes: float) -> dict:
        return {"strict": {**row, **strict_changes},
                "item": {**row, "t2i_recall_at_1": 0.5, "t2i_recall_at_10_low": 0.4, "t2i_recall_at_10_high": 0.6},
                "gallery_32": {**row, "t2i_recall_at_5": 0.59}, "marqo": marqo}

    gallery = {"size": 99, "items": 30, "unique_captions": 40, "marqo_queries": 40, "small_gallery_size": 32,
               "small_gallery_draws": 10, **{f"chance_recall_at_{k}": k / 99 for k in (1, 5, 10)},
               **{f"i2t_chance_recall_at_{k}": k / 40 for k in (1, 5, 10)},
               **{f"small_gallery_chance_recall_at_{k}": k / 32 for k in (1, 5, 10)},
               **{f"small_gallery_i2t_chance_recall_at_{k}": k / 30 for k in (1, 5, 10)}}
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
    # image to text ranks the 40 distinct captions: its chance is k / 40, not k / 99
    assert strict[5] == "| Chance | 0.010 | 0.051 | 0.101 | 0.025 | 0.125 | 0.250 | 50 |"
    assert "99 test images" in lines[0]
    assert "ranks the 40 distinct captions" in next(line for line in lines if line.startswith("**Strict**"))


def test_item_and_small_gallery_tables() -> None:
    lines = render_table(_metrics()).splitlines()
    assert "baseline [0.400–0.600]" in next(line for line in lines if line.startswith("**Item level**"))
    item = _table_after(lines, "**Item level**")
    assert len(item) == 5 and item[2].startswith("| Baseline") and "| 0.500 |" in item[2]
    small = _table_after(lines, "**Small galleries**")
    assert "| 0.590 |" in small[2]
    assert small[5] == "| Chance | 0.031 | 0.156 | 0.312 | 0.033 | 0.167 | 0.333 | 16.5 |"


def test_marqo_table_puts_published_rows_beside_ours() -> None:
    lines = render_table(_metrics()).splitlines()
    marqo = _table_after(lines, "**Marqo protocol**")
    assert marqo[0] == "| Model | Images | R@1 | R@10 | MRR@10 | AvgRecall |"
    assert marqo[2] == ("| Baseline (pretrained: zero-shot; tiny: trained here from scratch) | 99 (test split) | 0.250 | 0.750 "
                        "| 0.400 | 0.500 |")
    assert len(marqo) == 2 + 3 + len(PUBLISHED_MARQO)
    assert "| Marqo-FashionSigLIP (published, zero-shot) | 42,537 | 0.007 | 0.031 | 0.015 | 0.019 |" in marqo


def _with_shopper(metrics: dict) -> dict:
    family = {"combinations": 12, "queries": 36, "base_rate": 0.04, "precision_at_10": 0.5, "precision_at_10_low": 0.4,
              "precision_at_10_high": 0.6, "ndcg_at_10": 0.55, "ndcg_at_10_low": 0.45, "ndcg_at_10_high": 0.65,
              "recall_at_50": 0.7, "binding_errors_at_10": 0.02, "chance_precision_at_10": 0.04}
    headline = {key: value for key, value in family.items() if key not in ("combinations", "queries")}
    for name, scale in (("baseline", 1.0), ("finetuned", 0.5), ("xattn", 0.5)):
        metrics[name]["shopper"] = {"headline": {**headline, "precision_at_10": 0.5 * scale},
                                    "families": {"2_attributes": {**family, "unseen_in_training": {
                                        "combinations": 2, "precision_at_10": 0.25, "ndcg_at_10": 0.3},
                                        "unstated_in_short_texts": {"combinations": 5, "precision_at_10": 0.125,
                                                                    "ndcg_at_10": 0.2},
                                        "stated_in_short_texts": {"combinations": 7, "precision_at_10": 0.75,
                                                                  "ndcg_at_10": 0.8}}}}
    metrics["differences"] = {"finetuned_vs_baseline": {"shopper_precision_at_10": {
        "mean": -0.25, "low": -0.3, "high": -0.2, "excludes_0": True}}}
    metrics["validation"] = {name: {"shopper_ndcg_at_10": 0.1 * (i + 1)} for i, name in enumerate(
        ("baseline", "finetuned", "xattn"))}
    metrics["gallery"]["validation_size"] = 42
    return metrics


def test_shopper_difference_and_validation_tables() -> None:
    lines = render_table(_with_shopper(_metrics())).splitlines()
    shopper = _table_after(lines, "**Shopper protocol**")
    assert shopper[2].startswith("| Baseline") and "| 0.500 [0.400–0.600] | 0.550 [0.450–0.650] |" in shopper[2]
    assert shopper[-1] == "| Chance (base rate) | 0.040 | 0.040 | | |"
    families = _table_after(lines, "| Family | Combinations")
    assert families[0] == "| 2 attributes | 12 | 0.040 | 0.500 | 0.500 | 0.500 | 2, 0.250 | 5, 0.125 | 0.750 |"
    per_model = _table_after(lines, "| Family | baseline nDCG@10")
    assert per_model[0] == ("| 2 attributes | 0.550 | 0.700 | 0.020 | 0.550 | 0.700 | 0.020 | 0.550 | 0.700 | 0.020 "
                            "| — | — |")
    assert "| finetuned − baseline | shopper precision at 10 | -0.250 [-0.300, -0.200] | yes |" in lines
    validation = _table_after(lines, "**Validation split**")
    assert validation[4].startswith("| Cross-modal attention") and validation[4].endswith("| 0.300 |")
    assert "(42 images)" in next(line for line in lines if line.startswith("**Validation split**"))


def test_without_shopper_figures_the_tables_are_left_out() -> None:
    assert "Shopper protocol" not in render_table(_metrics())


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


@pytest.mark.parametrize("content, said", [
    ("{ not json", "is not JSON"),
    ('{"gallery": {"size": 3}}', "is not what the evaluate stage writes (KeyError: 'baseline')"),
    ('{"gallery": {"size": 3}, "baseline": {"strict": "x"}}', "is not what the evaluate stage writes"),
])
@pytest.mark.parametrize("report", [False, True])
def test_results_table_of_metrics_it_cannot_use_is_one_line_naming_the_file(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, said: str, report: bool) -> None:
    readme, metrics = tmp_path / "README.md", tmp_path / "evaluate.json"
    readme.write_text(f"{START}\n{END}\n")
    metrics.write_text(content)
    with pytest.raises(SystemExit) as exit_info:
        main(["results-table", "--readme", str(readme), "--metrics", str(metrics), *(["--report"] if report else [])])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.count("\n") == 1, err
    assert err.startswith(f"error: --metrics {metrics} {said}") and "dvc repro evaluate" in err
    assert readme.read_text() == f"{START}\n{END}\n"


def test_results_table_of_a_readme_that_is_not_text_is_one_line(tmp_path: Path,
                                                                  capsys: pytest.CaptureFixture[str]) -> None:
    readme, metrics = tmp_path / "README.md", tmp_path / "evaluate.json"
    readme.write_bytes(b"\xff\xfe" + START.encode())
    metrics.write_text(json.dumps(_metrics()))
    with pytest.raises(SystemExit) as exit_info:
        main(["results-table", "--readme", str(readme), "--metrics", str(metrics)])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err == f"error: --readme {readme}: not UTF-8 text\n"


def _committed(path: str, root: Path = REPO) -> str:
    """A file as it is at HEAD: the promise is about what is committed, not about the working tree,
    which `make repro` rewrites (another CPU can change the last digits of the metrics)."""
    result = subprocess.run(["git", "show", f"HEAD:{path}"], cwd=root, capture_output=True, text=True)
    if result.returncode != 0:
        pytest.fail(f"{path} is not committed at HEAD ({result.stderr.strip()}): run `make repro` and commit it")
    return result.stdout


def test_committed_readme_matches_committed_metrics(tmp_path: Path) -> None:
    """The numbers in README.md at HEAD are the ones in metrics/evaluate.json at HEAD, not typed by hand."""
    if not (REPO / ".git").exists():
        pytest.skip("not a git checkout: there is no committed README to compare")
    readme, metrics = tmp_path / "README.md", tmp_path / "evaluate.json"
    readme.write_text(_committed("README.md"), encoding="utf-8")
    metrics.write_text(_committed("metrics/evaluate.json"), encoding="utf-8")
    assert not update_readme(readme, metrics), "README is stale: run `fashion-search results-table` and commit"


@pytest.mark.slow
def test_readme_check_passes_after_a_rerun_that_changed_the_last_digits(tmp_path: Path) -> None:
    """`make repro` then `make test` on another CPU: the rerun rewrites metrics/evaluate.json with
    last-digit differences; the README check still compares what is committed, so it passes."""
    clone = copy_project(tmp_path / "clone")
    commit_all(clone)
    metrics_file = clone / "metrics" / "evaluate.json"
    metrics = json.loads(metrics_file.read_text(encoding="utf-8"))
    strict = metrics["xattn"]["strict"]
    strict["t2i_recall_at_10"] = round(strict["t2i_recall_at_10"] + 0.002, 6)  # a rerun on another CPU
    metrics_file.write_text(json.dumps(metrics, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    readme = clone / "README.md"
    readme_copy = tmp_path / "README.md"
    shutil.copy(readme, readme_copy)
    assert update_readme(readme_copy, metrics_file), "the perturbation must show in the tables"
    result = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                             "tests/test_results_table.py::test_committed_readme_matches_committed_metrics"],
                            cwd=clone, capture_output=True, text=True)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]


def test_item_small_gallery_and_marqo_tables_show_chance_and_ceiling_when_recorded() -> None:
    metrics = _metrics()
    metrics["gallery"].update({**{f"item_chance_t2i_recall_at_{k}": k / 50 for k in (1, 5, 10)},
                               **{f"small_gallery_ceiling_t2i_recall_at_{k}": 0.9 for k in (1, 5, 10)},
                               **{f"small_gallery_ceiling_i2t_recall_at_{k}": 1.0 for k in (1, 5, 10)},
                               "marqo_chance_recall_at_1": 1 / 99, "marqo_chance_recall_at_10": 10 / 99,
                               "marqo_chance_mrr_at_10": 0.03})
    lines = render_table(metrics).splitlines()
    item = _table_after(lines, "**Item level**")
    assert item[5] == "| Chance | 0.020 | 0.100 | 0.200 | — | — | — | — |"
    small = _table_after(lines, "**Small galleries**")
    assert small[6] == "| Ceiling (a perfect ranker) | 0.900 | 0.900 | 0.900 | 1.000 | 1.000 | 1.000 | |"
    marqo = _table_after(lines, "**Marqo protocol**")
    assert marqo[5] == "| Chance | 99 (test split) | 0.010 | 0.101 | 0.030 | 0.056 |"


def test_the_strict_table_says_its_intervals_over_products_when_recorded() -> None:
    metrics = _metrics()
    for name in ("baseline", "finetuned", "xattn"):
        metrics[name]["strict"].update(t2i_recall_at_10_low=0.3, t2i_recall_at_10_high=0.5,
                                       i2t_recall_at_10_low=0.6, i2t_recall_at_10_high=0.7)
    strict = next(line for line in render_table(metrics).splitlines() if line.startswith("**Strict**"))
    assert "T→I R@10 95% intervals over products: baseline [0.300–0.500]" in strict
    assert "I→T R@10 95% intervals over products: baseline [0.600–0.700]" in strict


def test_the_marqo_table_says_its_interval_over_queries_when_recorded() -> None:
    metrics = _metrics()
    for name in ("baseline", "finetuned", "xattn"):
        metrics[name]["marqo"].update(recall_at_10_low=0.65, recall_at_10_high=0.85)
    marqo = next(line for line in render_table(metrics).splitlines() if line.startswith("**Marqo protocol**"))
    assert marqo.endswith("R@10 95% intervals over the queries: baseline [0.650–0.850], finetuned [0.650–0.850], "
                          "xattn [0.650–0.850].")
