"""`fashion-search benchmark`: the CLI side; the work is in `evaluate.benchmark`.

The heavy imports (torch, transformers) happen inside the command, so that
`fashion-search --help` and the other commands stay instant.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

PROTOCOL_CHOICES = ("strict", "item", "marqo", "gallery", "shopper", "all")


def add_benchmark_command(commands: argparse._SubParsersAction) -> None:
    """Register `benchmark` on the CLI's subcommands; it sets `handler`."""
    bench = commands.add_parser(
        "benchmark", help="evaluate any CLIP checkpoint directory or Hugging Face id; prints JSON",
        description="Run from the repository root: settings come from params.yaml (evaluate, image, text, "
                    "retrieval). Offline, a Hugging Face id must already be in the cache.")
    bench.add_argument("--model", required=True, help="a checkpoint directory (models/finetuned, models/xattn) "
                                                      "or a Hugging Face CLIP id (openai/clip-vit-base-patch32)")
    bench.add_argument("--protocol", choices=PROTOCOL_CHOICES, default="all")
    bench.add_argument("--pairs", type=Path, default=Path("data/interim/captions.parquet"),
                       help="pairs to measure on: every downloaded pair (default) or data/processed/test.parquet")
    bench.add_argument("--raw", type=Path, default=Path("data/raw"), help="the dataset in its layout (images/)")
    bench.set_defaults(handler=run_benchmark)


def run_benchmark(args: argparse.Namespace) -> None:
    from fashion_search.evaluate.benchmark import benchmark_with_params
    from fashion_search.stage import run

    run(lambda: print(json.dumps(benchmark_with_params(args.model, args.protocol, args.pairs, args.raw),
                                 indent=2, sort_keys=True)))
