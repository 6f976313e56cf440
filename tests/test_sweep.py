"""The learning-rate sweep's table and plot, from DVC experiment rows; the report's profile and Table 2."""

from __future__ import annotations

import copy
import subprocess
import sys
from pathlib import Path

import pytest

from fashion_search import sweep
from fashion_search.cli import main
from fashion_search.config import SECTIONS, load_params, section
from fashion_search.evaluate.published import PUBLISHED_REPORT, REPORT_PROFILE, report_command
from fashion_search.results_table import render_report_table

REPO = Path(__file__).resolve().parents[1]
PARAM = "finetune.lr"


def _row(name: str, lr, p10: float | None = 0.3, created: str = "2026-11-30T10:00:00", prefixed: bool = False) -> dict:
    row = {"Experiment": name, "rev": name[:7], "Created": created, ("params.yaml:" if prefixed else "") + PARAM: lr}
    if p10 is not None:
        for column, key in sweep.COLUMNS:
            value = p10 if "shopper_p10" in column else 0.6 if "item" in column else 0.01
            value = value - 0.05 if column.endswith("_low") else value + 0.05 if column.endswith("_high") else value
            row[(f"{sweep.METRICS_FILE}:" if prefixed else "") + key] = value
    return row


def test_one_row_per_value_sorted_the_newest_when_a_value_ran_twice() -> None:
    rows = sweep.sweep_rows(PARAM, [
        _row("lr-3e-4", 3e-4, 0.2),
        _row("lr-1e-6-old", 1e-6, 0.1, created="2026-11-29T10:00:00"),
        _row("lr-1e-6", 1e-6, 0.25),
        _row("queued", 1e-5, None),  # no metrics yet: not a result
        _row("lr-1e-4", "1e-04", 0.3, prefixed=True),  # DVC names a key by its file when two files share it
    ])
    assert [(row[PARAM], row["experiment"]) for row in rows] == [(1e-6, "lr-1e-6"), (1e-4, "lr-1e-4"),
                                                                 (3e-4, "lr-3e-4")]
    small = _row("small", 1e-5, 0.3)  # a small run's validation split may have no shopper figure: still a row
    del small["finetuned.validation_shopper_ndcg10"]
    (row,) = sweep.sweep_rows(PARAM, [small])
    assert row["validation_finetuned_shopper_ndcg10"] is None
    assert "by item T→I R@10" in sweep.render([row], PARAM) and "| —, 0.600 |" in sweep.render([row], PARAM)
    assert rows[0]["finetuned_shopper_p10"] == 0.25


def test_a_value_that_is_not_a_number_is_reported_with_the_experiment() -> None:
    with pytest.raises(Exception, match=r"finetune\.lr is 'fast' in experiment odd"):
        sweep.sweep_rows(PARAM, [_row("odd", "fast")])


def test_csv_round_trip_and_the_table_says_whether_each_difference_excludes_0(tmp_path: Path) -> None:
    rows = sweep.sweep_rows(PARAM, [_row("a", 1e-6, 0.25), _row("b", 1e-4, 0.4)])
    rows[1]["finetuned_minus_baseline_p10_low"], rows[1]["finetuned_minus_baseline_p10_high"] = -0.02, 0.03
    out = tmp_path / "finetune_lr.csv"
    sweep.write_csv(rows, PARAM, out)
    header = out.read_text().splitlines()[0].split(",")
    assert header[:3] == [PARAM, f"log10_{PARAM}", "experiment"]
    back = sweep.read_csv(out, PARAM)
    assert back[1][f"log10_{PARAM}"] == pytest.approx(-4.0)
    table = sweep.render(back, PARAM)
    lines = table.splitlines()
    # equal validation figures: the smaller value is chosen
    assert lines[2].startswith("| 1e-06 (chosen) | a | 0.010, 0.600 | 0.250 [0.200, 0.300]")
    assert "+0.010 [-0.040, +0.060] (includes 0)" in lines[2]
    assert lines[3].startswith("| 0.0001 | b |") and "+0.010 [-0.020, +0.030] (includes 0)" in lines[3]
    assert lines[-1].endswith("= 1e-06; on test its difference from the baseline excludes 0 on item R@10 (+0.600).")
    # the choice follows validation, and the verdict reads the chosen value's test intervals
    rows[1]["validation_finetuned_shopper_ndcg10"] = 0.5
    rows[1]["finetuned_minus_baseline_item_r10_low"] = -0.002
    verdict = sweep.render(rows, PARAM).splitlines()
    assert verdict[3].startswith("| 0.0001 (chosen) | b |")
    assert verdict[-1].endswith("= 0.0001; on test its difference from the baseline includes 0 on both measures: "
                                "no significant change.")


def test_the_readme_block_is_filled_and_a_missing_block_is_refused(tmp_path: Path) -> None:
    readme = tmp_path / "README.md"
    start, end = sweep.markers(PARAM)
    readme.write_text(f"intro\n{start}\nold\n{end}\nrest\n")
    assert sweep.update_readme(readme, "| new |", PARAM)
    assert readme.read_text() == f"intro\n{start}\n| new |\n{end}\nrest\n"
    assert not sweep.update_readme(readme, "| new |", PARAM)
    readme.write_text("no block\n")
    with pytest.raises(Exception, match="sweep:finetune.lr:start"):
        sweep.update_readme(readme, "| new |", PARAM)


def _sweep_error(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    with pytest.raises(SystemExit) as exit_info:
        main(["sweep", PARAM, *args])
    err = capsys.readouterr().err
    assert exit_info.value.code == 1 and err.startswith("error: ") and err.count("\n") == 1, err
    return err


def test_sweep_from_a_csv_into_a_missing_readme_is_one_line_naming_it(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    sweep.write_csv(sweep.sweep_rows(PARAM, [_row("a", 1e-6)]), PARAM, sweep.csv_path(PARAM))
    err = _sweep_error(capsys, "--from-csv", "--readme", "NOPE.md")
    assert err.startswith("error: --readme NOPE.md: no such file")


@pytest.mark.parametrize("edit, said", [(lambda text: text.replace("1e-06,", "fast,", 1), "'fast' is not a number"),
                                        (lambda text: text.replace("experiment", "run", 1), "lacks the columns")])
def test_sweep_from_a_damaged_csv_is_one_line_naming_it(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str], edit, said: str) -> None:
    monkeypatch.chdir(tmp_path)
    out = sweep.csv_path(PARAM)
    sweep.write_csv(sweep.sweep_rows(PARAM, [_row("a", 1e-6)]), PARAM, out)
    out.write_text(edit(out.read_text()))
    (tmp_path / "README.md").write_text("\n".join(sweep.markers(PARAM)) + "\n")
    err = _sweep_error(capsys, "--from-csv")
    assert err.startswith(f"error: {out}") and said in err and f"fashion-search sweep {PARAM}" in err


def test_sweep_outside_a_dvc_repository_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                    capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)
    assert "the repository root" in _sweep_error(capsys)


def test_the_committed_sweep_table_matches_the_committed_csv(tmp_path: Path) -> None:
    """The README's sweep table is generated from reports/sweeps/finetune_lr.csv, never typed."""
    csv_file = REPO / sweep.csv_path(PARAM)
    if not csv_file.is_file():
        pytest.skip("the sweep has not been run and committed")
    readme = tmp_path / "README.md"
    readme.write_text((REPO / "README.md").read_text(encoding="utf-8"), encoding="utf-8")
    assert not sweep.update_readme(readme, sweep.render(sweep.read_csv(csv_file, PARAM), PARAM), PARAM), \
        "the README's sweep table is stale: run `fashion-search sweep finetune.lr --from-csv` and commit"


def test_the_readme_runs_the_reports_profile_and_every_override_is_valid(tmp_path: Path) -> None:
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert f"<!-- profile:report -->\n```bash\n{report_command()}\n```" in readme
    params = load_params(REPO / "params.yaml")
    changed = copy.deepcopy(params)
    for key, value in REPORT_PROFILE.items():
        node = changed
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        assert last in node, f"{key} is not a params.yaml key"
        node[last] = value
    for name in SECTIONS:  # every section still validates with the profile applied
        section(changed, name)
    assert section(changed, "split").group_by == "none" and section(changed, "image").fit == "crop"


def test_results_table_report_prints_table_2_beside_ours(tmp_path: Path) -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "fashion-search"), "results-table", "--report",
                             "--metrics", str(REPO / "metrics/evaluate.json")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    lines = [line for line in result.stdout.splitlines() if line.startswith("| ")]
    assert lines[0].startswith("| Model | ours R@1")
    assert lines[1].endswith(" | 0.0001 | 0.0007 | 0.0020 |") and PUBLISHED_REPORT["baseline"]["recall_at_10"] == 0.0020
    assert any(line.startswith("| Chance | ") and line.endswith(" | 0.0001 | 0.0006 | 0.0011 |") for line in lines)


def test_report_table_has_the_ceiling_when_the_metrics_do() -> None:
    strict = {f"t2i_recall_at_{k}": 0.1 for k in (1, 5, 10)}
    metrics = {name: {"strict": strict} for name in ("baseline", "finetuned", "xattn")}
    metrics["gallery"] = {"size": 516, **{f"ceiling_t2i_recall_at_{k}": v for k, v in ((1, 0.27), (5, 0.9),
                                                                                         (10, 1.0))}}
    table = render_report_table(metrics)
    assert "| Ceiling (a perfect ranker) | 0.2700 | 0.9000 | 1.0000 | — | — | — |" in table
    assert "| Chance | 0.0019 | 0.0097 | 0.0194 |" in table
