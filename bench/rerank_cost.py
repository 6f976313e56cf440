"""Re-ranking cost per candidate: the pooled pair scorer, the token-level scorer (`xattn.features: tokens`)
and late interaction (MaxSim), at the default model's sizes; prints JSON.

A query re-ranks `rerank_k` candidates, so one call scores that many pairs. What is timed is the scorer
alone on ready-made inputs (the token states of the candidates are given, as when the index stores
them); `--recompute` adds the cost of computing the candidates' image token states with the tiny CLIP's
vision tower, the other way the serve path could get them. The cost does not depend on the weights, so
the scorers are freshly initialised. Times are medians of `--repeats` calls after a warm-up, in ms per
candidate; CPU time beside wall time, because the machine this runs on is often shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from fashion_search.config import TinyModelSettings
from fashion_search.models.clip import Encoded, build_tiny, image_states
from fashion_search.models.late_interaction import LateInteraction
from fashion_search.models.xattn import new_scorer
from fashion_search.text import build_tokenizer

TINY = TinyModelSettings(embed_dim=128, layers=3, heads=4, image_size=64, patch_size=16, vocab_size=1000)
TEXT_LENGTHS = {"caption": 59, "shopper_query": 8}  # mean caption tokens on the default test split; a short query


def timed(call, repeats: int) -> dict[str, float]:
    """Median wall and CPU seconds of `call()` over `repeats` calls after one warm-up."""
    call()
    wall, cpu = [], []
    for _ in range(repeats):
        start_wall, start_cpu = time.perf_counter(), time.process_time()
        call()
        if torch.cuda.is_available():
            torch.cuda.synchronize()
        wall.append(time.perf_counter() - start_wall)
        cpu.append(time.process_time() - start_cpu)
    return {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rerank-k", type=int, default=20)
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--recompute", action="store_true", help="time computing the candidates' image tokens too")
    args = parser.parse_args()
    torch.manual_seed(0)
    device, k, dim = torch.device(args.device), args.rerank_k, TINY.embed_dim
    image_tokens = 1 + (TINY.image_size // TINY.patch_size) ** 2
    scorers = {"pooled": new_scorer(dim, 6, 8, 0.1, seed=42).to(device).eval(),
               "tokens": new_scorer(dim, 6, 8, 0.1, seed=42, features="tokens").to(device).eval(),
               "late_interaction": LateInteraction()}
    images = Encoded(torch.randn(k, dim, device=device), torch.randn(k, image_tokens, dim, device=device))
    results = {}
    for text_kind, length in TEXT_LENGTHS.items():
        text = Encoded(torch.randn(k, dim, device=device), torch.randn(k, length, dim, device=device),
                       torch.ones(k, length, dtype=torch.bool, device=device))
        for name, scorer in scorers.items():
            with torch.inference_mode():
                seconds = timed(lambda: scorer(images, text), args.repeats)
            results[f"{name}/{text_kind}"] = {f"ms_per_candidate_{kind}": round(1000 * value / k, 4)
                                             for kind, value in seconds.items()}
    if args.recompute:
        tokenizer = build_tokenizer(["a red dress"], 300, 77)
        model = build_tiny(TINY, tokenizer, 77, seed=0).model.to(device).eval()
        pixels = torch.randn(k, 3, TINY.image_size, TINY.image_size, device=device)
        with torch.inference_mode():
            seconds = timed(lambda: image_states(model, pixels), args.repeats)
        results["recompute_image_tokens"] = {f"ms_per_candidate_{kind}": round(1000 * value / k, 4)
                                             for kind, value in seconds.items()}
    print(json.dumps({"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                      or platform.machine(), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "rerank_k": k, "image_tokens": image_tokens, "text_tokens": TEXT_LENGTHS,
                      "scorer": {"width": dim, "layers": 6, "heads": 8}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
