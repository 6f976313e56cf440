"""Re-ranking cost per candidate: the pooled pair scorer, the token-level scorer (`xattn.features: tokens`)
and late interaction (MaxSim), at the default model's sizes or ViT-B/32's (`--size vit-b-32`); prints JSON.

A query re-ranks `rerank_k` candidates, so one call scores that many pairs. What is timed is the scorer
alone on ready-made inputs (the token states of the candidates are given, as if the index stored
them); `--recompute` adds the cost of computing the candidates' image token states with the CLIP
vision tower of that size, as the search service does. The cost does not depend on the weights, so
the scorers and towers are freshly initialised. Times are medians of `--repeats` calls after a warm-up,
in ms per candidate; CPU time beside wall time, because the machine this runs on is often shared.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time

import torch

from dataclasses import dataclass

from transformers import CLIPConfig, CLIPModel

from fashion_search.config import TinyModelSettings
from fashion_search.models.clip import Encoded, build_tiny, image_states
from fashion_search.models.late_interaction import LateInteraction
from fashion_search.models.xattn import new_scorer
from fashion_search.text import build_tokenizer

TINY = TinyModelSettings(embed_dim=128, layers=3, heads=4, image_size=64, patch_size=16, vocab_size=1000)


@dataclass(frozen=True)
class Size:
    width: int             # the joint embedding space: what the scorer reads
    image_size: int
    patch_size: int
    text_lengths: dict[str, int]

    @property
    def image_tokens(self) -> int:
        return 1 + (self.image_size // self.patch_size) ** 2


SIZES = {
    # the default's tiny CLIP: the mean caption length on the default test split, and a short query
    "tiny": Size(TINY.embed_dim, TINY.image_size, TINY.patch_size, {"caption": 59, "shopper_query": 8}),
    # openai/clip-vit-base-patch32: 512 wide (its vision tower 768), 50 image tokens, captions at the 77-token limit
    "vit-b-32": Size(512, 224, 32, {"caption": 77, "shopper_query": 8}),
}


def vision_tower(name: str) -> CLIPModel:
    """A CLIP of the size's shape, randomly initialised; only its vision tower runs here."""
    if name == "tiny":
        return build_tiny(TINY, build_tokenizer(["a red dress"], 300, 77), 77, seed=0).model
    torch.manual_seed(0)
    vision = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                  image_size=224, patch_size=32)
    text = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=1, num_attention_heads=1)  # unused
    return CLIPModel(CLIPConfig(text_config=text, vision_config=vision, projection_dim=512))


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
    parser.add_argument("--size", choices=sorted(SIZES), default="tiny",
                        help="the default's tiny CLIP, or ViT-B/32 (slow on a CPU: use few --repeats)")
    args = parser.parse_args()
    torch.manual_seed(0)
    size = SIZES[args.size]
    device, k, dim, image_tokens = torch.device(args.device), args.rerank_k, size.width, size.image_tokens
    scorers = {"pooled": new_scorer(dim, 6, 8, 0.1, seed=42).to(device).eval(),
               "tokens": new_scorer(dim, 6, 8, 0.1, seed=42, features="tokens").to(device).eval(),
               "late_interaction": LateInteraction()}
    images = Encoded(torch.randn(k, dim, device=device), torch.randn(k, image_tokens, dim, device=device))
    results = {}
    for text_kind, length in size.text_lengths.items():
        text = Encoded(torch.randn(k, dim, device=device), torch.randn(k, length, dim, device=device),
                       torch.ones(k, length, dtype=torch.bool, device=device))
        for name, scorer in scorers.items():
            with torch.inference_mode():
                seconds = timed(lambda: scorer(images, text), args.repeats)
            results[f"{name}/{text_kind}"] = {f"ms_per_candidate_{kind}": round(1000 * value / k, 4)
                                             for kind, value in seconds.items()}
    if args.recompute:
        model = vision_tower(args.size).to(device).eval()
        pixels = torch.randn(k, 3, size.image_size, size.image_size, device=device)
        with torch.inference_mode():
            seconds = timed(lambda: image_states(model, pixels), args.repeats)
        results["recompute_image_tokens"] = {f"ms_per_candidate_{kind}": round(1000 * value / k, 4)
                                             for kind, value in seconds.items()}
    print(json.dumps({"device": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor()
                      or platform.machine(), "threads": torch.get_num_threads(), "cpus": os.cpu_count(),
                      "size": args.size, "rerank_k": k, "image_tokens": image_tokens, "text_tokens": size.text_lengths,
                      "scorer": {"width": dim, "layers": 6, "heads": 8}, "results": results}, indent=2))


if __name__ == "__main__":
    main()
