"""`fashion-search` commands."""

from __future__ import annotations

import argparse
from pathlib import Path

from fashion_search.evaluate.commands import add_benchmark_command
from fashion_search.errors import UsageError
from fashion_search.results_table import report_table, update_readme
from fashion_search.search.commands import add_search_commands
from fashion_search.stage import run


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fashion-search", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    table = commands.add_parser("results-table", help="regenerate the README's results table from metrics/")
    table.add_argument("--readme", type=Path, default=Path("README.md"))
    table.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    table.add_argument("--report", action="store_true", help="print the report's Table 2 with ours beside it "
                       "(strict text-to-image Recall@K, chance and ceiling rows) instead of updating the README")
    table.set_defaults(handler=run_results_table)
    sweep = commands.add_parser("sweep", help="a param's sweep from its DVC experiments: a CSV for `dvc plots` "
                                "and the README's table", description=SWEEP_DOC)
    sweep.add_argument("param", help="the swept params.yaml key, e.g. finetune.lr")
    sweep.add_argument("--readme", type=Path, default=Path("README.md"))
    sweep.add_argument("--from-csv", action="store_true", help="render the README block from the committed CSV "
                       "instead of reading the experiments")
    sweep.set_defaults(handler=run_sweep)
    add_search_commands(commands)
    add_benchmark_command(commands)
    args = parser.parse_args(argv)
    args.handler(args)


def run_results_table(args: argparse.Namespace) -> None:
    run(lambda: _results_table(args))


def _results_table(args: argparse.Namespace) -> None:
    if args.report:
        print(report_table(args.metrics))
    else:
        changed = update_readme(args.readme, args.metrics)
        print(f"{args.readme}: {'updated' if changed else 'already up to date'}")


SWEEP_DOC = ("Reads every DVC experiment of the current commit (dvc exp show), writes reports/sweeps/<param>.csv "
             "(plotted by `dvc plots show`) and fills the README's <!-- sweep:<param>:start --> block.")


def run_sweep(args: argparse.Namespace) -> None:
    run(lambda: _sweep(args))


def _sweep(args: argparse.Namespace) -> None:
    from fashion_search import sweep

    out = sweep.csv_path(args.param)
    if not args.from_csv:
        rows = sweep.sweep_rows(args.param, sweep.read_experiments(Path.cwd()))
        if not rows:
            raise UsageError(f"no finished experiment of this commit has {args.param} and the evaluate metrics; "
                             f"run the sweep first (README: The learning-rate question)")
        sweep.write_csv(rows, args.param, out)
        print(f"{out}: {len(rows)} values of {args.param}")
    table = sweep.render(sweep.read_csv(out, args.param), args.param)
    changed = sweep.update_readme(args.readme, table, args.param)
    print(table)
    print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
