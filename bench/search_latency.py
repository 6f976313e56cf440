"""Query latency of the search API on synthetic galleries; prints JSON.

Galleries of random unit embeddings (10,000 and 1,000,000 rows) stand in for real
ones: the search cost depends on their size and width, not on what they show.
Each query goes through the web API (FastAPI's test client), so the numbers
include the text encoding, the search and the JSON; the search part and the text
encoding are also timed alone, to check the target that at 50,000 images the
search costs under 10% of the encoding.

Two text encoders: the tiny model of params.yaml (128-d, what the embedded
pipeline serves) and one shaped like CLIP ViT-B/32 (512-d, random weights; the
width and depth of the real model, without downloading it).

Run as `OMP_WAIT_POLICY=PASSIVE python bench/search_latency.py`: torch and FAISS
each bring an OpenMP runtime, and their spinning idle threads otherwise steal the
cores from each other, which on a 2-core machine makes timings swing tenfold.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from pathlib import Path

import numpy as np
import torch
from fastapi.testclient import TestClient
from transformers import CLIPConfig, CLIPModel

from fashion_search.config import load_params, section
from fashion_search.models.clip import Checkpoint, build_tiny, tiny_processor
from fashion_search.search.app import create_app
from fashion_search.search.engine import SearchEngine
from fashion_search.search.index import GalleryIndex
from fashion_search.search.vectors import FaissSearch, MatmulSearch, build_faiss
from fashion_search.text import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["a red dress", "long-sleeved shirt with black and white boxes", "denim shorts with a belt",
           "a man in a striped cotton tee and sunglasses", "a long floral skirt", "a knitted grey sweater"]
REPEATS, WARMUP = 40, 5
CAPTIONS = QUERIES * 20 + ["a woman wears a short-sleeve top of cotton fabric with lattice patterns"] * 20


def unit_embeddings(rows: int, dim: int, seed: int) -> np.ndarray:
    """Random unit rows, generated in blocks so 1M × D never needs a float64 copy."""
    rng, out = np.random.default_rng(seed), np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        block = rng.standard_normal((min(100_000, rows - start), dim), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def tiny_checkpoint() -> Checkpoint:
    params = load_params(ROOT / "params.yaml")
    tokenizer = build_tokenizer(CAPTIONS, section(params, "model").tiny.vocab_size, 77)
    return build_tiny(section(params, "model").tiny, tokenizer, 77, seed=0)


def vit_b32_checkpoint() -> Checkpoint:
    tokenizer = build_tokenizer(CAPTIONS, 1000, 77)
    config = CLIPConfig(text_config={"vocab_size": len(tokenizer), "pad_token_id": tokenizer.pad_token_id,
                                     "bos_token_id": tokenizer.bos_token_id, "eos_token_id": tokenizer.eos_token_id},
                        vision_config={"num_hidden_layers": 1}, projection_dim=512)  # the vision tower is unused
    torch.manual_seed(0)
    return Checkpoint(CLIPModel(config).eval(), tokenizer, tiny_processor(224), {"trained_from": "random"})


def engine_over(checkpoint: Checkpoint, embeddings: np.ndarray, kind: str) -> tuple[SearchEngine, float]:
    """An engine whose gallery is `embeddings`, searched by matmul or a FAISS index; and the build seconds."""
    start = time.perf_counter()
    faiss_index = None if kind == "matmul" else build_faiss(embeddings, kind)
    built = time.perf_counter() - start
    ids = [f"{i:07d}.jpg" for i in range(len(embeddings))]
    reference = {"model": "bench", "dim": embeddings.shape[1], "gallery_size": len(ids), "max_tokens": 77,
                 "faiss": kind, "examples": []}
    index = GalleryIndex(ids, ids, embeddings, reference, faiss_index)
    vectors = MatmulSearch(embeddings) if kind == "matmul" else FaissSearch(faiss_index)
    return SearchEngine(index, checkpoint, None, ROOT, vectors), built


def percentiles(seconds: list[float]) -> dict[str, float]:
    ms = np.array(seconds) * 1000
    return {"p50_ms": round(float(np.percentile(ms, 50)), 3), "p95_ms": round(float(np.percentile(ms, 95)), 3)}


def timed(call, repeats: int = REPEATS) -> list[float]:
    for i in range(WARMUP):
        call(i)
    out = []
    for i in range(repeats):
        start = time.perf_counter()
        call(i)
        out.append(time.perf_counter() - start)
    return out


def encode_then_search(engine: SearchEngine) -> tuple[list[float], list[float]]:
    """Each query's encoding and search timed back to back, so that a busy machine slows both alike."""
    encode, search = [], []
    for i in range(WARMUP + REPEATS):
        start = time.perf_counter()
        text = engine.encode(QUERIES[i % len(QUERIES)])
        encoded = time.perf_counter()
        engine.rank(text, 10)
        if i >= WARMUP:
            encode.append(encoded - start)
            search.append(time.perf_counter() - encoded)
    return encode, search


def measure(engine: SearchEngine, exact_rows: dict[str, np.ndarray] | None) -> dict:
    """API latency, the search alone, the encoding alone, and recall@10 against exact search."""
    client = TestClient(create_app(engine))
    api = timed(lambda i: client.get("/search", params={"q": QUERIES[i % len(QUERIES)], "k": 10}).raise_for_status())
    texts = [engine.encode(q) for q in QUERIES]
    encode, search = encode_then_search(engine)
    shares = [s / e for s, e in zip(search, encode)]
    result = {"api": percentiles(api), "search_only": percentiles(search), "encode_only": percentiles(encode),
              "search_over_encode_p50": round(float(np.median(shares)), 4)}
    if exact_rows is not None:
        found = [len(set(engine.rank(t, 10)[0]) & set(exact_rows[q])) for q, t in zip(QUERIES, texts)]
        result["recall_at_10_vs_exact"] = round(sum(found) / (10 * len(QUERIES)), 3)
    return result


def gallery_runs(checkpoint: Checkpoint, rows: int, kinds: list[str], seed: int) -> dict:
    embeddings = unit_embeddings(rows, checkpoint.model.config.projection_dim, seed)
    runs, exact_rows = {}, None
    for kind in kinds:
        engine, built = engine_over(checkpoint, embeddings, kind)
        runs[kind] = {**measure(engine, exact_rows), "build_s": round(built, 2)}
        if kind == "matmul":
            exact_rows = {q: engine.rank(engine.encode(q), 10)[0] for q in QUERIES}
        del engine
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only-50k", action="store_true", help="only the 50,000-image comparison with the target")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    tiny, vit = tiny_checkpoint(), vit_b32_checkpoint()
    report = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "queries": {"repeats": REPEATS, "warmup": WARMUP, "k": 10},
    }
    if not args.only_50k:
        report["tiny_128d"] = {
            "10000": gallery_runs(tiny, 10_000, ["matmul", "exact", "ivf", "hnsw"], seed=1),
            # IVF and HNSW are left out at 1M: building them took over 20 minutes on this 2-core machine.
            "1000000": gallery_runs(tiny, 1_000_000, ["matmul", "exact"], seed=2),
        }
    report["at_50000"] = {"tiny_128d": gallery_runs(tiny, 50_000, ["matmul", "exact", "hnsw"], seed=3),
                          "vit_b32_512d": gallery_runs(vit, 50_000, ["matmul", "exact", "hnsw"], seed=4)}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
