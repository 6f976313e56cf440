"""The project's own training loop on a GPU: CUDA placement, bf16 and fp16 autocast (with the
gradient scaler), fused AdamW, pinned memory. Trains the tiny CLIP on synthetic data for a few
epochs per precision and prints JSON: losses must be finite and fall, as they do on the CPU."""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from fashion_search.config import TinyModelSettings, TrainSettings
from fashion_search.data.pairs import build_pairs
from fashion_search.data.synthetic import generate_synthetic
from fashion_search.device import pick_runtime
from fashion_search.inputs import pair_pixels
from fashion_search.models.clip import build_tiny
from fashion_search.text import build_tokenizer, encode
from fashion_search.train.loop import train_contrastive
from fashion_search.train.session import Session

TINY = TinyModelSettings(embed_dim=128, layers=4, heads=4, image_size=64, patch_size=8, vocab_size=1000)


def run(precision: str, device: str, raw: Path, epochs: int) -> dict:
    pairs, _ = build_pairs(raw)
    tokenizer = build_tokenizer(pairs["caption"], TINY.vocab_size, 77)
    ids, _ = encode(tokenizer, pairs["caption"].tolist(), 77)
    checkpoint = build_tiny(TINY, tokenizer, 77, seed=42)
    pixels = pair_pixels(pairs, raw, checkpoint.pixel_spec, "pad")
    settings = TrainSettings(epochs=epochs, lr=1e-4, batch_size=64, temperature=0.07, weight_decay=0.1,
                             warmup_steps=20, schedule="cosine", grad_clip=1.0, workers=2,
                             checkpoint_every=0)
    runtime = pick_runtime(device, precision)
    start = time.perf_counter()
    losses = train_contrastive(checkpoint, pixels, [[piece] for piece in ids], settings, 42, Session(runtime=runtime))
    seconds = time.perf_counter() - start
    steps_per_epoch = len(losses) // epochs
    return {"device": str(runtime.device), "autocast": str(runtime.dtype), "steps": len(losses),
            "first_epoch_loss": sum(losses[:steps_per_epoch]) / steps_per_epoch,
            "last_epoch_loss": sum(losses[-steps_per_epoch:]) / steps_per_epoch,
            "all_finite": all(torch.isfinite(torch.tensor(losses)).tolist()),
            "pairs_per_s": round(len(losses) * settings.batch_size / seconds, 1)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--items", type=int, default=300)
    parser.add_argument("--epochs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        generate_synthetic(raw, n_items=args.items, seed=42)
        device = "cuda" if torch.cuda.is_available() else "cpu"
        results = {"gpu": torch.cuda.get_device_name() if device == "cuda" else None,
                   "torch": torch.__version__,
                   "runs": [run(p, device, raw, args.epochs) for p in ("fp32", "bf16", "fp16")]}
    text = json.dumps(results, indent=2)
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
