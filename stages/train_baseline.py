"""Stage train_baseline: the pretrained CLIP as it is (zero-shot), or the tiny CLIP trained from scratch."""

import argparse
from pathlib import Path

from fashion_search.atomic import atomic_path
from fashion_search.config import load_params, section, seed, stage_params
from fashion_search.data.pairs import read_pairs, require
from fashion_search.image_cache import open_cache
from fashion_search.models.clip import TINY, build_tiny, load_pretrained
from fashion_search.stage import run
from fashion_search.text import load_tokenizer
from fashion_search.train.distributed import relaunch
from fashion_search.train.loop import train_contrastive
from fashion_search.train.session import training_session
from fashion_search.train.texts import contrastive_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--raw", type=Path, help="data/raw: the images' labels, for alt texts and positives: labels")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--tokenizer", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True, help="step checkpoints to resume from (DVC persist)")
    args = parser.parse_args()
    params = load_params()
    model, text, image = section(params, "model"), section(params, "text"), section(params, "image")
    settings, global_seed = section(params, "train_baseline"), seed(params)
    runtime = section(params, "runtime")
    # under torchrun before any data or model is read; an uneven batch is refused first
    relaunch(runtime.processes, settings.batch_size, "train_baseline.batch_size")
    pairs = read_pairs(args.train, "split")
    tokenizer = load_tokenizer(require(args.tokenizer, "tokenize"))

    tracked = stage_params(params, "train_baseline")
    with training_session("train_baseline", tracked, runtime, args.state, settings.checkpoint_every,
                          [args.train, args.tokenizer]) as session:
        if model.name == TINY:
            checkpoint = build_tiny(model.tiny, tokenizer, text.max_tokens, global_seed)
            pixels = open_cache(require(args.cache, "cache_images"), pairs["image"].tolist(),
                                checkpoint.pixel_spec, image.fit)
            texts, targets, counts = contrastive_texts(pairs, args.raw, tokenizer, text.max_tokens, settings,
                                                       global_seed)
            print(f"train_baseline: {counts['captions']} captions and {counts['alt_texts']} alt texts")
            losses = train_contrastive(checkpoint, pixels, texts, settings, global_seed, session, targets)
        else:
            checkpoint, losses = load_pretrained(model.name, args.tokenizer), []
        checkpoint.info.update(stage="train_baseline", image_fit=image.fit, max_tokens=text.max_tokens)

        def save() -> None:
            with atomic_path(args.out) as tmp:
                checkpoint.save(tmp)

        session.finish(losses, save, args.out, args.metrics, {"trained_from": checkpoint.info["trained_from"]})


if __name__ == "__main__":
    run(main)
