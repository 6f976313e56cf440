"""Stage cache_images: decode, fit and resize every paired image once, at the model's input size."""

import argparse
from pathlib import Path

from fashion_search.atomic import atomic_path
from fashion_search.config import load_params, section
from fashion_search.data.layout import IMAGES_DIR
from fashion_search.data.pairs import read_pairs
from fashion_search.image_cache import build_cache
from fashion_search.images import PixelSpec
from fashion_search.models.clip import processor_for
from fashion_search.stage import run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=Path, required=True)
    parser.add_argument("--raw", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    params = load_params()
    model, image = section(params, "model"), section(params, "image")
    size = PixelSpec.from_processor(processor_for(model)).size

    names = read_pairs(args.pairs, "tokenize")["image"].tolist()
    with atomic_path(args.out) as tmp:
        build_cache(names, args.raw / IMAGES_DIR, size, image.fit, tmp)


if __name__ == "__main__":
    run(main)
