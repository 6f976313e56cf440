"""Embedding throughput: images/s and texts/s of fashion_search/embedding.py against the bare forward; prints JSON.

`embed_images` reads the memory-mapped image cache through a PixelView, as the evaluate and index
stages do, and `embed_texts` pads tokenized captions; the bare forward gets the same batches ready-made
(pixels normalised, text padded) and calls get_image_features / get_text_features only. Same process,
same batch size, inference_mode, repeats interleaved (order reversed every other round) so load changes
on the shared machine hit both alike; the ratio of medians, and the median of each round's own ratio,
say what the pipeline costs (target >= 0.90). With --compile the embedding
also runs with runtime.compile on (both towers compiled in place): its first call, which compiles,
is timed on its own (without inductor's on-disk cache unless --warm-cache), then its steady state is
interleaved with the rest.
"""

from __future__ import annotations

import argparse
import copy
import dataclasses
import json
import os
import platform
import statistics
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch._inductor.config
from transformers import CLIPConfig, CLIPModel

from fashion_search.config import load_params, section
from fashion_search.data.pairs import build_pairs
from fashion_search.data.synthetic import generate_synthetic
from fashion_search.device import Runtime, pick_runtime
from fashion_search.embedding import embed_images, embed_texts
from fashion_search.image_cache import PixelView, build_cache, open_cache
from fashion_search.models.clip import Checkpoint, build_tiny, image_embeddings, text_embeddings, tiny_processor
from fashion_search.text import build_tokenizer, encode, pad_batch

MAX_TOKENS = 77
# Spelled out rather than trusting CLIPConfig() defaults, as in bench/gpu_check.py.
VIT_B32_VISION = dict(hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
                      image_size=224, patch_size=32)
VIT_B32_TEXT = dict(hidden_size=512, intermediate_size=2048, num_hidden_layers=12, num_attention_heads=8,
                    max_position_embeddings=MAX_TOKENS)


@dataclass
class Case:
    """One model and the inputs it embeds: cached pixels and each caption as one piece of token ids."""

    name: str
    checkpoint: Checkpoint
    pixels: PixelView
    captions: list[list[list[int]]]


def vit_b32_checkpoint(tokenizer) -> Checkpoint:
    """CLIP ViT-B/32's shape with random weights; the speed does not depend on the weights."""
    special = {"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
               "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id}
    config = CLIPConfig(text_config={**VIT_B32_TEXT, **special}, vision_config=VIT_B32_VISION, projection_dim=512)
    torch.manual_seed(0)
    return Checkpoint(CLIPModel(config).eval(), tokenizer, tiny_processor(224), {"trained_from": "random"})


def make_case(name: str, raw: Path, work: Path, count: int, fit: str) -> Case:
    """The first `count` pairs of the synthetic set, cached at the model's image size."""
    pairs = build_pairs(raw)[0].head(count)
    tiny = section(load_params(), "model").tiny
    tokenizer = build_tokenizer(pairs["caption"], tiny.vocab_size, MAX_TOKENS)
    checkpoint = (build_tiny(tiny, tokenizer, MAX_TOKENS, seed=42) if name == "tiny"
                  else vit_b32_checkpoint(tokenizer))
    names = pairs["image"].tolist()
    build_cache(names, raw / "images", checkpoint.pixel_spec.size, fit, work / name)
    captions = [[ids] for ids in encode(tokenizer, pairs["caption"].tolist(), MAX_TOKENS)[0]]
    return Case(name, checkpoint, open_cache(work / name, names, checkpoint.pixel_spec, fit), captions)


def per_second(items: int, run: Callable[[], object]) -> float:
    start = time.perf_counter()
    run()
    return items / (time.perf_counter() - start)


def bare_images(case: Case, batch_size: int) -> Callable[[], object]:
    """get_image_features only, on normalised batches made beforehand."""
    model, spec = case.checkpoint.model.eval(), case.checkpoint.pixel_spec
    prepared = [spec.normalise(case.pixels[start:start + batch_size])
                for start in range(0, len(case.pixels), batch_size)]
    return torch.inference_mode()(lambda: [image_embeddings(model, batch) for batch in prepared])


def bare_texts(case: Case, batch_size: int) -> Callable[[], object]:
    """get_text_features only, on padded batches made beforehand."""
    model, pad_id = case.checkpoint.model.eval(), case.checkpoint.pad_id
    prepared = [pad_batch([caption[0] for caption in case.captions[start:start + batch_size]], pad_id)
                for start in range(0, len(case.captions), batch_size)]
    return torch.inference_mode()(lambda: [text_embeddings(model, ids, mask) for ids, mask in prepared])


def runners(case: Case, batch_size: int, compiled: Runtime | None) -> dict[str, tuple[int, Callable[[], object]]]:
    """Every measured variant: (items per run, the run)."""
    eager = pick_runtime("cpu")
    images, texts = len(case.pixels), len(case.captions)
    found = {
        "bare_images": (images, bare_images(case, batch_size)),
        "embed_images": (images, lambda: embed_images(case.checkpoint, case.pixels, batch_size, eager)),
        "bare_texts": (texts, bare_texts(case, batch_size)),
        "embed_texts": (texts, lambda: embed_texts(case.checkpoint, case.captions, batch_size, eager)),
    }
    if compiled is not None:  # a copy: compiling is in place and would speed up the eager variants too
        checkpoint = dataclasses.replace(case.checkpoint, model=copy.deepcopy(case.checkpoint.model))
        found["compiled_images"] = (images, lambda: embed_images(checkpoint, case.pixels, batch_size, compiled))
        found["compiled_texts"] = (texts, lambda: embed_texts(checkpoint, case.captions, batch_size, compiled))
    return found


def spread(values: list[float]) -> dict[str, object]:
    return {"median": round(statistics.median(values), 1), "min": round(min(values), 1),
            "max": round(max(values), 1), "runs": [round(v, 1) for v in values]}


def paired_ratios(pipeline: list[float], bare: list[float]) -> dict[str, object]:
    """Each round's own ratio: both ran back to back, so a slow minute on the shared machine mostly cancels."""
    ratios = [p / b for p, b in zip(pipeline, bare)]
    return {"median": round(statistics.median(ratios), 3), "min": round(min(ratios), 3),
            "max": round(max(ratios), 3), "runs": [round(r, 3) for r in ratios]}


def measure(case: Case, batch_size: int, repeats: int, compile_too: bool) -> dict[str, object]:
    """First calls (the compiled ones compile then), then `repeats` interleaved rounds of every variant."""
    compiled = pick_runtime("cpu", compile=True) if compile_too else None
    variants = runners(case, batch_size, compiled)
    first_call_s = {}
    for name, (_, run) in variants.items():  # warm-up; for the compiled variants this is the compile
        start = time.perf_counter()
        run()
        first_call_s[name] = round(time.perf_counter() - start, 2)
    rates: dict[str, list[float]] = {name: [] for name in variants}
    for round_ in range(repeats):
        order = list(variants) if round_ % 2 == 0 else list(reversed(variants))  # no variant always goes first
        for name in order:
            items, run = variants[name]
            rates[name].append(per_second(items, run))
    medians = {name: statistics.median(values) for name, values in rates.items()}
    result: dict[str, object] = {
        "images": len(case.pixels), "texts": len(case.captions), "batch_size": batch_size,
        "per_second": {name: spread(values) for name, values in rates.items()},
        "first_call_s": first_call_s,
        "ratio_images": round(medians["embed_images"] / medians["bare_images"], 3),
        "ratio_texts": round(medians["embed_texts"] / medians["bare_texts"], 3),
        "ratio_images_per_round": paired_ratios(rates["embed_images"], rates["bare_images"]),
        "ratio_texts_per_round": paired_ratios(rates["embed_texts"], rates["bare_texts"]),
    }
    if compile_too:
        result["compiled_speedup_images"] = round(medians["compiled_images"] / medians["embed_images"], 3)
        result["compiled_speedup_texts"] = round(medians["compiled_texts"] / medians["embed_texts"], 3)
        # The first call less one steady-state call: what compiling (and recompiling for new shapes) cost.
        result["compile_s"] = {name: round(first_call_s[name] - variants[name][0] / medians[name], 1)
                               for name in ("compiled_images", "compiled_texts")}
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    # Not multiples of the batch size: the last, smaller batch makes a compiled tower recompile, as in the stages.
    parser.add_argument("--tiny-pairs", type=int, default=1000)
    parser.add_argument("--vit-pairs", type=int, default=250)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--models", nargs="+", default=["tiny", "vit_b32"], choices=["tiny", "vit_b32"])
    parser.add_argument("--compile", action="store_true", help="also measure runtime.compile on")
    parser.add_argument("--warm-cache", action="store_true",
                        help="let inductor reuse its on-disk cache, as a rerun on the same machine would")
    args = parser.parse_args()
    # By default every compile starts from scratch, as on a fresh machine (the cache cut 25 s to 4 s here).
    torch._inductor.config.force_disable_caches = not args.warm_cache
    params = load_params()
    batch_size, fit = section(params, "evaluate").batch_size, section(params, "image").fit
    counts = {"tiny": args.tiny_pairs, "vit_b32": args.vit_pairs}
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        raw = Path(tmp) / "raw"
        generate_synthetic(raw, n_items=max(counts.values()) // 2, seed=42)  # 2-5 views per item
        for name in args.models:
            case = make_case(name, raw, Path(tmp), counts[name], fit)
            results[name] = measure(case, batch_size, args.repeats, args.compile)
    print(json.dumps({
        "machine": {"cpus": os.cpu_count(), "threads": torch.get_num_threads(), "platform": platform.platform(),
                    "torch": torch.__version__, "load_average": os.getloadavg()},
        "models": {"tiny": "params.yaml model.tiny", "vit_b32": "CLIP ViT-B/32 shape, random weights"},
        "inductor_cache": "warm" if args.warm_cache else "disabled", "results": results, "target_ratio": 0.9},
        indent=2))


if __name__ == "__main__":
    main()
