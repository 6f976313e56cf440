"""A sweep's outcome from its DVC experiments: the primary metric against one param, for `dvc plots` and the README.

After `dvc exp run --queue -S 'finetune.lr=1e-6,1e-5,1e-4,3e-4'` and `dvc queue start`, `fashion-search sweep
finetune.lr` reads every experiment of the current commit (and the workspace) with DVC's own API, and writes
one row per value of the param: the served figures with their 95% intervals and the paired difference that
answers the sweep's question. Nothing is typed by hand: the README block and the plotted CSV come from here.
"""

from __future__ import annotations

import csv
import math
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fashion_search.errors import DataError, UsageError

# what each row reports, as (column, the flattened key in metrics/headline.json)
COLUMNS = (
    ("finetuned_shopper_p10", "finetuned.shopper_p10"),
    ("finetuned_shopper_p10_low", "finetuned.shopper_p10_low"),
    ("finetuned_shopper_p10_high", "finetuned.shopper_p10_high"),
    ("finetuned_item_t2i_r10", "finetuned.item_r10"),
    ("finetuned_item_t2i_r10_low", "finetuned.item_r10_low"),
    ("finetuned_item_t2i_r10_high", "finetuned.item_r10_high"),
    ("finetuned_minus_baseline_p10", "finetuned_minus_baseline.shopper_p10"),
    ("finetuned_minus_baseline_p10_low", "finetuned_minus_baseline.shopper_p10_low"),
    ("finetuned_minus_baseline_p10_high", "finetuned_minus_baseline.shopper_p10_high"),
    ("finetuned_minus_baseline_item_r10", "finetuned_minus_baseline.item_r10"),
    ("finetuned_minus_baseline_item_r10_low", "finetuned_minus_baseline.item_r10_low"),
    ("finetuned_minus_baseline_item_r10_high", "finetuned_minus_baseline.item_r10_high"),
    # the validation split: where a value is chosen (by the served model's criterion), never on test
    ("validation_finetuned_shopper_ndcg10", "finetuned.validation_shopper_ndcg10"),
    ("validation_finetuned_item_t2i_r10", "finetuned.validation_item_r10"),
)
# what a value is chosen by, in order of preference (a small run's validation split may have no shopper figure)
CHOSEN_BY = {"validation_finetuned_shopper_ndcg10": "shopper nDCG@10",
             "validation_finetuned_item_t2i_r10": "item T→I R@10"}
OPTIONAL = set(CHOSEN_BY)
METRICS_FILE = "metrics/headline.json"


def _lookup(row: dict[str, Any], key: str, source: str) -> Any:
    """A value of an `exp_show` row: DVC names it `key`, or `<file>:key` when two files share a name."""
    for name in (key, f"{source}:{key}"):
        if name in row:
            return row[name]
    return None


def sweep_rows(param: str, experiments: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """One row per value of `param` among finished experiments that have the metrics (the newest when a
    value ran twice), sorted by value."""
    by_value: dict[float, dict[str, Any]] = {}
    for experiment in experiments:
        value = _lookup(experiment, param, "params.yaml")
        figures = {column: _lookup(experiment, key, METRICS_FILE) for column, key in COLUMNS}
        if value is None or any(not isinstance(v, (int, float)) for c, v in figures.items() if c not in OPTIONAL):
            continue  # queued, running, failed, or from before these metrics existed
        try:
            number = float(value)
        except (TypeError, ValueError):
            raise DataError(f"{param} is {value!r} in experiment {experiment.get('Experiment')}: not a number")
        row = {param: number, "experiment": experiment.get("Experiment") or experiment.get("rev") or "workspace",
               "created": str(experiment.get("Created") or ""), **figures}
        if number not in by_value or row["created"] >= by_value[number]["created"]:
            by_value[number] = row
    return [by_value[value] for value in sorted(by_value)]


def read_experiments(repo: Path) -> list[dict[str, Any]]:
    """Every experiment of HEAD and the workspace, through DVC's API (what `dvc exp show` shows)."""
    import dvc.api
    from dvc.exceptions import DvcException

    try:
        return dvc.api.exp_show(repo=str(repo))
    except DvcException as error:
        raise UsageError(f"cannot read the DVC experiments in {repo} ({error.__class__.__name__}: {error}); run "
                         "`fashion-search sweep` from the repository root (a git repository with DVC)") from None


def write_csv(rows: list[dict[str, Any]], param: str, path: Path) -> None:
    """The plotted file: one line per param value (`dvc plots show` draws it against the param)."""
    from fashion_search.atomic import atomic_path

    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with atomic_path(path) as tmp, tmp.open("w", newline="", encoding="utf-8") as stream:
            writer = csv.writer(stream, lineterminator="\n")
            writer.writerow(_header(param))
            for row in rows:
                log = f"{math.log10(row[param]):.4f}" if row[param] > 0 else ""
                writer.writerow([f"{row[param]:g}", log, row["experiment"],
                                 *("" if row[column] is None else f"{row[column]:.6f}" for column, _ in COLUMNS)])
    except OSError as error:
        raise UsageError(f"{path}: cannot write it ({error.strerror or error})") from None


def _header(param: str) -> list[str]:
    return [param, f"log10_{param}", "experiment", *(column for column, _ in COLUMNS)]


def read_csv(path: Path, param: str) -> list[dict[str, Any]]:
    """The rows `write_csv` wrote; a file that is not one is a message naming it."""
    rewrite = f"rewrite it with `fashion-search sweep {param}` (from the experiments)"
    if not path.is_file():
        raise UsageError(f"{path}: no such file; `fashion-search sweep {param}` writes it from the experiments")
    try:
        with path.open(encoding="utf-8", newline="") as stream:
            reader = csv.DictReader(stream)
            missing = [name for name in _header(param) if name not in (reader.fieldnames or [])]
            if missing:
                raise DataError(f"{path} lacks the columns {', '.join(missing)}; {rewrite}")
            return [{key: value if key == "experiment" else _number(value, path, reader.line_num, rewrite)
                     for key, value in row.items()} for row in reader]
    except (OSError, UnicodeDecodeError, csv.Error) as error:
        raise DataError(f"{path} cannot be read as CSV ({error.__class__.__name__}: {error}); {rewrite}") from None


def _number(value: str | None, path: Path, line: int, rewrite: str) -> float | None:
    if not value:
        return None
    try:
        return float(value)
    except ValueError:
        raise DataError(f"{path} line {line}: {value!r} is not a number; {rewrite}") from None


def _cell(value: float, low: float, high: float, signed: bool = False) -> str:
    form = "{:+.3f}" if signed else "{:.3f}"
    return f"{form.format(value)} [{form.format(low)}, {form.format(high)}]"


def render(rows: list[dict[str, Any]], param: str) -> str:
    """Markdown: each value of the param, the fine-tuned model's figures and what fine-tuning changed."""
    lines = [f"| `{param}` | experiment | validation: shopper nDCG@10, item R@10 | test: fine-tuned shopper P@10 "
             "[95% CI] | test: fine-tuned item T→I R@10 [95% CI] | test: fine-tuned − baseline, shopper P@10 | "
             "test: fine-tuned − baseline, item R@10 |",
             "|---|---|---|---|---|---|---|"]
    criterion = next((column for column in CHOSEN_BY if rows and all(row[column] is not None for row in rows)), None)
    chosen = max(rows, key=lambda row: (row[criterion], -row[param])) if criterion else None
    for row in rows:
        p10 = _cell(row["finetuned_shopper_p10"], row["finetuned_shopper_p10_low"], row["finetuned_shopper_p10_high"])
        r10 = _cell(row["finetuned_item_t2i_r10"], row["finetuned_item_t2i_r10_low"],
                    row["finetuned_item_t2i_r10_high"])
        differences = []
        for name in ("p10", "item_r10"):
            low, high = row[f"finetuned_minus_baseline_{name}_low"], row[f"finetuned_minus_baseline_{name}_high"]
            significant = "excludes 0" if low > 0 or high < 0 else "includes 0"
            differences.append(_cell(row[f"finetuned_minus_baseline_{name}"], low, high, signed=True)
                               + f" ({significant})")
        validation = ", ".join("—" if row[column] is None else f"{row[column]:.3f}" for column in CHOSEN_BY)
        mark = " (chosen)" if row is chosen else ""
        lines.append(f"| {row[param]:g}{mark} | {row['experiment']} | {validation} | {p10} | {r10} | "
                     + " | ".join(differences) + " |")
    if chosen is not None:
        excludes = [f"{label} ({chosen[f'finetuned_minus_baseline_{name}']:+.3f})"
                    for name, label in (("p10", "shopper P@10"), ("item_r10", "item R@10"))
                    if chosen[f"finetuned_minus_baseline_{name}_low"] > 0
                    or chosen[f"finetuned_minus_baseline_{name}_high"] < 0]
        verdict = ("its difference from the baseline excludes 0 on " + " and ".join(excludes) if excludes else
                   "its difference from the baseline includes 0 on both measures: no significant change")
        lines += ["", f"Chosen on validation (by {CHOSEN_BY[criterion]}, as the served model is; ties to the smaller "
                      f"value): `{param}` = {chosen[param]:g}; on test {verdict}."]
    return "\n".join(lines)


def markers(param: str) -> tuple[str, str]:
    return f"<!-- sweep:{param}:start -->", f"<!-- sweep:{param}:end -->"


def update_readme(readme: Path, table: str, param: str) -> bool:
    """Fill the README's block for this param; True if it changed."""
    from fashion_search.results_table import fill_block, read_readme, write_readme

    start, end = markers(param)
    text = read_readme(readme)
    updated = fill_block(text, start, end, table, readme)
    write_readme(readme, updated)
    return updated != text


def csv_path(param: str, folder: Path = Path("reports/sweeps")) -> Path:
    """reports/sweeps/finetune_lr.csv for finetune.lr."""
    return folder / f"{re.sub(r'[^A-Za-z0-9]+', '_', param)}.csv"
