"""Query latency of the search API on synthetic galleries; prints JSON.

Synthetic galleries (10,000, 50,000 and 1,000,000 rows) stand in for real ones:
the search cost depends on their size and width, not on what they show, but the
recall of a graph, cluster or code index depends on their shape. So each gallery
comes in two shapes: random unit vectors (no structure: the worst case for HNSW,
IVF and product codes) and a mixture of Gaussians on the sphere (one centre per
50 images, each image at cosine about 0.7 from its centre), closer to how image
embeddings cluster. Recall@10 is measured against exact search with held-out
queries drawn from the same distribution as the gallery.

Each query goes through the web API (FastAPI's test client), so the numbers
include the text encoding, the search and the JSON; the search part and the text
encoding are also timed alone, to check the target that at 50,000 images the
search costs under 10% of the encoding. `--sweep` times the search alone over
the settings that trade speed for recall (fastscan's re-scoring factor, HNSW's
efSearch, IVF's nprobe) at 50,000 × 512, and exact against fastscan on galleries
of 1,000 to 20,000 images, where `serve.faiss: auto` switches from one to the other.
`--filtered` measures filtered search (search/vectors.py `restricted_top`) against unfiltered search
at 50,000 × 512 for filters that allow 1% to 90% of the gallery, in CPU time on one thread, with
recall@10 against the exact top 10 of the allowed images.

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
from collections.abc import Callable
from pathlib import Path

import faiss
import numpy as np
import torch
from fastapi.testclient import TestClient
from transformers import CLIPConfig, CLIPModel

from fashion_search.config import load_params, section
from fashion_search.models.clip import Checkpoint, build_tiny, tiny_processor
from fashion_search.search.app import create_app
from fashion_search.search.engine import SearchEngine
from fashion_search.search.index import GalleryIndex
from fashion_search.search.vectors import FaissSearch, MatmulSearch, VectorSearch, build_faiss, restricted_top
from fashion_search.text import build_tokenizer

ROOT = Path(__file__).resolve().parents[1]
QUERIES = ["a red dress", "long-sleeved shirt with black and white boxes", "denim shorts with a belt",
           "a man in a striped cotton tee and sunglasses", "a long floral skirt", "a knitted grey sweater"]
REPEATS, WARMUP = 40, 5
RECALL_QUERIES = 200
IMAGES_PER_CLUSTER, CLUSTER_SPREAD = 50, 1.0  # noise norm about 1 around a unit centre: cosine about 0.7
CAPTIONS = QUERIES * 20 + ["a woman wears a short-sleeve top of cotton fabric with lattice patterns"] * 20


def unit_embeddings(rows: int, dim: int, seed: int) -> np.ndarray:
    """Random unit rows, generated in blocks so 1M × D never needs a float64 copy."""
    rng, out = np.random.default_rng(seed), np.empty((rows, dim), dtype=np.float32)
    for start in range(0, rows, 100_000):
        block = rng.standard_normal((min(100_000, rows - start), dim), dtype=np.float32)
        out[start:start + len(block)] = block / np.linalg.norm(block, axis=1, keepdims=True)
    return out


def clustered_embeddings(rows: int, dim: int, seed: int) -> np.ndarray:
    """Unit rows around random unit centres, in random order; rows of one centre are near duplicates."""
    rng = np.random.default_rng(seed)
    centres = unit_embeddings(max(1, rows // IMAGES_PER_CLUSTER), dim, seed + 1)
    out = unit_embeddings(rows, dim, seed + 2) * CLUSTER_SPREAD  # isotropic noise of norm CLUSTER_SPREAD
    out += centres[rng.integers(0, len(centres), rows)]
    out /= np.linalg.norm(out, axis=1, keepdims=True)
    return out


SHAPES: dict[str, Callable[[int, int, int], np.ndarray]] = {"random": unit_embeddings,
                                                            "clustered": clustered_embeddings}


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
        text = engine.encode_query(QUERIES[i % len(QUERIES)])  # with token states when the scorer needs them
        encoded = time.perf_counter()
        engine.rank(text, 10)
        if i >= WARMUP:
            encode.append(encoded - start)
            search.append(time.perf_counter() - encoded)
    return encode, search


def recall_at_10(vectors: VectorSearch, probes: np.ndarray, exact_top: list[set[int]]) -> float:
    """The share of the exact top 10 that `vectors` finds, over every probe query."""
    found = [len(set(vectors.top(probe, 10)[0].tolist()) & top) for probe, top in zip(probes, exact_top)]
    return round(sum(found) / (10 * len(probes)), 4)


def measure(engine: SearchEngine, probes: np.ndarray, exact_top: list[set[int]]) -> dict:
    """API latency, the search alone, the encoding alone, and recall@10 against exact search."""
    client = TestClient(create_app(engine))
    api = timed(lambda i: client.get("/search", params={"q": QUERIES[i % len(QUERIES)], "k": 10}).raise_for_status())
    encode, search = encode_then_search(engine)
    shares = [s / e for s, e in zip(search, encode)]
    return {"api": percentiles(api), "search_only": percentiles(search), "encode_only": percentiles(encode),
            "search_over_encode_p50": round(float(np.median(shares)), 4),
            "recall_at_10_vs_exact": recall_at_10(engine.vectors, probes, exact_top)}


def gallery_with_probes(shape: str, rows: int, dim: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[set[int]]]:
    """A gallery, held-out queries of the same distribution, and each query's exact top 10."""
    vectors = SHAPES[shape](rows + RECALL_QUERIES, dim, seed)
    gallery, probes = vectors[:rows], vectors[rows:]
    exact = MatmulSearch(gallery)
    return gallery, probes, [set(exact.top(probe, 10)[0].tolist()) for probe in probes]


def gallery_runs(checkpoint: Checkpoint, rows: int, kinds: list[str], seed: int, shape: str = "random") -> dict:
    gallery, probes, exact_top = gallery_with_probes(shape, rows, checkpoint.model.config.projection_dim, seed)
    runs = {}
    for kind in kinds:
        engine, built = engine_over(checkpoint, gallery, kind)
        runs[kind] = {**measure(engine, probes, exact_top), "build_s": round(built, 2)}
        del engine
    return runs


def search_p50_ms(vectors: VectorSearch, probes: np.ndarray) -> float:
    """The median time of one top-10 search, over the probe queries after a few warm-ups."""
    seconds = timed(lambda i: vectors.top(probes[i % len(probes)], 10), len(probes))
    return percentiles(seconds)["p50_ms"]


def setting_holder(index: faiss.Index, kind: str) -> object:
    """The FAISS object whose attribute sets how hard `kind` searches."""
    if kind == "hnsw":
        return index.hnsw
    if kind == "ivf":
        return faiss.extract_index_ivf(index)
    return index


def sweep(rows: int, dim: int, seed: int) -> dict:
    """Search p50 and recall@10 of each speed/recall setting, on both gallery shapes; no text encoder."""
    settings: dict[str, tuple[str, list[int]]] = {  # kind -> (the FAISS attribute varied, its values)
        "fastscan": ("k_factor", [10, 25, 50, 100, 200]),
        "hnsw": ("efSearch", [128, 512, 1024, 2048]),
        "ivf": ("nprobe", [28, 64, 128, 256]),
    }
    report = {}
    for shape in SHAPES:
        gallery, probes, exact_top = gallery_with_probes(shape, rows, dim, seed)
        report[shape] = {"matmul": {"search_p50_ms": search_p50_ms(MatmulSearch(gallery), probes)}}
        for kind, (attribute, values) in settings.items():
            start = time.perf_counter()
            index = build_faiss(gallery, kind)
            built = round(time.perf_counter() - start, 2)
            target = setting_holder(index, kind)
            for value in values:
                setattr(target, attribute, value)
                report[shape][f"{kind} {attribute}={value}"] = {
                    "search_p50_ms": search_p50_ms(FaissSearch(index), probes),
                    "recall_at_10_vs_exact": recall_at_10(FaissSearch(index), probes, exact_top), "build_s": built}
    return report


def crossover(dims: tuple[int, ...], sizes: tuple[int, ...], seed: int) -> dict:
    """Search p50 of exact and fastscan on small random galleries: where `serve.faiss: auto` should switch."""
    report = {}
    for dim in dims:
        for rows in sizes:
            gallery, probes, _ = gallery_with_probes("random", rows, dim, seed)
            report[f"{rows}x{dim}"] = {kind: search_p50_ms(FaissSearch(build_faiss(gallery, kind)), probes)
                                       for kind in ("exact", "fastscan")}
    return report


FILTER_SHARES = (0.01, 0.02, 0.05, 0.08, 0.1, 0.2, 0.5, 0.9)


def cpu_ms(call, repeats: int) -> float:
    """Mean CPU milliseconds of one call on one thread: what the search costs, whatever else the machine runs
    (wall-clock medians on a shared 2-core machine move in steps of the scheduler's 4-8 ms slices)."""
    for i in range(WARMUP):
        call(i)
    start = time.process_time()
    for i in range(repeats):
        call(i)
    return (time.process_time() - start) / repeats * 1000


def filtered(rows: int, dim: int, seed: int) -> dict:
    """CPU ms of a top-10 search with and without a filter, their ratio, and recall@10 against the exact
    top 10 of the allowed images; one thread (FAISS and torch), so CPU time is the cost."""
    faiss.omp_set_num_threads(1)
    report = {}
    rng = np.random.default_rng(seed)
    for shape in SHAPES:
        gallery, probes, _ = gallery_with_probes(shape, rows, dim, seed)
        for kind in ("matmul", "fastscan"):
            vectors = MatmulSearch(gallery) if kind == "matmul" else FaissSearch(build_faiss(gallery, kind))
            plain = cpu_ms(lambda i: vectors.top(probes[i % len(probes)], 10), len(probes))
            runs = {"unfiltered_cpu_ms": round(plain, 3)}
            for share in FILTER_SHARES:
                allowed = rng.random(rows) < share
                cost = cpu_ms(lambda i: restricted_top(vectors, gallery, probes[i % len(probes)], 10, allowed),
                              len(probes))
                exact = [set(restricted_top(MatmulSearch(gallery), gallery, probe, 10, allowed)[0].tolist())
                         for probe in probes]
                found = [len(set(restricted_top(vectors, gallery, probe, 10, allowed)[0].tolist()) & top)
                         for probe, top in zip(probes, exact)]
                runs[f"allowed_{share:g}"] = {"cpu_ms": round(cost, 3), "over_unfiltered": round(cost / plain, 2),
                                              "recall_at_10_vs_exact": round(sum(found) / (10 * len(probes)), 4)}
            report[f"{shape}_{kind}"] = runs
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--only-50k", action="store_true", help="only the 50,000-image comparison with the target")
    parser.add_argument("--filtered", action="store_true",
                        help="only filtered against unfiltered search at 50,000 × 512")
    parser.add_argument("--sweep", action="store_true",
                        help="only the speed/recall settings at 50,000 × 512, and exact against fastscan up to 20,000")
    args = parser.parse_args()
    torch.set_grad_enabled(False)
    tiny, vit = tiny_checkpoint(), vit_b32_checkpoint()
    report = {
        "machine": {"cpus": os.cpu_count(), "torch_threads": torch.get_num_threads(),
                    "processor": platform.processor() or platform.machine(), "platform": platform.platform(),
                    "python": platform.python_version(), "torch": torch.__version__},
        "queries": {"repeats": REPEATS, "warmup": WARMUP, "k": 10},
    }
    if args.filtered:
        report["filtered_50000_512d"] = filtered(50_000, 512, seed=7)
        print(json.dumps(report, indent=2))
        return
    if args.sweep:
        report["sweep_50000_512d"] = sweep(50_000, 512, seed=5)
        report["search_p50_ms_exact_vs_fastscan"] = crossover((128, 512), (1_000, 2_500, 5_000, 10_000, 20_000), seed=6)
        print(json.dumps(report, indent=2))
        return
    if not args.only_50k:
        report["tiny_128d"] = {
            "10000": gallery_runs(tiny, 10_000, ["matmul", "exact", "ivf", "hnsw", "fastscan"], seed=1),
            # IVF and HNSW are left out at 1M: building them took over 20 minutes on this 2-core machine.
            "1000000": gallery_runs(tiny, 1_000_000, ["matmul", "exact", "fastscan"], seed=2),
            "1000000_clustered": gallery_runs(tiny, 1_000_000, ["fastscan"], seed=2, shape="clustered"),
        }
    kinds = ["matmul", "exact", "hnsw", "fastscan"]
    report["at_50000"] = {f"{name}_{shape}": gallery_runs(checkpoint, 50_000, kinds, seed, shape)
                          for name, checkpoint, seed in (("tiny_128d", tiny, 3), ("vit_b32_512d", vit, 4))
                          for shape in SHAPES}
    print(json.dumps(report, indent=2))


if __name__ == "__main__":
    main()
