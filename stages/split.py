"""Stage split: train/test pairs, grouped by item id (seed 42, scikit-learn)."""

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
    parser.add_argument("--test", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    settings, global_seed = section(params, "split"), seed(params)

    train, test = split_pairs(read_pairs(args.pairs, "tokenize"), settings, global_seed)
    write_pairs(train, args.train)
    write_pairs(test, args.test)
    write_json(args.metrics, {
        "train_pairs": len(train), "test_pairs": len(test),
        "train_items": int(train["item_id"].nunique()), "test_items": int(test["item_id"].nunique()),
    })


if __name__ == "__main__":
    run(main)
