"""Stage train_xattn: the cross-modal attention pair scorer over the fine-tuned CLIP's embeddings."""

import argparse
from pathlib import Path

import pandas as pd

from fashion_search.atomic import atomic_path
from fashion_search.config import load_params, section, seed, stage_params
from fashion_search.data.pairs import read_pairs, require
from fashion_search.image_cache import open_cache
from fashion_search.inputs import pair_segments
from fashion_search.models.clip import load_checkpoint
from fashion_search.models.xattn import XattnModel, new_scorer
from fashion_search.stage import run
from fashion_search.train.distributed import relaunch
from fashion_search.train.session import training_session
from fashion_search.train.xattn import check_processes, train_xattn


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--finetuned", type=Path, required=True)
    parser.add_argument("--train", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--metrics", type=Path, required=True)
    parser.add_argument("--state", type=Path, required=True, help="step checkpoints to resume from (DVC persist)")
    args = parser.parse_args()
    params = load_params()
    image, settings, global_seed = section(params, "image"), section(params, "xattn"), seed(params)
    runtime = section(params, "runtime")
    # under torchrun before any data or model is read; an uneven batch is refused first
    check_processes(settings.features, runtime.processes)
    relaunch(runtime.processes, settings.batch_size, "xattn.batch_size")
    pairs = read_pairs(args.train, "split")
    encoder = load_checkpoint(require(args.finetuned, "finetune"))

    tracked = stage_params(params, "train_xattn")
    with training_session("train_xattn", tracked, runtime, args.state, settings.checkpoint_every,
                          [args.finetuned, args.train]) as session:
        pixels = open_cache(require(args.cache, "cache_images"), pairs["image"].tolist(),
                            encoder.pixel_spec, image.fit)
        scorer = new_scorer(encoder.model.config.projection_dim, settings.layers, settings.heads,
                            settings.dropout, global_seed, settings.features)
        xattn = XattnModel(encoder, scorer)
        items = pd.factorize(pairs["item_id"])[0].tolist()
        losses = train_xattn(xattn, pixels, pair_segments(pairs), items, settings, global_seed, session)
        # A locked tower is exactly the fine-tuned one: the saved encoder says which.
        encoder.info.update(stage="train_xattn", trained_from=str(args.finetuned),
                            lock_image=settings.lock_image, lock_text=settings.lock_text)

        def save() -> None:
            with atomic_path(args.out) as tmp:
                xattn.save(tmp)

        session.finish(losses, save, args.out, args.metrics)


if __name__ == "__main__":
    run(main)
