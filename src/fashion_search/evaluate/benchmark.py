"""`fashion-search benchmark`: any CLIP checkpoint, by the evaluate stage's own measures.

Zero-shot over the full downloaded set by default (data/interim/captions.parquet),
so a pretrained CLIP gets a row beside the published Marqo-protocol figures; a
fine-tuned model can be measured the same way on the test split. Captions are
tokenized with the model's own tokenizer, since a Hugging Face model does not
share the project's. For an xattn model that scores token states (`xattn.features:
tokens`) the images and captions are encoded with them, as the evaluate stage does;
tables too large for memory go to memory-mapped files in the system's temporary folder
(TMPDIR), ViT-B/32's about 11 GB for the full set.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from fashion_search.config import EvaluateSettings, TextSettings, load_params, section, seed
from fashion_search.data.layout import IMAGES_DIR
from fashion_search.data.pairs import read_pairs
from fashion_search.embedding import embed_images, embed_texts, encode_images, encode_texts, tokenize_queries
from fashion_search.evaluate.measures import PROTOCOLS, gallery_description, measure
from fashion_search.evaluate.published import PUBLISHED_GALLERY_SIZE, PUBLISHED_MARQO
from fashion_search.evaluate.pipeline import ShopperGallery, shopper_scores
from fashion_search.evaluate.retrieval import Retriever, needs_tokens
from fashion_search.evaluate.shopper import evaluate_families
from fashion_search.images import ImageFiles
from fashion_search.models.loader import load_model

SHOPPER = "shopper"


def benchmark(model: str, pairs_file: Path, raw: Path, protocols: Sequence[str], settings: EvaluateSettings,
              seed_value: int, fit: str, text: TextSettings, rerank_k: int) -> dict[str, Any]:
    """The chosen protocols' metrics for one model over every pair of `pairs_file`."""
    checkpoint, scorer = load_model(model)
    pairs = read_pairs(pairs_file, "tokenize")
    files = ImageFiles([raw / IMAGES_DIR / name for name in pairs["image"]], checkpoint.pixel_spec, fit)
    captions = tokenize_queries(checkpoint, pairs["caption"].tolist(), text.max_tokens, text.long_text)
    tokens = needs_tokens(scorer)
    images = (encode_images if tokens else embed_images)(checkpoint, files, settings.batch_size)
    texts = (encode_texts if tokens else embed_texts)(checkpoint, captions, settings.batch_size)
    retriever = Retriever(settings.chunk_size, scorer, rerank_k)
    measured = measure(images, texts, pairs, retriever, settings, seed_value,
                       [protocol for protocol in protocols if protocol != SHOPPER])
    report: dict[str, Any] = {"model": model, "pairs": str(pairs_file),
                              "gallery": gallery_description(pairs, settings, seed_value), **measured.metrics}
    if SHOPPER in protocols:
        shopper = ShopperGallery.build(pairs["image"].tolist(), raw, settings, seed_value)
        scores_for = shopper_scores(checkpoint, scorer, images, settings, text, rerank_k)
        report[SHOPPER] = evaluate_families(shopper.families, shopper.attributes, scores_for, seed_value).metrics
    if "marqo" in protocols:
        report["published_marqo_zero_shot"] = {"gallery_size": PUBLISHED_GALLERY_SIZE, **PUBLISHED_MARQO}
    return report


def benchmark_with_params(model: str, protocol: str, pairs_file: Path, raw: Path,
                          params_file: Path = Path("params.yaml")) -> dict[str, Any]:
    """`benchmark` with the settings the evaluate stage uses (params.yaml), `all` meaning every protocol."""
    params = load_params(params_file)
    protocols = (*PROTOCOLS, SHOPPER) if protocol == "all" else (protocol,)
    return benchmark(model, pairs_file, raw, protocols, section(params, "evaluate"), seed(params),
                     section(params, "image").fit, section(params, "text"),
                     section(params, "retrieval").rerank_k)
