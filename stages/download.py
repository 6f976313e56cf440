"""Stage download: fill data/raw/ in the DeepFashion-MultiModal layout from params `data.source`."""

import argparse
from pathlib import Path

from fashion_search.config import load_params, section, seed
from fashion_search.data.sources import fetch_raw
from fashion_search.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    settings, global_seed = section(params, "data"), seed(params)
    fetch_raw(settings, global_seed, args.out)


if __name__ == "__main__":
    run(main)
