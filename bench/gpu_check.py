"""GPU throughput check for CLIP ViT-B/32 fine-tuning and embedding.

Standalone on purpose: the GPU machine has only torch and transformers, no
network and no `fashion_search` package, so everything needed lives here.
Weights are random because throughput does not depend on their values and
nothing may be downloaded there.

Phases (each time-boxed, each recorded even if another one fails):
  train          symmetric InfoNCE + AdamW step        -> pairs_per_s
  image_embed    vision tower + projection, inference  -> images_per_s
  text_embed     text tower + projection, inference    -> texts_per_s
  image_compiled torch.compile of image_embed          -> images_per_s

Run `python bench/gpu_check.py --smoke` on a CPU to check the code path.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import platform
import sys
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
import transformers
from torch import nn
from transformers import CLIPConfig, CLIPModel

TARGET_TRAIN_PAIRS_PER_S = 1500.0
TARGET_IMAGES_PER_S = 8000.0
TEMPERATURE = 0.1
TEXT_LENGTH = 77

# Spelled out rather than trusting CLIPConfig() defaults, which could drift
# between transformers releases (the GPU machine runs a different one).
VIT_B32_VISION = dict(
    hidden_size=768, intermediate_size=3072, num_hidden_layers=12,
    num_attention_heads=12, image_size=224, patch_size=32,
)
VIT_B32_TEXT = dict(
    hidden_size=512, intermediate_size=2048, num_hidden_layers=12,
    num_attention_heads=8, max_position_embeddings=77, vocab_size=49408,
    bos_token_id=49406, eos_token_id=49407,
)
# Small enough that a CPU runs every phase in seconds; token ids kept inside
# the vocabulary so the text tower's EOS pooling behaves as in the real model.
SMOKE_VISION = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=2, image_size=32, patch_size=8,
)
SMOKE_TEXT = dict(
    hidden_size=32, intermediate_size=64, num_hidden_layers=2,
    num_attention_heads=2, max_position_embeddings=77, vocab_size=100,
    bos_token_id=98, eos_token_id=99, pad_token_id=0,
)


# ---------------------------------------------------------------- arguments

def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Flags default to the real H100 check; --smoke shrinks everything."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=Path("bench/gpu_check.json"))
    parser.add_argument("--smoke", action="store_true",
                        help="tiny model, float32, batch 4, a few steps (CPU check)")
    parser.add_argument("--train-batch", type=int, default=256)
    parser.add_argument("--embed-batch", type=int, default=1024)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="target length of each phase's timed region")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps per phase")
    parser.add_argument("--max-steps", type=int, default=2000,
                        help="cap on timed steps per phase")
    parser.add_argument("--lr", type=float, default=1e-5)
    parser.add_argument("--dtype", choices=["bf16", "fp32"], default=None,
                        help="autocast dtype; default bf16 on CUDA, fp32 otherwise")
    parser.add_argument("--sdpa", action=argparse.BooleanOptionalAction, default=True,
                        help="attn_implementation='sdpa' (falls back to eager)")
    parser.add_argument("--tf32", action=argparse.BooleanOptionalAction, default=True,
                        help="allow TF32 for fp32 matmuls/convolutions")
    parser.add_argument("--compile", action=argparse.BooleanOptionalAction, default=None,
                        help="also measure torch.compile of the image embedder; default on with CUDA")
    parser.add_argument("--phases", default="train,image_embed,text_embed,image_compiled",
                        help="comma-separated subset of phases to run")
    args = parser.parse_args(argv)
    return apply_defaults(args)


def apply_defaults(args: argparse.Namespace) -> argparse.Namespace:
    """Resolve defaults that depend on the device and on --smoke."""
    has_cuda = torch.cuda.is_available()
    args.device = "cuda" if has_cuda else "cpu"
    if args.smoke:
        args.train_batch, args.embed_batch = 4, 4
        args.warmup, args.max_steps = 1, 3
        args.seconds = min(args.seconds, 2.0)
        args.dtype = args.dtype or "fp32"
    if args.dtype is None:
        args.dtype = "bf16" if has_cuda else "fp32"
    if args.compile is None:
        args.compile = has_cuda
    return args


# -------------------------------------------------------------------- model

def build_model(smoke: bool, use_sdpa: bool, device: str) -> CLIPModel:
    """Random-weight CLIP; sdpa when this transformers version accepts it."""
    vision, text = (SMOKE_VISION, SMOKE_TEXT) if smoke else (VIT_B32_VISION, VIT_B32_TEXT)
    config = CLIPConfig(text_config=dict(text), vision_config=dict(vision),
                        projection_dim=16 if smoke else 512)
    requested = "sdpa" if use_sdpa else "eager"
    try:
        model = CLIPModel._from_config(config, attn_implementation=requested)
    except (ValueError, ImportError, TypeError) as error:
        print(f"attn_implementation={requested!r} refused ({error}); using default")
        model = CLIPModel(config)
    return model.to(device)


def describe_model(model: CLIPModel) -> dict[str, Any]:
    """Record the architecture actually built, so a wrong config shows in the JSON."""
    vision, text = model.config.vision_config, model.config.text_config
    return {
        "attn_implementation": getattr(model.config, "_attn_implementation", None),
        "parameters_m": round(sum(p.numel() for p in model.parameters()) / 1e6, 2),
        "vision": {key: getattr(vision, key) for key in VIT_B32_VISION},
        "text": {key: getattr(text, key) for key in
                 ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")},
        "projection_dim": model.config.projection_dim,
    }


def pooled(output: Any) -> torch.Tensor:
    """Projected embedding from get_*_features, whichever type it returns.

    transformers 5 returns an output object whose pooler_output is already
    projected; older releases returned the tensor itself.
    """
    return output if isinstance(output, torch.Tensor) else output.pooler_output


class ImageEmbedder(nn.Module):
    """Vision tower + projection only, the unit that search indexing runs."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.vision_model = model.vision_model
        self.visual_projection = model.visual_projection

    def forward(self, pixel_values: torch.Tensor) -> torch.Tensor:
        return self.visual_projection(self.vision_model(pixel_values=pixel_values).pooler_output)


class TextEmbedder(nn.Module):
    """Text tower + projection only, the unit that query encoding runs."""

    def __init__(self, model: CLIPModel) -> None:
        super().__init__()
        self.text_model = model.text_model
        self.text_projection = model.text_projection

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        output = self.text_model(input_ids=input_ids, attention_mask=attention_mask)
        return self.text_projection(output.pooler_output)


# --------------------------------------------------------------------- data

def random_pixels(model: CLIPModel, batch: int, device: str) -> torch.Tensor:
    """Normalised-looking pixels at the model's own resolution."""
    size = model.config.vision_config.image_size
    return torch.randn(batch, 3, size, size, device=device)


def random_texts(model: CLIPModel, batch: int, device: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Padded token batches of varied length ending in EOS, like tokenised captions.

    Real captions are padded to 77 with a mask, which changes the attention
    kernels used, so the mask is not all ones.
    """
    text = model.config.text_config
    lengths = torch.randint(8, TEXT_LENGTH + 1, (batch,), device=device)
    positions = torch.arange(TEXT_LENGTH, device=device).expand(batch, -1)
    attention_mask = (positions < lengths[:, None]).long()
    input_ids = torch.randint(1, text.vocab_size - 2, (batch, TEXT_LENGTH), device=device)
    input_ids = torch.where(attention_mask.bool(), input_ids, torch.zeros_like(input_ids))
    input_ids[:, 0] = text.bos_token_id
    input_ids.scatter_(1, (lengths - 1)[:, None], text.eos_token_id)
    return input_ids, attention_mask


# ------------------------------------------------------------------- timing

def synchronize(device: str) -> None:
    """Wait for queued kernels so wall-clock time covers the work."""
    if device == "cuda":
        torch.cuda.synchronize()


def autocast(device: str, dtype: str) -> contextlib.AbstractContextManager:
    """bf16 autocast on request; fp32 needs no context at all."""
    if dtype == "bf16":
        return torch.autocast(device_type=device, dtype=torch.bfloat16)
    return contextlib.nullcontext()


def reset_memory(device: str) -> None:
    """Make each phase's peak memory its own, not the previous phase's."""
    if device == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def peak_memory_gib(device: str) -> float | None:
    """Peak allocated by tensors during the phase (None off CUDA)."""
    if device != "cuda":
        return None
    return round(torch.cuda.max_memory_allocated() / 2**30, 3)


def time_steps(step: Callable[[], Any], steps: int, device: str) -> float:
    """Seconds for `steps` calls, synchronising only at the edges."""
    synchronize(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    synchronize(device)
    return time.perf_counter() - start


def measure(step: Callable[[], Any], batch: int, args: argparse.Namespace) -> dict[str, Any]:
    """Warm up, size the timed run from one probe step, then time it.

    Sizing from a probe keeps each phase near --seconds without a per-step
    sync or .item(), which would stall the GPU queue and understate speed.
    """
    first_call_s = time_steps(step, 1, args.device)
    if args.warmup > 1:
        time_steps(step, args.warmup - 1, args.device)
    probe_s = time_steps(step, 1, args.device)
    steps = max(1, min(args.max_steps, int(args.seconds / max(probe_s, 1e-6))))
    elapsed = time_steps(step, steps, args.device)
    return {
        "batch": batch,
        "first_call_s": round(first_call_s, 3),
        "timed_steps": steps,
        "timed_s": round(elapsed, 3),
        "step_ms": round(1000 * elapsed / steps, 3),
        "items_per_s": round(batch * steps / elapsed, 1),
    }


# ------------------------------------------------------------------- phases

def info_nce(image_embeds: torch.Tensor, text_embeds: torch.Tensor) -> torch.Tensor:
    """Symmetric InfoNCE over cosine similarity, the fine-tuning objective."""
    image_embeds = F.normalize(image_embeds.float(), dim=-1)
    text_embeds = F.normalize(text_embeds.float(), dim=-1)
    logits = image_embeds @ text_embeds.T / TEMPERATURE
    labels = torch.arange(logits.shape[0], device=logits.device)
    return (F.cross_entropy(logits, labels) + F.cross_entropy(logits.T, labels)) / 2


def make_optimizer(model: CLIPModel, args: argparse.Namespace) -> torch.optim.Optimizer:
    """Fused AdamW on CUDA (one kernel for all params); plain AdamW elsewhere."""
    fused = args.device == "cuda"
    try:
        return torch.optim.AdamW(model.parameters(), lr=args.lr, fused=fused)
    except (RuntimeError, TypeError):
        return torch.optim.AdamW(model.parameters(), lr=args.lr)


def run_train(model: CLIPModel, args: argparse.Namespace) -> dict[str, Any]:
    """Full fine-tuning step: both towers forward, loss, backward, AdamW."""
    model.train()
    optimizer = make_optimizer(model, args)
    pixels = random_pixels(model, args.train_batch, args.device)
    input_ids, attention_mask = random_texts(model, args.train_batch, args.device)
    losses: list[torch.Tensor] = []

    def step() -> None:
        with autocast(args.device, args.dtype):
            image_embeds = pooled(model.get_image_features(pixel_values=pixels))
            text_embeds = pooled(model.get_text_features(input_ids=input_ids,
                                                         attention_mask=attention_mask))
        # Outside autocast so the similarity matmul really runs in fp32.
        loss = info_nce(image_embeds, text_embeds)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        losses.append(loss.detach())

    result = measure(step, args.train_batch, args)
    last_loss = losses[-1].item()  # one sync after timing, not per step
    result.update(pairs_per_s=result.pop("items_per_s"), optimizer_fused=_is_fused(optimizer),
                  last_loss=round(last_loss, 4), loss_finite=bool(torch.isfinite(losses[-1])))
    del optimizer
    model.zero_grad(set_to_none=True)
    return result


def _is_fused(optimizer: torch.optim.Optimizer) -> bool:
    return bool(optimizer.defaults.get("fused"))


def run_image_embed(embedder: nn.Module, model: CLIPModel,
                    args: argparse.Namespace) -> dict[str, Any]:
    """Inference throughput of the image side (catalogue indexing)."""
    pixels = random_pixels(model, args.embed_batch, args.device)

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(args.device, args.dtype):
            return embedder(pixels)

    result = measure(step, args.embed_batch, args)
    result["images_per_s"] = result.pop("items_per_s")
    return result


def run_text_embed(model: CLIPModel, args: argparse.Namespace) -> dict[str, Any]:
    """Inference throughput of the text side (query and caption encoding)."""
    embedder = TextEmbedder(model).eval()
    input_ids, attention_mask = random_texts(model, args.embed_batch, args.device)

    def step() -> torch.Tensor:
        with torch.inference_mode(), autocast(args.device, args.dtype):
            return embedder(input_ids, attention_mask)

    result = measure(step, args.embed_batch, args)
    result["texts_per_s"] = result.pop("items_per_s")
    return result


def run_image_compiled(model: CLIPModel, args: argparse.Namespace) -> dict[str, Any]:
    """Same as image_embed through torch.compile; first_call_s includes compiling."""
    compiled = torch.compile(ImageEmbedder(model).eval(), dynamic=False)
    return run_image_embed(compiled, model, args)


# ------------------------------------------------------------------ reports

def environment(args: argparse.Namespace) -> dict[str, Any]:
    """What ran where, so numbers from different cards are never mixed up."""
    cuda = args.device == "cuda"
    return {
        "device": args.device,
        "device_name": torch.cuda.get_device_name(0) if cuda else platform.processor() or "cpu",
        "device_memory_gib": (round(torch.cuda.get_device_properties(0).total_memory / 2**30, 1)
                              if cuda else None),
        "torch": torch.__version__,
        "torch_cuda": torch.version.cuda,
        "transformers": transformers.__version__,
        "python": platform.python_version(),
        "smoke": args.smoke,
        "dtype": args.dtype,
        "tf32": args.tf32,
        "train_batch": args.train_batch,
        "embed_batch": args.embed_batch,
        "seconds_per_phase": args.seconds,
        "warmup_steps": args.warmup,
        "temperature": TEMPERATURE,
        "text_length": TEXT_LENGTH,
    }


def verdict(report: dict[str, Any]) -> dict[str, Any]:
    """Targets apply to the full model on a GPU; a smoke run meets nothing."""
    phases = report["phases"]
    pairs = phases.get("train", {}).get("pairs_per_s")
    images = phases.get("image_embed", {}).get("images_per_s")
    real = not report["env"]["smoke"] and report["env"]["device"] == "cuda"
    return {
        "targets": {"train_pairs_per_s": TARGET_TRAIN_PAIRS_PER_S,
                    "images_per_s": TARGET_IMAGES_PER_S, "measured_on": "H100"},
        "pairs_per_s": pairs,
        "images_per_s": images,
        "texts_per_s": phases.get("text_embed", {}).get("texts_per_s"),
        "compiled_images_per_s": phases.get("image_compiled", {}).get("images_per_s"),
        "train_target_met": (pairs >= TARGET_TRAIN_PAIRS_PER_S) if real and pairs else None,
        "image_target_met": (images >= TARGET_IMAGES_PER_S) if real and images else None,
    }


def write_json(report: dict[str, Any], path: Path) -> None:
    """Atomic write, so a run cut off by the time limit leaves valid JSON."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(report, indent=2) + "\n")
    os.replace(tmp, path)


@contextlib.contextmanager
def phase(report: dict[str, Any], name: str, args: argparse.Namespace) -> Iterator[dict]:
    """Run one phase; record its error instead of losing the other phases."""
    print(f"--- {name}", flush=True)
    reset_memory(args.device)
    record: dict[str, Any] = {}
    start = time.perf_counter()
    try:
        yield record
    except Exception as error:  # noqa: BLE001 - one failed phase must not end the check
        record["error"] = f"{type(error).__name__}: {error}"
        record["traceback"] = traceback.format_exc(limit=6)
        print(record["traceback"], file=sys.stderr, flush=True)
    record["peak_memory_gib"] = peak_memory_gib(args.device)
    record["phase_wall_s"] = round(time.perf_counter() - start, 2)
    report["phases"][name] = record
    report["summary"] = verdict(report)
    write_json(report, args.out)
    print(json.dumps(record), flush=True)


# --------------------------------------------------------------------- main

def configure_backends(args: argparse.Namespace) -> None:
    """TF32 only touches fp32 matmuls left outside bf16 autocast."""
    if args.tf32:
        torch.set_float32_matmul_precision("high")
        torch.backends.cudnn.allow_tf32 = True


def main(argv: list[str] | None = None) -> int:
    """Run the selected phases in order and write the report after each one."""
    args = parse_args(argv)
    report: dict[str, Any] = {"env": environment(args), "phases": {}}
    report["summary"] = verdict(report)
    if args.device != "cuda" and not args.smoke:
        report["error"] = "CUDA not available; use --smoke for a CPU check"
        write_json(report, args.out)
        print(report["error"], file=sys.stderr)
        return 2
    configure_backends(args)
    torch.manual_seed(0)
    model = build_model(args.smoke, args.sdpa, args.device)
    report["model"] = describe_model(model)
    print(json.dumps(report["env"] | {"model": report["model"]}), flush=True)

    wanted = {name.strip() for name in args.phases.split(",")}
    if "train" in wanted:
        with phase(report, "train", args) as record:
            record.update(run_train(model, args))
    model.zero_grad(set_to_none=True)  # frees gradients even if training failed
    model.eval()
    if "image_embed" in wanted:
        with phase(report, "image_embed", args) as record:
            record.update(run_image_embed(ImageEmbedder(model).eval(), model, args))
    if "text_embed" in wanted:
        with phase(report, "text_embed", args) as record:
            record.update(run_text_embed(model, args))
    if "image_compiled" in wanted and args.compile:
        with phase(report, "image_compiled", args) as record:
            record.update(run_image_compiled(model, args))

    print(json.dumps(report["summary"], indent=2))
    print(f"wrote {args.out}")
    failed = [name for name, record in report["phases"].items() if "error" in record]
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
