"""`fashion-search` commands."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from fashion_search.evaluate.commands import add_benchmark_command
from fashion_search.results_table import update_readme
from fashion_search.search.commands import add_search_commands


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="fashion-search", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    table = commands.add_parser("results-table", help="regenerate the README's results table from metrics/")
    table.add_argument("--readme", type=Path, default=Path("README.md"))
    table.add_argument("--metrics", type=Path, default=Path("metrics/evaluate.json"))
    add_search_commands(commands)
    add_benchmark_command(commands)
    args = parser.parse_args(argv)
    if args.command == "results-table":
        try:  # not through stage.run: its imports (torch) would cost this command seconds
            changed = update_readme(args.readme, args.metrics)
        except (ValueError, OSError) as error:
            print(f"error: {error}", file=sys.stderr)
            raise SystemExit(1) from None
        print(f"{args.readme}: {'updated' if changed else 'already up to date'}")
    else:
        args.handler(args)
