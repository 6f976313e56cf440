"""Training-loop overhead: pairs/s of the finetune loop against a bare forward+backward+step on the
same batches, in the same process; prints JSON. Target ratio >= 0.90.

The bare loop gets its batches ready-made (pixels normalised, text padded) and skips the schedule,
clipping, loss bookkeeping and progress bar; the difference is what the pipeline adds.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import tempfile
import time
from pathlib import Path

import torch

from fashion_search.config import TinyModelSettings, TrainSettings
from fashion_search.data.pairs import build_pairs
from fashion_search.data.synthetic import generate_synthetic
from fashion_search.device import CPU
from fashion_search.image_cache import build_cache, open_cache
from fashion_search.models.clip import build_tiny, image_embeddings
from fashion_search.text import build_tokenizer, encode
from fashion_search.train.loop import batches, device_batch, train_contrastive
from fashion_search.train.loss import ContrastiveLoss
from fashion_search.train.resume import TrainingState
from fashion_search.train.session import Session

TINY = TinyModelSettings(embed_dim=128, layers=4, heads=4, image_size=64, patch_size=8, vocab_size=1000)


def bare_pairs_per_s(checkpoint, pixels, captions, settings: TrainSettings) -> float:
    """Forward, loss, backward and AdamW step only, on batches prepared beforehand."""
    model, loss_fn = checkpoint.model.train(), ContrastiveLoss(settings.temperature)
    optimizer = torch.optim.AdamW(model.parameters(), lr=settings.lr)
    prepared = [device_batch(pixels, captions, index, checkpoint.pad_id, checkpoint.pixel_spec, CPU)
                for index in batches(len(captions), settings.batch_size, torch.Generator().manual_seed(0))]
    start = time.perf_counter()
    for batch in prepared:
        loss = loss_fn(image_embeddings(model, batch.pixels), batch.text_embeds(model))
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    return len(prepared) * settings.batch_size / (time.perf_counter() - start)


def loop_pairs_per_s(checkpoint, pixels, captions, settings: TrainSettings, state: Path) -> float:
    """The stage's loop, step checkpoints included when settings.checkpoint_every > 0 (a fresh state
    directory each time, so nothing is resumed)."""
    checkpoints = TrainingState(state, "bench", settings.checkpoint_every)
    start = time.perf_counter()
    losses = train_contrastive(checkpoint, pixels, captions, settings, seed=0, session=Session(state=checkpoints))
    return len(losses) * settings.batch_size / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=150)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--checkpoint-every", type=int, default=0, help="steps between step checkpoints in the loop")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        generate_synthetic(raw, n_items=args.items, seed=42)
        pairs, _ = build_pairs(raw)
        tokenizer = build_tokenizer(pairs["caption"], TINY.vocab_size, 77)
        captions = [[ids] for ids in encode(tokenizer, pairs["caption"].tolist(), 77)[0]]
        checkpoint = build_tiny(TINY, tokenizer, 77, seed=42)
        build_cache(pairs["image"].tolist(), raw / "images", TINY.image_size, "pad", Path(tmp) / "cache")
        pixels = open_cache(Path(tmp) / "cache", pairs["image"].tolist(), checkpoint.pixel_spec, "pad")
        settings = TrainSettings(epochs=1, lr=1e-4, batch_size=64, temperature=0.1, weight_decay=0.1,
                                 warmup_steps=5, schedule="cosine", grad_clip=1.0, workers=0,
                                 checkpoint_every=args.checkpoint_every)
        bare, loop = [], []
        for repeat in range(args.repeats):  # interleaved, so load changes hit both alike
            bare.append(bare_pairs_per_s(checkpoint, pixels, captions, settings))
            loop.append(loop_pairs_per_s(checkpoint, pixels, captions, settings, Path(tmp) / f"state-{repeat}"))
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "platform": platform.platform(), "torch": torch.__version__},
        "pairs": len(captions), "batch_size": settings.batch_size, "checkpoint_every": args.checkpoint_every,
        "model": "tiny (128 wide, 4 layers, 64 px)",
        "bare_pairs_per_s": [round(v, 1) for v in bare], "loop_pairs_per_s": [round(v, 1) for v in loop],
        "ratio_of_medians": round(sorted(loop)[len(loop) // 2] / sorted(bare)[len(bare) // 2], 3),
        "target_ratio": 0.9}, indent=2))


if __name__ == "__main__":
    main()
