"""Stage finetune: contrastive fine-tuning of the baseline (symmetric InfoNCE, temperature 0.1, lr 1e-6)."""

import argparse
from pathlib import Path

from fashion_search.atomic import atomic_path
from fashion_search.config import load_params, section, seed, stage_params
from fashion_search.data.pairs import read_pairs, require
from fashion_search.image_cache import open_cache
from fashion_search.models.clip import load_checkpoint
from fashion_search.stage import run
from fashion_search.train.distributed import relaunch
from fashion_search.train.loop import train_contrastive
from fashion_search.train.session import training_session
from fashion_search.train.texts import contrastive_texts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--baseline", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--raw", type=Path, help="data/raw: the images' labels, for alt texts and positives: labels")
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True, help="step checkpoints to resume from (DVC persist)")
    args = parser.parse_args()
    params = load_params()
    image, settings, global_seed = section(params, "image"), section(params, "finetune"), seed(params)
    runtime = section(params, "runtime")
    # under torchrun before any data or model is read; an uneven batch is refused first
    relaunch(runtime.processes, settings.batch_size, "finetune.batch_size")
    pairs = read_pairs(args.train, "split")
    checkpoint = load_checkpoint(require(args.baseline, "train_baseline"))

    tracked = stage_params(params, "finetune")
    with training_session("finetune", tracked, runtime, args.state, settings.checkpoint_every,
                          [args.baseline, args.train]) as session:
        pixels = open_cache(require(args.cache, "cache_images"), pairs["image"].tolist(),
                            checkpoint.pixel_spec, image.fit)
        texts, targets, _ = contrastive_texts(pairs, args.raw, checkpoint.tokenizer,
                                              int(checkpoint.info.get("max_tokens", 77)), settings, global_seed)
        losses = train_contrastive(checkpoint, pixels, texts, settings, global_seed, session, targets)
        checkpoint.info.update(stage="finetune", trained_from=str(args.baseline))

        def save() -> None:
            with atomic_path(args.out) as tmp:
                checkpoint.save(tmp)

        session.finish(losses, save, args.out, args.metrics)


if __name__ == "__main__":
    run(main)
