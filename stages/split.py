"""Stage split: train / validation / test pairs, grouped by item id (seed 42, scikit-learn)."""

import argparse
from pathlib import Path

from fashion_search.atomic import write_json
from fashion_search.config import load_params, section, seed
from fashion_search.data.pairs import read_pairs, write_pairs
from fashion_search.split import split_pairs
from fashion_search.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--val", type=Path, required=True)
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    settings, global_seed = section(params, "split"), seed(params)

    sides = dict(zip(("train", "val", "test"), split_pairs(read_pairs(args.pairs, "tokenize"), settings,
                                                           global_seed)))
    for name, side in sides.items():
        write_pairs(side, getattr(args, name))
    write_json(args.metrics, {**{f"{name}_pairs": len(side) for name, side in sides.items()},
                              **{f"{name}_items": int(side["item_id"].nunique()) for name, side in sides.items()}})


if __name__ == "__main__":
    run(main)
