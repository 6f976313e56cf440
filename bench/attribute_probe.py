"""What limits the default model on shopper queries: can its vision tower see the attributes? Prints JSON.

Run after `make repro`, from the repository root: `python bench/attribute_probe.py [--out FILE]`.

1. Linear probes (evaluate/probe.py) of each trained model's image embeddings, fitted on the
   train split, scored on the validation split, beside the majority answer.
2. The same tiny vision tower trained on the attribute labels alone (the attribute heads of
   train/heads.py, the train_baseline optimiser settings, `--epochs` passes over the training
   images, with and without train/augment.py): what this architecture learns from these
   images when told every label, on the training images themselves and on unseen products.
   With `--cnn`, a small convolutional network trained the same way (augmented) beside it.
3. Shopper precision@10 of the baseline on a gallery of training images against the validation
   gallery, with each gallery's base rate: what the model learned, against what generalises.

Deterministic on one machine (seed 42); another CPU may differ in the last digits.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from transformers import get_scheduler

from fashion_search.config import load_params, section, seed
from fashion_search.data.attributes import COLUMNS as ATTRIBUTE_COLUMNS
from fashion_search.data.attributes import image_attributes
from fashion_search.data.pairs import read_pairs
from fashion_search.embedding import embed_images
from fashion_search.evaluate.pipeline import ShopperGallery, TestGallery, shopper_scores
from fashion_search.evaluate.shopper import evaluate_families
from fashion_search.evaluate.probe import probe_attributes
from fashion_search.image_cache import open_cache
from fashion_search.models import MODELS
from fashion_search.models.clip import build_tiny, image_embeddings
from fashion_search.models.loader import load_model
from fashion_search.text import load_tokenizer
from fashion_search.train.augment import augment, batch_generator
from fashion_search.train.heads import AttributeHeads

# every attribute but the outer layer's (a fifth of the images wear one: too few for a split's probe)
COLUMNS = tuple(column for column in ATTRIBUTE_COLUMNS if not column.startswith("outer_"))
RAW, CACHE, SPLITS = Path("data/raw"), Path("data/cache/images"), Path("data/processed")


def codes(attributes: pd.DataFrame, vocab: dict[str, dict[str, int]]) -> torch.Tensor:
    """(images, columns) value codes; -1 where the labels say nothing or the train split never shows the value."""
    return torch.tensor([[vocab[c].get(v, -1) if isinstance(v, str) else -1 for c, v in zip(COLUMNS, row)]
                         for row in attributes[list(COLUMNS)].itertuples(index=False)], dtype=torch.long)


def small_cnn(dim: int) -> nn.Module:
    """A reference encoder with a locality prior (four conv blocks, batch norm): not a CLIP tower, and not
    something this project can serve (a CLIP checkpoint's vision tower is a ViT); it asks whether the
    attributes are learnable from these few images at all."""
    def block(i: int, o: int) -> nn.Sequential:
        return nn.Sequential(nn.Conv2d(i, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(),
                             nn.Conv2d(o, o, 3, padding=1), nn.BatchNorm2d(o), nn.ReLU(), nn.MaxPool2d(2))
    return nn.Sequential(block(3, 32), block(32, 64), block(64, 128), block(128, 128), nn.AdaptiveAvgPool2d(1),
                         nn.Flatten(), nn.Linear(128, dim))


def supervised(params: dict, attributes: dict[str, pd.DataFrame], epochs: int, augmented: bool,
               encoder: str) -> dict[str, dict[str, float]]:
    """Train an image encoder (the tiny CLIP's vision tower, or `small_cnn`) and the attribute heads on the
    labels alone, with train_baseline's optimiser settings; accuracy per attribute on both splits."""
    tiny, settings, global_seed = section(params, "model").tiny, section(params, "train_baseline"), seed(params)
    torch.manual_seed(global_seed)
    checkpoint = build_tiny(tiny, load_tokenizer(Path("models/tokenizer")), section(params, "text").max_tokens,
                            global_seed)
    spec, fit = checkpoint.pixel_spec, section(params, "image").fit
    if encoder == "vit":
        model = checkpoint.model.train()
        modules: list[nn.Module] = [model.vision_model, model.visual_projection]

        def encode(pixels: torch.Tensor) -> torch.Tensor:
            return image_embeddings(model, pixels)
    else:
        cnn = small_cnn(tiny.embed_dim).train()
        modules, encode = [cnn], cnn
    pixels = {name: open_cache(CACHE, frame.index.tolist(), spec, fit)[:] for name, frame in attributes.items()}
    vocab = {c: {v: i for i, v in enumerate(sorted(attributes["train"][c].dropna().unique()))} for c in COLUMNS}
    labels = {name: codes(frame, vocab) for name, frame in attributes.items()}
    heads = AttributeHeads([len(vocab[c]) for c in COLUMNS], tiny.embed_dim)
    parameters = [p for module in (*modules, heads) for p in module.parameters()]
    optimiser = torch.optim.AdamW(parameters, lr=settings.lr, weight_decay=settings.weight_decay)
    images = len(attributes["train"])
    per_epoch = images // settings.batch_size
    schedule = "cosine" if settings.schedule == "cosine" else "constant_with_warmup"  # as train/loop.py
    scheduler = get_scheduler(schedule, optimiser, num_warmup_steps=settings.warmup_steps,
                              num_training_steps=epochs * per_epoch)
    generator = torch.Generator().manual_seed(global_seed)
    for _ in range(epochs):
        order = torch.randperm(images, generator=generator)
        for step in range(per_epoch):
            index = order[step * settings.batch_size:(step + 1) * settings.batch_size]
            batch = spec.normalise(pixels["train"][index])
            if augmented:
                batch = augment(batch, batch_generator(global_seed, index))
            loss = heads(encode(batch), labels["train"][index])
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(parameters, settings.grad_clip)
            optimiser.step()
            scheduler.step()
    for module in modules:
        module.eval()
    accuracy: dict[str, dict[str, float]] = {"train": {}, "val": {}}
    with torch.no_grad():
        for name in ("train", "val"):
            unit = F.normalize(encode(spec.normalise(pixels[name])), dim=-1) * heads.scale
            for column, head in zip(heads.columns, heads.heads):
                known = torch.tensor([isinstance(v, str) for v in attributes[name][COLUMNS[column]]])
                right = head(unit).argmax(dim=1) == labels[name][:, column]
                accuracy[name][COLUMNS[column]] = round(right[known].double().mean().item(), 3)
    return accuracy


def shopper_in_and_out_of_sample(params: dict, train: pd.DataFrame, val: pd.DataFrame) -> dict[str, dict]:
    """The baseline's shopper headline on a gallery of training images and on the validation gallery."""
    settings, text, fit = section(params, "evaluate"), section(params, "text"), section(params, "image").fit
    rerank_k, global_seed = section(params, "retrieval").rerank_k, seed(params)
    checkpoint, _ = load_model(Path("models/baseline"), "baseline")
    figures = {}
    for name, pairs in (("train", train), ("val", val)):
        gallery = TestGallery(pairs, RAW, fit, CACHE)
        shopper = ShopperGallery.build(pairs["image"].tolist(), RAW, settings, global_seed)
        images = embed_images(checkpoint, gallery.pixels(checkpoint), settings.batch_size)
        scores = shopper_scores(checkpoint, None, images, settings, text, rerank_k)
        # a gallery too small for any 2- or 3-attribute combination's `min_relevant` images has no headline
        headline = evaluate_families(shopper.families, shopper.attributes, scores, global_seed).metrics.get("headline")
        figures[name] = {"images": len(pairs), **{k: round(headline[k], 3) if headline else None for k in
                                                    ("precision_at_10", "precision_at_10_low", "precision_at_10_high",
                                                     "base_rate")}}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=30, help="passes over the training images (supervised tower)")
    parser.add_argument("--cnn", action="store_true", help="also the small CNN reference (about 5 minutes on 2 cores)")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    args = parser.parse_args()
    params = load_params()
    fit = section(params, "image").fit
    train, val = read_pairs(SPLITS / "train.parquet", "split"), read_pairs(SPLITS / "val.parquet", "split")
    # each split's attributes, indexed by image file name (the rows of the splits, in order)
    attributes = {name: image_attributes(RAW, pairs["image"].tolist()).set_axis(pairs["image"].tolist())
                  for name, pairs in (("train", train), ("val", val))}
    result: dict = {"machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                                "torch": torch.__version__, "threads": torch.get_num_threads()},
                    "train_images": len(train), "val_images": len(val), "probes": {}}
    for name in MODELS:
        checkpoint, _ = load_model(Path(f"models/{name}"), name)
        embeds = {split: embed_images(checkpoint, open_cache(CACHE, frame.index.tolist(), checkpoint.pixel_spec, fit),
                                      128) for split, frame in attributes.items()}
        probes = probe_attributes(embeds["train"], attributes["train"], embeds["val"], attributes["val"], COLUMNS)
        result["probes"][name] = {column: {k: round(v, 3) if isinstance(v, float) else v
                                           for k, v in probe.as_dict().items()} for column, probe in probes.items()}
    runs = [("vit", False), ("vit", True)] + ([("cnn", True)] if args.cnn else [])
    for encoder, augmented in runs:
        start = time.perf_counter()
        accuracy = supervised(params, attributes, args.epochs, augmented, encoder)
        result[f"supervised_{encoder}{'_augmented' if augmented else ''}"] = {
            "epochs": args.epochs, "seconds": round(time.perf_counter() - start, 1), **accuracy}
    result["shopper_baseline"] = shopper_in_and_out_of_sample(params, train, val)
    text = json.dumps(result, indent=2)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
